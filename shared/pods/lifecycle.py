"""provision-pod, start-pod, stop-pod, restart-pod, cleanup-pod.

Each is safe to run twice: the host agent's create is idempotent by pod id, a
pod keeps the host it was placed on across retries, and every step checks the
pod's current state first.
"""

from __future__ import annotations

from typing import Any

from psycopg.rows import dict_row

from jobqueue import Job, JobError
from pods.context import Platform
from pods.payloads import optional, require
from pods.schema import QUERIES


def _pod(conn: Any, pod_id: str) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(QUERIES["get_pod"], {"id": pod_id}).fetchone()
    if row is None:
        raise JobError(f"pod {pod_id} does not exist", should_retry=False)
    return dict(row)


class NoCapacity(Exception):
    """No host of the tier has a free slot now; a retry may find one."""


def provision(platform: Platform, job: Job) -> dict[str, Any]:
    pod_id = require(job.data, "podId")
    spec = optional(job.data, "spec", dict) or optional(job.data, "config", dict) or {}
    owner = optional(job.data, "userId") or "unknown"
    tier = spec.get("tier")
    if not isinstance(tier, str) or not tier:
        raise JobError("payload spec.tier is required", should_retry=False)
    with platform.connection() as conn:
        if not conn.execute(QUERIES["tier_exists"], {"tier": tier}).fetchone()[0]:  # type: ignore[index]
            raise JobError(f"unknown tier {tier!r}: no host serves it", should_retry=False)
        conn.execute(QUERIES["insert_pod"], {"id": pod_id, "owner_id": owner, "spec": _jsonb(spec), "tier": tier})
        pod = _pod(conn, pod_id)
        if pod["status"] == "running" and pod["internal_ip"]:
            return {"internalIp": pod["internal_ip"], "host": pod["host_id"], "already": True}
        try:
            if pod["host_id"] is None:
                host_id, address, port = _claim_host(conn, tier, pod_id)
            else:
                # A retry after a partial success: stay on the host that may already run the pod.
                conn.execute(QUERIES["set_status"], {"id": pod_id, "status": "provisioning", "error": None})
                host_id, address, port = pod["host_id"], pod["host_address"], pod["host_port"]
            agent = platform.agent(address, port)
            internal_ip = agent.create_pod(pod_id, spec)
            agent.set_route(pod_id, internal_ip)  # the pod's route on the host's proxy, through the agent
            conn.execute(QUERIES["mark_running"], {"id": pod_id, "internal_ip": internal_ip})
        except Exception as exc:
            conn.execute(QUERIES["set_status"], {"id": pod_id, "status": "failed", "error": str(exc)[:1000]})
            raise
    return {"internalIp": internal_ip, "host": host_id}


CLAIM_ATTEMPTS = 10


def _claim_host(conn: Any, tier: str, pod_id: str) -> tuple[str, str, int]:
    for _ in range(CLAIM_ATTEMPTS):
        placed = conn.execute(QUERIES["claim_host"], {"tier": tier, "pod_id": pod_id}).fetchone()
        if placed is not None:
            return placed  # type: ignore[no-any-return]
        pod = _pod(conn, pod_id)
        if pod["host_id"] is not None:  # a concurrent provision of this pod placed it
            return pod["host_id"], pod["host_address"], pod["host_port"]
        if not conn.execute(QUERIES["tier_has_room"], {"tier": tier}).fetchone()[0]:
            break
        # Another provision took the chosen host's last slot meanwhile: choose again.
    raise NoCapacity(f"no host of tier {tier} has a free slot")


def _placed(conn: Any, platform: Platform, pod_id: str) -> tuple[dict[str, Any], Any]:
    pod = _pod(conn, pod_id)
    if pod["host_id"] is None:
        raise JobError(f"pod {pod_id} is not placed on a host (status {pod['status']})", should_retry=False)
    return pod, platform.agent(pod["host_address"], pod["host_port"])


def start(platform: Platform, job: Job) -> dict[str, Any]:
    pod_id = require(job.data, "podId")
    with platform.connection() as conn:
        pod, agent = _placed(conn, platform, pod_id)
        if pod["status"] == "terminated":
            raise JobError(f"pod {pod_id} is terminated", should_retry=False)
        agent.start_pod(pod_id)
        conn.execute(QUERIES["set_status"], {"id": pod_id, "status": "running", "error": None})
    return {"status": "running"}


def stop(platform: Platform, job: Job) -> dict[str, Any]:
    pod_id = require(job.data, "podId")
    with platform.connection() as conn:
        pod, agent = _placed(conn, platform, pod_id)
        if pod["status"] == "stopped":
            return {"status": "stopped", "already": True}
        agent.stop_pod(pod_id)
        conn.execute(QUERIES["set_status"], {"id": pod_id, "status": "stopped", "error": None})
    return {"status": "stopped"}


def restart(platform: Platform, job: Job) -> dict[str, Any]:
    pod_id = require(job.data, "podId")
    with platform.connection() as conn:
        _, agent = _placed(conn, platform, pod_id)
        agent.stop_pod(pod_id)
        agent.start_pod(pod_id)
        conn.execute(QUERIES["set_status"], {"id": pod_id, "status": "running", "error": None})
    return {"status": "running"}


def cleanup(platform: Platform, job: Job) -> dict[str, Any]:
    pod_id = require(job.data, "podId")
    with platform.connection() as conn:
        pod = _pod(conn, pod_id)
        if pod["host_id"] is not None:
            agent = platform.agent(pod["host_address"], pod["host_port"])
            agent.delete_pod(pod_id)
            agent.remove_route(pod_id)
            conn.execute(QUERIES["release_host"], {"pod_id": pod_id})
        conn.execute(QUERIES["set_status"], {"id": pod_id, "status": "terminated", "error": None})
    return {"status": "terminated"}


def _jsonb(value: Any) -> Any:
    from psycopg.types.json import Jsonb

    return Jsonb(value)
