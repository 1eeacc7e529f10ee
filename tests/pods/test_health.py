"""Health checks: healthy, unhealthy (one restart, however often checked), unreachable."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from jobqueue import Job, Queue
from pods import health, lifecycle
from pods.context import Resources
from podslocal.fake_host_agent import FakeHostAgent
from tests.pods.conftest import job, pod_row


def running_pods(resources: Resources, count: int) -> list[str]:
    ids = [f"pod-{n}" for n in range(count)]
    for pod_id in ids:
        lifecycle.provision(resources, job("provision-pod", {"podId": pod_id, "spec": {"tier": "dev.small"}}))
    return ids


def test_healthy_pods_get_their_check_time(resources: Resources, conn: psycopg.Connection[Any]) -> None:
    [pod_id] = running_pods(resources, 1)
    assert health.health_check(resources, job("health-check", {"podId": pod_id})) == {pod_id: "healthy"}
    assert pod_row(conn, pod_id)["last_health_check"] is not None


def test_unhealthy_pod_queues_one_restart_however_often_checked(
    resources: Resources, agents: list[FakeHostAgent], queue: Queue, conn: psycopg.Connection[Any]
) -> None:
    [pod_id] = running_pods(resources, 1)
    agents[0].faults.unhealthy.add(pod_id)
    for _ in range(3):  # a flapping pod, checked again and again
        assert health.health_check(resources, job("health-check", {"podId": pod_id})) == {pod_id: "unhealthy"}
    restarts = queue.find_jobs(lifecycle.LIFECYCLE)
    assert len(restarts) == 1
    assert restarts[0].data == {"action": "restart", "podId": pod_id, "reason": "unhealthy"}
    assert restarts[0].singleton_key == pod_id  # in the pod's own order
    assert pod_row(conn, pod_id)["status"] == "restarting"
    assert health.health_check_all(resources, job("health-check-all", {})) == {"checks_queued": 0}


def test_unreachable_pod_is_marked_unhealthy_and_recovers(
    resources: Resources, agents: list[FakeHostAgent], conn: psycopg.Connection[Any]
) -> None:
    [pod_id] = running_pods(resources, 1)
    agents[0].faults.fail_next = 1
    assert health.health_check(resources, job("health-check", {"podId": pod_id})) == {pod_id: "unreachable"}
    assert pod_row(conn, pod_id)["status"] == "unhealthy"
    assert health.health_check(resources, job("health-check", {"podId": pod_id})) == {pod_id: "healthy"}
    assert pod_row(conn, pod_id)["status"] == "running"


def test_check_all_running_pods_with_bounded_concurrency(resources: Resources, agents: list[FakeHostAgent]) -> None:
    ids = running_pods(resources, 3)
    agents[0].faults.unhealthy.add(ids[1])
    result = health.health_check(resources, job("health-check", {}))
    assert result == {ids[0]: "healthy", ids[1]: "unhealthy", ids[2]: "healthy"}


def test_health_check_all_fans_out_one_job_per_running_pod(
    resources: Resources, queue: Queue, conn: psycopg.Connection[Any]
) -> None:
    ids = running_pods(resources, 3)
    lifecycle.stop(resources, job("stop-pod", {"podId": ids[0]}))
    conn.execute("UPDATE pods.pod SET status = 'unhealthy' WHERE id = %s", (ids[2],))  # unreachable last time
    fan_out = Job(str(uuid.uuid4()), "health-check-all", {})
    assert health.health_check_all(resources, fan_out) == {
        "checks_queued": 2,
        "batch": f"health-check-all:{fan_out.id}",
    }
    queued = sorted(j.data["podId"] for j in queue.find_jobs("health-check"))
    assert queued == ids[1:]
    # Its retry (the first attempt's completion lost) makes no second round.
    assert health.health_check_all(resources, fan_out)["already"] is True
    assert len(queue.find_jobs("health-check")) == 2


def test_a_round_of_health_checks_ends_in_one_report_of_the_pods_in_trouble(
    resources: Resources, queue: Queue, agents: list[FakeHostAgent]
) -> None:
    ids = running_pods(resources, 3)
    agents[0].faults.unhealthy.add(ids[1])
    round_ = health.health_check_all(resources, Job(str(uuid.uuid4()), "health-check-all", {}))
    checks = queue.fetch("health-check", 10)
    for check in checks:
        queue.complete("health-check", [check], health.health_check(resources, check))
    assert queue.find_jobs(health.HEALTH_REPORT)[0].origin == {
        "batch": {"id": round_["batch"], "total": 3, "completed": 3, "failed": 0, "cancelled": 0}
    }
    [report_job] = queue.fetch(health.HEALTH_REPORT)
    report = health.health_report(resources, report_job)
    assert report == {"checked": 3, "checks_failed": 0, "unhealthy": [], "restarting": [ids[1]]}
    assert len(queue.find_jobs(health.HEALTH_REPORT)) == 1
