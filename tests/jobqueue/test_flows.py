"""Flows: jobs across queues created together, each starting once the jobs it depends on completed."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

from jobqueue import InvalidOptionError, JobState, PolicyConflictError, Queue
from tests.helpers import make_ready


@pytest.fixture
def queues(queue: Queue) -> Queue:
    for name in ("provision", "check", "notify"):
        queue.create_queue(name, retry_limit=0)
    return queue


def test_a_child_starts_only_after_all_its_parents_completed(queues: Queue) -> None:
    q = queues
    ids = q.flow(
        [
            {"ref": "a", "name": "provision", "data": {"pod": "p1"}},
            {"ref": "b", "name": "provision", "data": {"pod": "p2"}},
            {"ref": "check", "name": "check", "data": {}, "depends_on": ["a", "b"]},
            {"ref": "mail", "name": "notify", "data": {}, "depends_on": ["check"], "options": {"priority": 3}},
        ]
    )
    assert set(ids) == {"a", "b", "check", "mail"}
    assert q.fetch("check") == [] and q.fetch("notify") == []
    assert {j.id for j in q.get_dependencies(ids["check"])} == {ids["a"], ids["b"]}
    assert [j.id for j in q.get_dependents(ids["check"])] == [ids["mail"]]
    parents = q.fetch("provision", 2)
    q.complete("provision", parents[:1])
    assert q.fetch("check") == []  # one parent left
    q.complete("provision", parents[1:])
    [check] = q.fetch("check")  # ready the moment its last parent completed: no background pass
    q.complete("check", [check])
    [mail] = q.fetch("notify")
    assert mail.priority == 3


def test_a_failed_parent_cancels_everything_below_it_with_the_reason(
    queues: Queue, conn: psycopg.Connection[Any]
) -> None:
    q = queues
    ids = q.flow(
        [
            {"ref": "a", "name": "provision", "data": {}},
            {"ref": "check", "name": "check", "data": {}, "depends_on": ["a"]},
            {"ref": "mail", "name": "notify", "data": {}, "depends_on": ["check"]},
            {"ref": "other", "name": "notify", "data": {}},
        ]
    )
    q.fail("provision", q.fetch("provision"), "no host")
    for ref in ("check", "mail"):
        job = q.get_job(ids[ref])
        assert job is not None and job.state == JobState.CANCELLED
        assert job.output["type"] == "DependencyFailed" and job.output["parent"] == ids["a"]
    assert q.get_job(ids["other"]).state == JobState.CREATED  # type: ignore[union-attr]  # not below it


def test_cancelling_a_parent_cancels_its_children(queues: Queue) -> None:
    q = queues
    ids = q.flow([{"ref": "a", "name": "provision"}, {"ref": "b", "name": "check", "depends_on": ["a"]}])
    q.cancel("provision", ids["a"])
    assert q.get_job(ids["b"]).state == JobState.CANCELLED  # type: ignore[union-attr]


def test_a_parent_retried_keeps_its_children_waiting(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("flaky", retry_limit=1)
    queue.create_queue("after")
    ids = queue.flow([{"ref": "a", "name": "flaky"}, {"ref": "b", "name": "after", "depends_on": ["a"]}])
    queue.fail("flaky", queue.fetch("flaky"), "once")  # a retry: not the end
    assert queue.get_job(ids["b"]).state == JobState.CREATED  # type: ignore[union-attr]
    make_ready(conn, ids["a"])
    queue.complete("flaky", queue.fetch("flaky"))
    assert [j.id for j in queue.fetch("after")] == [ids["b"]]


def test_parents_completed_at_the_same_moment_in_two_workers_start_the_child_once(
    queues: Queue, dsn: str, conn: psycopg.Connection[Any]
) -> None:
    for round_ in range(20):
        ids = queues.flow(
            [
                {"ref": "a", "name": "provision", "data": {"r": round_}},
                {"ref": "b", "name": "provision", "data": {"r": round_}},
                {"ref": "c", "name": "check", "data": {"r": round_}, "depends_on": ["a", "b"]},
            ]
        )
        a, b = queues.fetch("provision", 2)
        barrier = threading.Barrier(2)

        def complete(job: Any, barrier: threading.Barrier = barrier) -> None:
            with Queue(dsn) as worker:
                barrier.wait()
                worker.complete("provision", [job])

        threads = [threading.Thread(target=complete, args=(job,)) for job in (a, b)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        row = conn.execute("SELECT parents_left, start_after <= now() FROM jobqueue.job WHERE id = %s", (ids["c"],))
        assert row.fetchone() == (0, True)
        [child] = queues.fetch("check", 10)
        assert child.id == ids["c"]
        queues.complete("check", [child])


@pytest.mark.parametrize(
    ("jobs", "message"),
    [
        ([], "non-empty list"),
        ([{"ref": "a", "name": "provision"}, {"ref": "a", "name": "check"}], "ref 'a' is used twice"),
        ([{"ref": "a", "name": "check", "depends_on": ["x"]}], "depends on unknown ref"),
        (
            [{"ref": "a", "name": "check", "depends_on": ["b"]}, {"ref": "b", "name": "check", "depends_on": ["a"]}],
            "form a cycle",
        ),
        ([{"ref": "a", "name": "check", "dependsOn": []}], "unknown key"),
        (
            [
                {"ref": "a", "name": "check"},
                {"ref": "b", "name": "check", "depends_on": ["a"], "options": {"start_after": 5}},
            ],
            "starts when they complete",
        ),
    ],
)
def test_a_malformed_flow_is_refused_and_creates_nothing(queues: Queue, jobs: list[Any], message: str) -> None:
    with pytest.raises(InvalidOptionError, match=message):
        queues.flow(jobs)
    assert queues.queue_size("check") == 0


def test_a_flow_is_all_or_nothing(queues: Queue) -> None:
    queues.create_queue("once", policy="short")
    queues.send("once", {}, singleton_key="k")
    with pytest.raises(PolicyConflictError, match="refused job 'b'"):
        queues.flow([{"ref": "a", "name": "check"}, {"ref": "b", "name": "once", "options": {"singleton_key": "k"}}])
    assert queues.queue_size("check") == 0
