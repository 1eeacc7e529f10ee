"""A pod's actions run one at a time and in the order sent, through the pod-lifecycle worker function.

Host agents on loopback record every request, so the order a pod's actions
reached its host is the order they ran; the job table is sampled while
workers run in processes of their own, as Lambda runs them.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
import pytest

from jobqueue import Job, Queue
from local import invoke
from pods import context, jobs, lifecycle
from pods.context import Resources
from podslocal.fake_host_agent import FakeHostAgent
from tests.helpers import make_ready
from tests.pods.conftest import API_KEY, pod_row
from tests.runtime.conftest import EVENTS, FakeContext, event

LIFECYCLE = lifecycle.LIFECYCLE


@pytest.fixture
def worker(
    load_function: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch, resources: Resources
) -> Iterator[ModuleType]:
    monkeypatch.setenv("QUEUE_NAME", LIFECYCLE)
    monkeypatch.setenv("HOST_API_KEY", API_KEY)
    context.set_resources(None)
    yield load_function("worker")
    context.set_resources(None)


def drain(worker: ModuleType) -> dict[str, Any]:
    return worker.handler(event("schedule.json"), FakeContext())  # type: ignore[no-any-return]


def pod_requests(agent: FakeHostAgent, pod_id: str) -> list[str]:
    """The pod's requests as its host saw them, in arrival order: "POST start", "PUT routes", ..."""
    seen = []
    for method, path in list(agent.requests):
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["pods", pod_id]:
            seen.append(f"{method} {parts[2] if len(parts) > 2 else 'pod'}")
        elif parts == ["routes", pod_id]:
            seen.append(f"{method} route")
        elif parts == ["create-pod"]:
            continue  # its body names the pod; counted through the pod's own requests below
    return seen


def fail_starts_of(agent: FakeHostAgent, pod_id: str) -> Callable[[], None]:
    """Make the host answer 500 to the pod's start until the returned function is called."""
    original = agent.dispatch
    failing = {"on": True}

    def dispatch(method: str, parts: list[str], body: bytes) -> Any:
        if failing["on"] and parts == ["pods", pod_id, "start"]:
            return 500, {"error": "the pod's disk is not attached"}, None
        return original(method, parts, body)

    agent.dispatch = dispatch  # type: ignore[method-assign]
    return lambda: failing.update(on=False)


def test_a_failed_start_holds_back_the_stop_sent_after_it(
    worker: ModuleType, dsn: str, agents: list[FakeHostAgent], conn: psycopg.Connection[Any]
) -> None:
    agent = agents[0]
    with Queue(dsn) as q:
        lifecycle.request(q, "provision", "pod-1", spec={"tier": "dev.small"})
        lifecycle.request(q, "stop", "pod-1")
        assert drain(worker)["completed"] == 2
        assert pod_row(conn, "pod-1")["status"] == "stopped"

        heal = fail_starts_of(agent, "pod-1")
        start = lifecycle.request(q, "start", "pod-1", options={"retry_limit": 1})
        stop = lifecycle.request(q, "stop", "pod-1")
        assert start is not None and stop is not None
        before = len(pod_requests(agent, "pod-1"))

        # First attempt fails: the start waits to be retried and the stop waits behind it.
        assert drain(worker)["retried"] == 1
        assert [q.get_job(start).state, q.get_job(stop).state] == ["retry", "created"]  # type: ignore[union-attr]
        make_ready(conn, start)
        # Second attempt fails for good: the pod's queue is blocked, the stop still waits.
        assert drain(worker)["failed"] == 1
        assert q.get_blocked_keys(LIFECYCLE) == ["pod-1"]
        assert drain(worker)["completed"] == 0
        assert q.get_job(stop).state == "created"  # type: ignore[union-attr]
        assert pod_requests(agent, "pod-1")[before:] == ["POST start", "POST start"]  # no stop reached the host

        # The operator fixes the host and retries the start: it runs, then the stop.
        heal()
        q.retry(LIFECYCLE, [start])
        completed = 0
        for _ in range(3):
            completed += drain(worker)["completed"]
            if completed == 2:
                break
        assert completed == 2
        assert [q.get_job(start).state, q.get_job(stop).state] == ["completed", "completed"]  # type: ignore[union-attr]
        assert q.get_blocked_keys(LIFECYCLE) == []
    assert pod_requests(agent, "pod-1")[before:] == ["POST start", "POST start", "POST start", "POST stop"]
    assert pod_row(conn, "pod-1")["status"] == "stopped"


def test_a_health_restart_queued_behind_a_stop_leaves_the_pod_stopped(
    worker: ModuleType, dsn: str, agents: list[FakeHostAgent], conn: psycopg.Connection[Any]
) -> None:
    from pods import health
    from tests.pods.conftest import job

    with Queue(dsn) as q:
        lifecycle.request(q, "provision", "pod-1", spec={"tier": "dev.small"})
        drain(worker)
        lifecycle.request(q, "stop", "pod-1")  # the owner stops the pod ...
        agents[0].faults.unhealthy.add("pod-1")
        resources = context.resources()
        # ... while a health check finds it unhealthy and asks for a restart after the stop.
        assert health.health_check(resources, job("health-check", {"podId": "pod-1"})) == {"pod-1": "unhealthy"}
        assert drain(worker)["completed"] == 2
        [restart] = q.find_jobs(LIFECYCLE, data={"action": "restart"})
        assert restart.output == {"status": "stopped", "skipped": True}
    assert pod_row(conn, "pod-1")["status"] == "stopped"
    assert pod_requests(agents[0], "pod-1")[-1] == "POST stop"


def test_a_provision_sent_before_a_cleanup_does_not_bring_the_pod_back(
    worker: ModuleType, dsn: str, agents: list[FakeHostAgent], conn: psycopg.Connection[Any]
) -> None:
    with Queue(dsn) as q:
        lifecycle.request(q, "provision", "pod-1", spec={"tier": "dev.small"})
        assert drain(worker)["completed"] == 1
        # A provision waits (say, to be retried) when the pod is terminated out of band, as an
        # operator or a restart of the hosts does; in the queue it would have run first.
        stale = lifecycle.request(q, "provision", "pod-1", spec={"tier": "dev.small"})
        lifecycle.cleanup(context.resources(), Job(id=str(stale), name=LIFECYCLE, data={"podId": "pod-1"}))
        assert drain(worker)["completed"] == 1
        assert q.get_job(stale).output == {"status": "terminated", "skipped": True}  # type: ignore[union-attr]
        assert pod_row(conn, "pod-1")["status"] == "terminated"
        assert conn.execute("SELECT sum(used) FROM pods.host").fetchone() == (0,)
        assert agents[0].pods == {}
        # Sent after the termination, a provision asks for the pod again.
        lifecycle.request(q, "provision", "pod-1", spec={"tier": "dev.small"})
        assert drain(worker)["completed"] == 1
    assert pod_row(conn, "pod-1")["status"] == "running"
    assert conn.execute("SELECT sum(used) FROM pods.host").fetchone() == (1,)


def test_actions_sent_for_a_pod_that_ends_meanwhile_are_skipped(
    worker: ModuleType, dsn: str, agents: list[FakeHostAgent], conn: psycopg.Connection[Any]
) -> None:
    """A snapshot or a health check's restart queued behind a cleanup has nothing to act on."""
    with Queue(dsn) as q:
        lifecycle.request(q, "provision", "pod-1", spec={"tier": "dev.small"})
        drain(worker)
        lifecycle.request(q, "cleanup", "pod-1")
        later = [
            lifecycle.request(q, "snapshot", "pod-1"),
            lifecycle.request(q, "restart", "pod-1", reason=lifecycle.UNHEALTHY),
            lifecycle.request(q, "stop", "pod-1"),
        ]
        assert drain(worker)["completed"] == 4
        outputs = [q.get_job(str(job_id)).output for job_id in later]  # type: ignore[union-attr]
        assert outputs == [{"status": "terminated", "skipped": True}] * 3
        assert q.get_blocked_keys(LIFECYCLE) == []
    assert pod_requests(agents[0], "pod-1")[-2:] == ["DELETE pod", "DELETE route"]


def slots_match_placements(conn: psycopg.Connection[Any]) -> bool:
    """Each host's used slots are exactly the pods placed on it."""
    rows = conn.execute(
        "SELECT h.used, count(p.id) FROM pods.host h LEFT JOIN pods.pod p ON p.host_id = h.id GROUP BY h.id"
    ).fetchall()
    return all(used == placed for used, placed in rows)


def test_a_provision_that_fails_for_good_gives_its_slot_back(
    worker: ModuleType, dsn: str, agents: list[FakeHostAgent], conn: psycopg.Connection[Any]
) -> None:
    """Its failure blocks the pod's queue, so no cleanup would free the slot: the provision does."""
    agent = agents[0]
    original = agent.dispatch

    def route_fails(method: str, parts: list[str], body: bytes) -> Any:
        if parts == ["routes", "pod-1"] and method == "PUT":
            return 503, {"error": "the proxy does not reload"}, None
        return original(method, parts, body)

    agent.dispatch = route_fails  # type: ignore[method-assign]
    with Queue(dsn) as q:
        provision = lifecycle.request(q, "provision", "pod-1", spec={"tier": "dev.small"}, options={"retry_limit": 1})
        assert drain(worker)["retried"] == 1
        # Between attempts the pod keeps its host and slot (the retry finishes what the host began).
        assert conn.execute("SELECT used FROM pods.host WHERE id = 'host-1'").fetchone() == (1,)
        make_ready(conn, str(provision))
        assert drain(worker)["failed"] == 1
        assert q.get_blocked_keys(LIFECYCLE) == ["pod-1"]
    row = pod_row(conn, "pod-1")
    assert (row["status"], row["host_id"]) == ("failed", None)
    assert conn.execute("SELECT sum(used) FROM pods.host").fetchone() == (0,)
    assert agent.pods == {} and agent.routes == {}
    assert slots_match_placements(conn)


@pytest.mark.slow
def test_a_worker_killed_mid_provision_leaks_no_slot(
    resources: Resources, dsn: str, agents: list[FakeHostAgent], conn: psycopg.Connection[Any]
) -> None:
    """Lambda kills the invocation while the host is creating the pod; the job expires, is retried,
    and the retry finishes on the same host and slot."""
    env = {"DATABASE_URL": dsn, "HOST_API_KEY": API_KEY, "JOBS_PLATFORM": "pods.jobs", "SAFETY_MARGIN_MS": "1000"}
    with Queue(dsn) as q:
        provision = str(lifecycle.request(q, "provision", "pod-1", spec={"tier": "dev.small"}))
        agents[0].faults.hang_s = 60.0  # the host takes longer than the invocation may run
        killed = invoke.invoke("PodLifecycleWorker", EVENTS / "schedule.json", overrides=env, timeout=6)
        # The process ends with the handler mid-step: killed at the timeout, or (as the worker does
        # when a handler outlives the invocation's time) left unfinished when the invocation returns.
        assert killed.timed_out or killed.result["unfinished"] == 1, killed.output[-2000:]
        agents[0].faults.hang_s = 0.0
        assert q.get_job(provision).state == "active"  # type: ignore[union-attr]
        assert conn.execute("SELECT used FROM pods.host WHERE id = 'host-1'").fetchone() == (1,)
        # Its claim runs out (backdated, not waited for) and maintenance hands it back for a retry.
        conn.execute("UPDATE jobqueue.job SET expire_at = now() - interval '1 second' WHERE id = %s", (provision,))
        q.expire()
        make_ready(conn, provision)
        again = invoke.invoke("PodLifecycleWorker", EVENTS / "schedule.json", overrides=env, timeout=60)
        assert again.ok, again.output[-2000:]
        assert q.get_job(provision).state == "completed"  # type: ignore[union-attr]
    assert pod_row(conn, "pod-1")["status"] == "running"
    assert conn.execute("SELECT used FROM pods.host WHERE id = 'host-1'").fetchone() == (1,)
    assert list(agents[0].pods) == ["pod-1"]
    assert slots_match_placements(conn)


# -- many pods, three workers in processes of their own -------------------------------------------

PODS = 12
# Each pod's actions, sent in this order, and the requests each makes to the pod's host.
SEQUENCE = [
    ("provision", ["PUT route"]),
    ("stop", ["POST stop"]),
    ("start", ["POST start"]),
    ("restart", ["POST stop", "POST start"]),
    ("stop", ["POST stop"]),
    ("cleanup", ["DELETE pod", "DELETE route"]),
]
PROVISIONS_AT_ONCE = 2


@pytest.mark.slow
def test_three_workers_keep_every_pods_order_and_the_tiers_provision_limit(
    resources: Resources, dsn: str, agents: list[FakeHostAgent], conn: psycopg.Connection[Any], tmp_path: Path
) -> None:
    conn.execute("UPDATE pods.host SET capacity = 20 WHERE id = 'host-1'")
    for agent in agents:
        agent.faults.latency_s = 0.05  # requests overlap: a second action of a pod would interleave
    with Queue(dsn) as q, q.db.transaction() as tx:
        for action, _ in SEQUENCE:
            for n in range(PODS):
                fields = {"spec": {"tier": "dev.small"}} if action == "provision" else {}
                lifecycle.request(q, action, f"pod-{n}", conn=tx, **fields)
    env = {
        "DATABASE_URL": dsn,
        "HOST_API_KEY": API_KEY,
        "JOBS_PLATFORM": "pods.jobs",
        "GROUP_CONCURRENCY": f'{{"default": {PROVISIONS_AT_ONCE}}}',
        "TEAM_SIZE": "8",
        "POWERTOOLS_METRICS_NAMESPACE": "JobsTest",
    }
    samples: list[tuple[int, int]] = []  # (provisions active in the tier's group, max active jobs of one pod)
    done = threading.Event()

    def sample() -> None:
        with psycopg.connect(dsn, autocommit=True) as watcher:
            while not done.is_set():
                row = watcher.execute(
                    "SELECT count(*) FILTER (WHERE group_id = 'unknown/dev.small'),"
                    " coalesce(max(per_key), 0) FROM (SELECT group_id, count(*) OVER (PARTITION BY singleton_key)"
                    " AS per_key FROM jobqueue.job WHERE name = %s AND state = 'active') a",
                    (LIFECYCLE,),
                ).fetchone()
                assert row is not None
                samples.append((row[0], row[1]))

    watcher = threading.Thread(target=sample)
    watcher.start()
    try:
        remaining = lambda: conn.execute(  # noqa: E731
            "SELECT count(*) FROM jobqueue.job WHERE name = %s AND state <> 'completed'", (LIFECYCLE,)
        ).fetchone()[0]  # type: ignore[index]
        rounds = 0
        while remaining() and rounds < 10:
            rounds += 1
            with ThreadPoolExecutor(3) as pool:
                outcomes = list(
                    pool.map(
                        lambda _: invoke.invoke(
                            "PodLifecycleWorker", EVENTS / "schedule.json", overrides=env, timeout=120
                        ),
                        range(3),
                    )
                )
            assert all(o.ok for o in outcomes), [o.output[-2000:] for o in outcomes if not o.ok]
        assert remaining() == 0
    finally:
        done.set()
        watcher.join()
    # Every pod's requests reached its host in the order its actions were sent, none interleaved.
    expected = [request for _, requests in SEQUENCE for request in requests]
    for n in range(PODS):
        assert pod_requests(agents[0], f"pod-{n}") == expected, f"pod-{n}"
    assert agents[0].pods == {}
    # Never two actions of one pod active at once, never more provisions than the tier's limit.
    assert samples and max(per_pod for _, per_pod in samples) <= 1
    assert max(provisions for provisions, _ in samples) <= PROVISIONS_AT_ONCE
    assert max(provisions for provisions, _ in samples) == PROVISIONS_AT_ONCE  # the limit, not chance, held it
    assert conn.execute("SELECT sum(used) FROM pods.host").fetchone() == (0,)
    assert conn.execute(
        "SELECT count(*) FROM jobqueue.job WHERE name = %s AND retry_count > 0", (LIFECYCLE,)
    ).fetchone() == (0,)


def test_a_new_pods_first_health_check_starts_once_its_provision_completed(
    worker: ModuleType, dsn: str, agents: list[FakeHostAgent]
) -> None:
    with Queue(dsn) as q:
        ok = lifecycle.provision_then_check(q, "pod-1", {"tier": "dev.small"}, "u1")
        bad = lifecycle.provision_then_check(q, "pod-2", {"tier": "dev.nope"}, "u1")  # fails for good
        assert q.fetch("health-check", 10) == []  # both wait for their provisions
        drain(worker)
        [check] = q.fetch("health-check", 10)
        assert check.id == ok["check"] and check.data == {"podId": "pod-1"}
        cancelled = q.get_job(bad["check"])
        assert cancelled is not None and cancelled.state == "cancelled"
        assert cancelled.output["parent"] == bad["provision"]


def test_users_take_turns_to_provision(resources: Resources, dsn: str) -> None:
    """One user's burst of provisions does not hold back another's: the second user's provision is
    in the worker's first fetch, and each user's provisions at once stay capped in a tier."""
    with Queue(dsn) as q:
        for n in range(30):
            lifecycle.request(q, "provision", f"a-{n}", spec={"tier": "dev.small"}, userId="user-a")
        lifecycle.request(q, "provision", "b-0", spec={"tier": "dev.small"}, userId="user-b")
        info = q.get_queue(LIFECYCLE)
        assert info is not None and info.fairness == "round_robin"
        first = q.fetch(LIFECYCLE, 10, group_concurrency=jobs.PROVISIONS_PER_GROUP)
        assert Counter(job.data["userId"] for job in first) == {"user-a": 4, "user-b": 1}
        assert q.fetch(LIFECYCLE, 10, group_concurrency=jobs.PROVISIONS_PER_GROUP) == []
