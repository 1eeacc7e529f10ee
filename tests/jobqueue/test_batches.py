"""Batches: counted as their jobs finish, and exactly one on_finish job once every one has."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from jobqueue import InvalidOptionError, Queue, UnknownQueueError


def _summaries(queue: Queue) -> list[Any]:
    return queue.find_jobs("summary", limit=10)


@pytest.mark.parametrize(
    "jobs",
    [
        [{"data": n} for n in range(6)],  # data only: COPY
        [{"data": n, "priority": n % 2} for n in range(6)],  # with options: COPY
        [{"data": n, "id": f"00000000-0000-7000-8000-00000000000{n}"} for n in range(6)],  # own ids: the statement
    ],
)
def test_a_batch_counts_its_jobs_and_sends_one_summary_when_all_have_finished(
    queue: Queue, jobs: list[dict[str, Any]]
) -> None:
    queue.create_queue("work", retry_limit=0)
    queue.create_queue("summary")
    ids = queue.insert("work", jobs, batch={"id": "b1", "on_finish": {"name": "summary", "data": {"report": "r"}}})
    assert len(ids) == 6
    assert {queue.get_job(i).batch_id for i in ids} == {"b1"}  # type: ignore[union-attr]
    fetched = queue.fetch("work", 6)
    queue.complete("work", fetched[:3])
    queue.fail("work", fetched[3:4], "boom")
    queue.cancel("work", [fetched[4].id])
    batch = queue.get_batch("b1")
    assert batch is not None and (batch.total, batch.completed, batch.failed, batch.cancelled) == (6, 3, 1, 1)
    assert batch.unfinished == 1 and batch.finished_on is None and _summaries(queue) == []
    queue.delete_job("work", [fetched[5].id])  # deleted before it finished: counted as cancelled
    batch = queue.get_batch("b1")
    assert batch is not None and batch.finished_on is not None and batch.cancelled == 2
    [summary] = _summaries(queue)
    assert summary.data == {"report": "r"}
    assert summary.origin == {"batch": {"id": "b1", "total": 6, "completed": 3, "failed": 1, "cancelled": 2}}


def test_a_retry_is_not_counted_until_it_ends(queue: Queue) -> None:
    queue.create_queue("work", retry_limit=1)
    queue.create_queue("summary")
    queue.insert("work", [{"data": 1}], batch={"id": "b", "on_finish": {"name": "summary"}})
    queue.fail("work", queue.fetch("work"), "first")  # to retry: not finished
    assert queue.get_batch("b").failed == 0  # type: ignore[union-attr]
    queue.fail("work", queue.fetch("work", now=datetime.now(UTC) + timedelta(hours=1)), "second")
    batch = queue.get_batch("b")
    assert batch is not None and batch.failed == 1 and batch.finished_on is not None
    assert len(_summaries(queue)) == 1


def test_an_operators_retry_takes_a_failed_job_back_off_an_unfinished_batch(queue: Queue) -> None:
    queue.create_queue("work", retry_limit=0)
    queue.create_queue("summary")
    queue.insert("work", [{"data": n} for n in range(2)], batch={"id": "b", "on_finish": {"name": "summary"}})
    first, second = queue.fetch("work", 2)
    queue.fail("work", [first], "boom")
    assert queue.get_batch("b").failed == 1  # type: ignore[union-attr]
    queue.retry("work", [first.id])
    assert queue.get_batch("b").failed == 0  # type: ignore[union-attr]
    queue.complete("work", [second])
    queue.complete("work", queue.fetch("work"))
    batch = queue.get_batch("b")
    assert batch is not None and (batch.completed, batch.failed, batch.finished_on is not None) == (2, 0, True)
    assert len(_summaries(queue)) == 1


def test_expired_and_unstarted_jobs_count_as_they_end(queue: Queue) -> None:
    queue.create_queue("work", retry_limit=0, expire_in=1)
    queue.create_queue("summary")
    queue.insert("work", [{"data": n} for n in range(2)], batch={"id": "b", "on_finish": {"name": "summary"}})
    queue.fetch("work", 1)
    later = datetime.now(UTC) + timedelta(days=30)
    result = queue.maintain(now=later)  # one expires (failed), the other was never started (retention)
    assert (result.expired_failed, result.unstarted_failed) == (1, 1)
    batch = queue.get_batch("b")
    assert batch is not None and batch.failed == 2 and batch.finished_on is not None
    assert len(_summaries(queue)) == 1


def test_bad_batches_are_refused_with_what_is_wrong(queue: Queue) -> None:
    queue.create_queue("work")
    queue.create_queue("short", policy="short")
    with pytest.raises(InvalidOptionError, match="batch must be"):
        queue.insert("work", [{"data": 1}], batch={"on_finish": {"name": "work"}})  # type: ignore[typeddict-item]
    with pytest.raises(InvalidOptionError, match="batch id must be a string"):
        queue.insert("work", [{"data": 1}], batch={"id": ""})
    with pytest.raises(InvalidOptionError, match="has no job"):
        queue.insert("work", [], batch={"id": "b"})
    with pytest.raises(UnknownQueueError, match="on_finish queue"):
        queue.insert("work", [{"data": 1}], batch={"id": "b", "on_finish": {"name": "nowhere"}})
    with pytest.raises(InvalidOptionError, match="on_finish queue 'short' is short"):
        queue.insert("work", [{"data": 1}], batch={"id": "b", "on_finish": {"name": "short"}})
    assert queue.queue_size("work") == 0  # nothing was written
    queue.insert("work", [{"data": 1}], batch={"id": "b"})
    with pytest.raises(InvalidOptionError, match="batch 'b' exists already"):
        queue.insert("work", [{"data": 2}], batch={"id": "b"})
    assert queue.queue_size("work") == 1


def test_the_last_jobs_finished_at_once_by_many_workers_send_exactly_one_summary(
    dsn: str, conn: psycopg.Connection[Any]
) -> None:
    """20 rounds: a batch of 16 jobs, each completed by its own worker at the same instant."""
    workers = 8
    with Queue(dsn) as setup:
        setup.create_queue("work")
        setup.create_queue("summary")
    for round_number in range(20):
        batch_id = f"race-{round_number}"
        with Queue(dsn) as setup:
            setup.insert(
                "work",
                [{"data": n} for n in range(2 * workers)],
                batch={"id": batch_id, "on_finish": {"name": "summary"}},
            )
            claimed = [setup.fetch("work", 2) for _ in range(workers)]
        start = threading.Barrier(workers)

        def finish(jobs: list[Any], start: threading.Barrier) -> None:
            with Queue(dsn) as worker:
                start.wait(timeout=10)
                worker.complete("work", jobs)

        threads = [threading.Thread(target=finish, args=(jobs, start)) for jobs in claimed]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        sent = conn.execute(
            "SELECT count(*) FROM jobqueue.job WHERE name = 'summary' AND origin->'batch'->>'id' = %s", (batch_id,)
        ).fetchone()
        assert sent == (1,), batch_id


def test_a_batch_of_100000_jobs_costs_one_counter(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("work")
    queue.create_queue("summary")
    queue.insert("work", ({"data": n} for n in range(100_000)), batch={"id": "big", "on_finish": {"name": "summary"}})
    assert conn.execute("SELECT count(*) FROM jobqueue.batch").fetchone() == (1,)
    while jobs := queue.fetch("work", 1000):
        queue.complete("work", jobs)
    batch = queue.get_batch("big")
    assert batch is not None and (batch.completed, batch.unfinished) == (100_000, 0) and batch.finished_on
    assert len(_summaries(queue)) == 1
