"""provision, start, stop, restart and cleanup of pods against host agents on loopback."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from jobqueue import JobError, Queue, Snooze
from pods import lifecycle
from pods.clients.host_agent import HostAgentError
from pods.context import Resources
from podslocal.fake_host_agent import FakeHostAgent
from tests.pods.conftest import job, pod_row

SPEC = {"tier": "dev.small", "image": "ubuntu:24.04"}


def provision(resources: Resources, pod_id: str, spec: dict[str, Any] = SPEC) -> dict[str, Any]:
    return lifecycle.provision(resources, job("provision-pod", {"podId": pod_id, "spec": spec, "userId": "u1"}))


def test_provision_places_creates_routes_and_marks_running(
    resources: Resources, agents: list[FakeHostAgent], conn: psycopg.Connection[Any]
) -> None:
    result = provision(resources, "pod-1")
    row = pod_row(conn, "pod-1")
    assert (row["status"], row["host_id"], row["owner_id"]) == ("running", "host-1", "u1")
    assert row["internal_ip"] == result["internalIp"] == agents[0].pods["pod-1"].internal_ip
    assert agents[0].routes == {"pod-1": row["internal_ip"]}
    assert conn.execute("SELECT used FROM pods.host WHERE id = 'host-1'").fetchone() == (1,)
    history = [
        s
        for (s,) in conn.execute(
            "SELECT status FROM pods.pod_status_history WHERE pod_id = 'pod-1' ORDER BY changed_on"
        )
    ]
    assert history == ["pending", "provisioning", "running"]
    # Running it again does nothing new.
    assert provision(resources, "pod-1")["already"] is True
    assert agents[0].create_calls == 1


def test_retry_after_partial_success_creates_no_second_pod(
    resources: Resources, agents: list[FakeHostAgent], conn: psycopg.Connection[Any]
) -> None:
    agent = agents[0]
    original = agent.dispatch

    def routing_fails_once(method: str, parts: list[str], body: bytes) -> Any:
        if parts and parts[0] == "routes" and not getattr(agent, "_failed", False):
            agent._failed = True  # type: ignore[attr-defined]
            return 503, {"error": "nginx reload failed"}, None
        return original(method, parts, body)

    agent.dispatch = routing_fails_once  # type: ignore[method-assign]
    with pytest.raises(HostAgentError, match="answered 503"):
        provision(resources, "pod-1")
    failed = pod_row(conn, "pod-1")
    assert failed["status"] == "failed" and "503" in failed["error"]
    assert len(agent.pods) == 1  # the host did create it
    provision(resources, "pod-1")  # the queue's retry
    assert len(agent.pods) == 1 and agent.create_calls == 2
    assert pod_row(conn, "pod-1")["status"] == "running"
    assert conn.execute("SELECT used FROM pods.host WHERE id = 'host-1'").fetchone() == (1,)


def test_a_provision_retried_after_its_route_failed_does_not_ask_the_host_to_create_again(
    queue: Queue, resources: Resources, agents: list[FakeHostAgent], conn: psycopg.Connection[Any]
) -> None:
    """Run from its queue (its steps stored with the job): the retry skips the stored create step,
    and the job's progress says how far each attempt got."""
    job_id = lifecycle.request(queue, "provision", "pod-1", spec=SPEC, userId="u1")
    agents[0].faults.fail_matching["PUT /routes"] = 1
    [first] = queue.fetch(lifecycle.LIFECYCLE)
    first.context = context = queue.context_for(lifecycle.LIFECYCLE)
    with pytest.raises(HostAgentError):
        lifecycle.run(resources, first)
    context.flush()  # type: ignore[attr-defined]
    assert queue.get_job(str(job_id)).progress["stage"] == "created"  # type: ignore[union-attr]
    queue.fail(lifecycle.LIFECYCLE, [first], "route failed")
    conn.execute("UPDATE jobqueue.job SET start_after = now() WHERE id = %s", (job_id,))
    [second] = queue.fetch(lifecycle.LIFECYCLE)
    second.context = context = queue.context_for(lifecycle.LIFECYCLE)
    result = lifecycle.run(resources, second)
    context.flush()  # type: ignore[attr-defined]
    assert agents[0].create_calls == 1  # the first attempt's create step was not run again
    assert result["internalIp"] == agents[0].routes["pod-1"] == pod_row(conn, "pod-1")["internal_ip"]
    done = queue.get_job(str(job_id))
    assert done is not None and done.progress == {"done": 4, "total": 4, "stage": "running"}
    assert [(s["name"], s["attempt"]) for s in done.steps or []] == [("create on host-1", 1), ("route on host-1", 2)]


def test_concurrent_provisions_never_overbook_a_host(resources: Resources, conn: psycopg.Connection[Any]) -> None:
    conn.execute("UPDATE pods.host SET used = 1 WHERE id = 'host-1'")  # nearly full: 2 of 3 left

    def attempt(n: int) -> str:
        try:
            provision(resources, f"pod-{n}")
        except Snooze:  # no slot now: the job waits for one, its attempts untouched
            return "no capacity"
        return "placed"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(attempt, range(8)))
    assert outcomes.count("placed") == 2
    assert conn.execute("SELECT used, capacity FROM pods.host WHERE id = 'host-1'").fetchone() == (3, 3)
    placed = conn.execute("SELECT count(*) FROM pods.pod WHERE host_id = 'host-1'").fetchone()
    assert placed == (2,)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "missing 'podId'"),
        ({"podId": 42, "spec": SPEC}, "'podId' must be a non-empty str"),
        ({"podId": "p", "spec": {"tier": "dev.huge"}}, "unknown tier 'dev.huge'"),
        ({"podId": "p", "spec": {}}, "spec.tier is required"),
        ({"podId": "p", "spec": "small"}, "'spec' must be a non-empty dict"),
        ([1, 2], "payload must be a JSON object"),
    ],
)
def test_invalid_payloads_fail_at_once(resources: Resources, data: Any, message: str) -> None:
    with pytest.raises(JobError, match=message) as info:
        lifecycle.provision(resources, job("provision-pod", data))
    assert info.value.should_retry is False


def test_wrong_api_key_is_not_retried(resources: Resources, conn: psycopg.Connection[Any]) -> None:
    wrong = Resources(resources.pool, "not-the-key", agent_timeout=2.0)
    with pytest.raises(JobError, match="refused the API key") as info:
        provision(wrong, "pod-1")
    assert info.value.should_retry is False
    assert "not-the-key" not in str(info.value)
    assert pod_row(conn, "pod-1")["status"] == "failed"


def test_host_errors_and_timeouts_are_retried(resources: Resources, agents: list[FakeHostAgent]) -> None:
    agents[0].faults.fail_next = 1
    with pytest.raises(HostAgentError, match="answered 500"):
        provision(resources, "pod-1")
    provision(resources, "pod-1")
    slow = Resources(resources.pool, resources.host_api_key, agent_timeout=0.2)
    agents[0].faults.hang_s = 1.0
    with pytest.raises(HostAgentError, match="timed out"):
        lifecycle.stop(slow, job("stop-pod", {"podId": "pod-1"}))


def test_stop_start_restart_and_cleanup(
    resources: Resources, agents: list[FakeHostAgent], conn: psycopg.Connection[Any]
) -> None:
    provision(resources, "pod-1")
    lifecycle.stop(resources, job("stop-pod", {"podId": "pod-1"}))
    assert pod_row(conn, "pod-1")["status"] == "stopped" and not agents[0].pods["pod-1"].running
    assert lifecycle.stop(resources, job("stop-pod", {"podId": "pod-1"}))["already"] is True
    lifecycle.start(resources, job("start-pod", {"podId": "pod-1"}))
    assert pod_row(conn, "pod-1")["status"] == "running" and agents[0].pods["pod-1"].running
    lifecycle.restart(resources, job("restart-pod", {"podId": "pod-1"}))
    assert ("POST", "/pods/pod-1/stop") in agents[0].requests and pod_row(conn, "pod-1")["status"] == "running"
    lifecycle.cleanup(resources, job("cleanup-pod", {"podId": "pod-1"}))
    row = pod_row(conn, "pod-1")
    assert (row["status"], row["host_id"], row["internal_ip"]) == ("terminated", None, None)
    assert agents[0].pods == {} and agents[0].routes == {}
    assert conn.execute("SELECT used FROM pods.host WHERE id = 'host-1'").fetchone() == (0,)
    lifecycle.cleanup(resources, job("cleanup-pod", {"podId": "pod-1"}))  # twice is harmless
    assert conn.execute("SELECT used FROM pods.host WHERE id = 'host-1'").fetchone() == (0,)
    with pytest.raises(JobError, match="is not placed on a host"):
        lifecycle.start(resources, job("start-pod", {"podId": "pod-1"}))
    with pytest.raises(JobError, match="does not exist"):
        lifecycle.stop(resources, job("stop-pod", {"podId": "ghost"}))


def test_a_provision_retried_after_its_pod_was_deleted_does_not_bring_it_back(
    resources: Resources, conn: psycopg.Connection[Any]
) -> None:
    conn.execute("UPDATE pods.host SET used = capacity")  # every slot taken: the first attempt waits
    with pytest.raises(Snooze):
        provision(resources, "pod-1")
    conn.execute("UPDATE pods.host SET used = 0")
    conn.execute("DELETE FROM pods.pod WHERE id = 'pod-1'")  # deleted meanwhile (as cleanup-old does)
    data = {"podId": "pod-1", "spec": SPEC, "userId": "u1"}
    retried = lifecycle.provision(resources, job("provision-pod", data, attempt=2))
    assert retried == {"status": "deleted", "skipped": True}
    assert conn.execute("SELECT count(*) FROM pods.pod").fetchone() == (0,)
    assert conn.execute("SELECT sum(used) FROM pods.host").fetchone() == (0,)
    # A first attempt creates the pod, as always.
    assert provision(resources, "pod-1")["host"] == "host-1"
