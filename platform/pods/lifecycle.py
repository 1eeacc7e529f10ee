"""A pod's lifecycle: provision, start, stop, restart, snapshot, restore, cleanup.

Every action on one pod is a job of one queue, "pod-lifecycle", under the
key_strict_fifo policy with the pod's id as key: a pod's actions run one at a
time and in the order they were sent, whatever their kind, and a retry keeps
its place: a start waiting to be retried, or failed for good, holds back the
stop sent after it until it succeeds or an operator retries or deletes it (the
pod is then among the queue's blocked keys). Provisions also carry their user and
tier as group: the users take turns (the queue is round robin: one user's 500
provisions do not hold back another's one), and the worker's group limit caps
how many of a user's run at once in a tier.

`send_options` derives a job's key and group from its data; the runtime's
senders (API, CLI) apply it through the job type's declaration, and the
platform's own code sends through `request`.

Each action is safe to run twice: the host agent's create is idempotent by pod
id, a pod keeps the host it was placed on across retries, and every step
checks the pod's current state first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any, Final

from psycopg import Connection

from jobqueue import Job, JobError, PayloadError, Queue, Snooze
from pods import config, snapshots
from pods.clients.host_agent import HostAgent, HostAgentError
from pods.context import Resources
from pods.payloads import optional, require
from pods.records import placed, pod
from pods.schema import QUERIES

LIFECYCLE: Final = "pod-lifecycle"


class NoCapacity(Exception):
    """No host of the tier has a free slot now; a retry may find one."""


def _spec(data: Any) -> dict[str, Any]:
    return optional(data, "spec", dict) or optional(data, "config", dict) or {}


def _tier(data: Any) -> str:
    tier = _spec(data).get("tier")
    if not isinstance(tier, str) or not tier:
        raise JobError("payload spec.tier is required", should_retry=False)
    return tier


# A provision's stages, as its progress counts them: a slot, the pod created, routed, running.
PROVISION_STAGES = 4


def provision(resources: Resources, job: Job) -> dict[str, Any]:
    pod_id = require(job.data, "podId")
    spec = _spec(job.data)
    owner = optional(job.data, "userId") or "unknown"
    tier = _tier(job.data)
    with resources.connection() as conn:
        if not conn.execute(QUERIES["tier_exists"], {"tier": tier}).fetchone()[0]:  # type: ignore[index]
            raise JobError(f"unknown tier {tier!r}: no host serves it", should_retry=False)
        params = {"id": pod_id, "owner_id": owner, "spec": _jsonb(spec), "tier": tier}
        if job.retry_count > 0 and conn.execute(QUERIES["insert_pod"], params).fetchone() is not None:
            # An earlier attempt of this job created the pod's record (before anything that can
            # fail), and now it is gone: the pod was deleted meanwhile. Not brought back.
            conn.execute(QUERIES["delete_pod"], {"id": pod_id})
            return {"status": "deleted", "skipped": True}
        conn.execute(QUERIES["insert_pod"], params)
        row = pod(conn, pod_id)
        if row["status"] == "running" and row["internal_ip"]:
            return {"internalIp": row["internal_ip"], "host": row["host_id"], "already": True}
        if row["status"] == "terminated" and job.created_on is not None and job.created_on < row["updated_on"]:
            # Terminated after this provision was sent (an operator's cleanup, a restart of the
            # hosts): bringing it back would hold a slot for a pod nobody wants. A provision
            # sent after the termination asks for the pod again, and gets it.
            return {"status": "terminated", "skipped": True}
        agent = None
        try:
            if row["host_id"] is None:
                try:
                    host_id, address, port = _claim_host(conn, tier, pod_id)
                except NoCapacity:
                    # Wait for a slot without using up attempts (and, on the pod's ordered queue,
                    # keep this provision's place ahead of the pod's later actions).
                    raise Snooze(config.capacity_wait_s()) from None
            else:
                # A retry after a partial success: stay on the host that may already run the pod.
                conn.execute(QUERIES["set_status"], {"id": pod_id, "status": "provisioning", "error": None})
                host_id, address, port = row["host_id"], row["host_address"], row["host_port"]
            agent = resources.agent(address, port)
            job.set_progress({"done": 1, "total": PROVISION_STAGES, "stage": f"slot on {host_id}"})
            # Steps (Job.step): a retry after the route failed, or after the invocation's time ran
            # out while the host created the pod, does not ask the host again for what it did.
            internal_ip = job.step(f"create on {host_id}", lambda: agent.create_pod(pod_id, spec))
            job.set_progress({"done": 2, "total": PROVISION_STAGES, "stage": "created"})
            # The pod's route on the host's proxy, through the agent.
            job.step(f"route on {host_id}", lambda: agent.set_route(pod_id, internal_ip))
            job.set_progress({"done": 3, "total": PROVISION_STAGES, "stage": "routed"})
            conn.execute(QUERIES["mark_running"], {"id": pod_id, "internal_ip": internal_ip})
            job.set_progress({"done": PROVISION_STAGES, "total": PROVISION_STAGES, "stage": "running"})
        except Snooze:
            raise
        except Exception as exc:
            conn.execute(QUERIES["set_status"], {"id": pod_id, "status": "failed", "error": str(exc)[:1000]})
            if agent is not None and _last_attempt(job, exc):
                _give_slot_back(conn, agent, pod_id)
            raise
    return {"internalIp": internal_ip, "host": host_id}


def _last_attempt(job: Job, exc: Exception) -> bool:
    """Whether the queue will not run this job again after this failure."""
    return job.retry_count >= job.retry_limit or (isinstance(exc, JobError) and not exc.should_retry)


def _give_slot_back(conn: Any, agent: HostAgent, pod_id: str) -> None:
    """A provision that failed for good frees its slot: the pod's queue is blocked by the failure, so
    no cleanup would run until an operator steps in. What the host made of the pod is removed first,
    as well as the host answers (a retried provision would stay on the host and reuse it)."""
    for remove in (agent.remove_route, agent.delete_pod):
        with contextlib.suppress(HostAgentError):
            remove(pod_id)
    conn.execute(QUERIES["release_host"], {"pod_id": pod_id})


CLAIM_ATTEMPTS = 10


def _claim_host(conn: Any, tier: str, pod_id: str) -> tuple[str, str, int]:
    for _ in range(CLAIM_ATTEMPTS):
        claimed = conn.execute(QUERIES["claim_host"], {"tier": tier, "pod_id": pod_id}).fetchone()
        if claimed is not None:
            return claimed  # type: ignore[no-any-return]
        row = pod(conn, pod_id)
        if row["host_id"] is not None:  # a concurrent provision of this pod placed it
            return row["host_id"], row["host_address"], row["host_port"]
        if not conn.execute(QUERIES["tier_has_room"], {"tier": tier}).fetchone()[0]:
            break
        # Another provision took the chosen host's last slot meanwhile: choose again.
    raise NoCapacity(f"no host of tier {tier} has a free slot")


def start(resources: Resources, job: Job) -> dict[str, Any]:
    pod_id = require(job.data, "podId")
    with resources.connection() as conn:
        row, agent = placed(conn, resources, pod_id)
        if row["status"] == "terminated":
            raise JobError(f"pod {pod_id} is terminated", should_retry=False)
        agent.start_pod(pod_id)
        conn.execute(QUERIES["set_status"], {"id": pod_id, "status": "running", "error": None})
    return {"status": "running"}


def stop(resources: Resources, job: Job) -> dict[str, Any]:
    pod_id = require(job.data, "podId")
    with resources.connection() as conn:
        row, agent = placed(conn, resources, pod_id)
        if row["status"] == "stopped":
            return {"status": "stopped", "already": True}
        agent.stop_pod(pod_id)
        conn.execute(QUERIES["set_status"], {"id": pod_id, "status": "stopped", "error": None})
    return {"status": "stopped"}


UNHEALTHY: Final = "unhealthy"  # the reason a health check gives for the restarts it requests


def restart(resources: Resources, job: Job) -> dict[str, Any]:
    pod_id = require(job.data, "podId")
    with resources.connection() as conn:
        row, agent = placed(conn, resources, pod_id)
        if optional(job.data, "reason") == UNHEALTHY and row["status"] != "restarting":
            # A health check's restart is moot once the pod was stopped or restarted by an
            # earlier action of its own queue.
            return {"status": row["status"], "skipped": True}
        agent.stop_pod(pod_id)
        agent.start_pod(pod_id)
        conn.execute(QUERIES["set_status"], {"id": pod_id, "status": "running", "error": None})
    return {"status": "running"}


def cleanup(resources: Resources, job: Job) -> dict[str, Any]:
    pod_id = require(job.data, "podId")
    with resources.connection() as conn:
        row = pod(conn, pod_id)
        if row["host_id"] is not None:
            agent = resources.agent(row["host_address"], row["host_port"])
            agent.delete_pod(pod_id)
            agent.remove_route(pod_id)
            conn.execute(QUERIES["release_host"], {"pod_id": pod_id})
        conn.execute(QUERIES["set_status"], {"id": pod_id, "status": "terminated", "error": None})
    return {"status": "terminated"}


Action = Callable[[Resources, Job], dict[str, Any]]
ACTIONS: Final[dict[str, Action]] = {
    "provision": provision,
    "start": start,
    "stop": stop,
    "restart": restart,
    "snapshot": snapshots.create,
    "restore": snapshots.restore,
    "cleanup": cleanup,
}


def run(resources: Resources, job: Job) -> dict[str, Any]:
    """The pod-lifecycle handler: the job's data names its action."""
    action = require(job.data, "action")
    if action not in ACTIONS:
        raise JobError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}", should_retry=False)
    if action not in ("provision", "cleanup"):  # those two decide for themselves
        with resources.connection() as conn:
            status = pod(conn, require(job.data, "podId"))["status"]
        if status == "terminated":
            # The pod's life ended before this action's turn came: there is nothing left to act
            # on, and failing would block the pod's queue (a provision of the same id waits there).
            return {"status": "terminated", "skipped": True}
    return ACTIONS[action](resources, job)


def provision_group(owner: str, tier: str) -> str:
    """A provision's group: its user's in its tier. The groups take turns (the queue is round robin),
    and the worker caps each one's provisions at once (PROVISIONS_PER_GROUP, by tier)."""
    return f"{owner}/{tier}"


def send_options(data: Any) -> dict[str, Any]:
    """The options every pod-lifecycle job carries, from its data: the pod as key, a provision's user and
    tier as group.

    Raises PayloadError for data no action could run, so that a sender hears of it
    at once instead of a job that would block its pod's queue.
    """
    try:
        pod_id = require(data, "podId")
        action = require(data, "action")
        if action not in ACTIONS:
            raise JobError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
        options: dict[str, Any] = {"singleton_key": pod_id}
        if action == "provision":
            tier = _tier(data)
            options["group"] = {"id": provision_group(optional(data, "userId") or "unknown", tier), "tier": tier}
    except JobError as exc:
        raise PayloadError(f"{LIFECYCLE}: {exc}") from None
    return options


def request(
    queue: Queue,
    action: str,
    pod_id: str,
    *,
    conn: Connection[Any] | None = None,
    options: Mapping[str, Any] | None = None,
    **fields: Any,
) -> str | None:
    """Send one action for one pod to the lifecycle queue, with `fields` in its data.

    `conn`: in the caller's transaction; `options`: send options beside the derived ones.
    """
    data = {"action": action, "podId": pod_id, **fields}
    return queue.send(LIFECYCLE, data, conn=conn, **{**(options or {}), **send_options(data)})


def provision_then_check(
    queue: Queue, pod_id: str, spec: Mapping[str, Any], owner: str, *, conn: Connection[Any] | None = None
) -> dict[str, str]:
    """Provision a pod and check its health once it runs: a flow of two jobs, the check starting
    when (and only if) the provision completes. Returns {"provision": id, "check": id}."""
    data = {"action": "provision", "podId": pod_id, "spec": dict(spec), "userId": owner}
    return queue.flow(
        [
            {"ref": "provision", "name": LIFECYCLE, "data": data, "options": send_options(data)},
            {"ref": "check", "name": "health-check", "data": {"podId": pod_id}, "depends_on": ["provision"]},
        ],
        conn=conn,
    )


def _jsonb(value: Any) -> Any:
    from psycopg.types.json import Jsonb

    return Jsonb(value)
