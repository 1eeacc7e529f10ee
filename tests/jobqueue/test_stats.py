from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from jobqueue import Queue


def test_queue_stats_by_state_and_oldest_wait(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("a", retry_limit=1, retry_delay=3600)
    queue.create_queue("b")
    queue.insert("a", [{"data": n} for n in range(6)])
    jobs = queue.fetch("a", 4)
    queue.complete("a", jobs[0])
    queue.fail("a", jobs[1], "boom")  # -> retry (not due for an hour)
    queue.fail("a", jobs[2], "boom", retryable=False)
    queue.cancel("a", jobs[3].id)
    queue.send("a", {}, start_after=3600)  # delayed: queued but not yet waiting
    conn.execute(
        "UPDATE jobqueue.job SET start_after = now() - interval '10 minutes' WHERE state = 'created'"
        " AND start_after <= now()"
    )
    stats = {s.name: s for s in queue.get_queue_stats()}
    a = stats["a"]
    assert (a.created, a.retry, a.active, a.completed, a.cancelled, a.failed) == (3, 1, 0, 1, 1, 1)
    assert a.queued == 4
    assert 599 <= a.oldest_queued_seconds <= 660
    assert stats["b"].created == 0 and stats["b"].oldest_queued_seconds == 0
    assert queue.queue_size("a") == 4
    assert queue.queue_size("a", states=["completed", "failed"]) == 2
    later = {s.name: s for s in queue.get_queue_stats(now=datetime.now(UTC) + timedelta(hours=2))}
    assert later["a"].oldest_queued_seconds > 7000


def test_throughput_by_bucket_counts_hot_and_archived_jobs(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("t", archive_after=0)
    queue.create_queue("idle")
    queue.insert("t", [{"data": n} for n in range(7)])
    jobs = queue.fetch("t", 7)
    queue.complete("t", jobs[:4])
    queue.fail("t", jobs[4:6], "boom", retryable=False)
    queue.cancel("t", jobs[6].id)  # cancelled: neither completed nor failed
    since = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    # Spread them over time: two completed in the first bucket, the rest in the third; one long before.
    for job, minute in zip(jobs[:6], (1, 4, 11, 12, 13, -30), strict=True):
        conn.execute(
            "UPDATE jobqueue.job SET completed_on = %s WHERE id = %s", (since + timedelta(minutes=minute), job.id)
        )
    # Half of them go to the archive: the counts must not change.
    assert queue.archive(now=since + timedelta(minutes=12, seconds=30)) == 5
    rows = queue.throughput(since=since, bucket_seconds=300)
    assert [(r.name, r.bucket, r.completed, r.failed) for r in rows] == [
        ("t", since, 2, 0),
        ("t", since + timedelta(minutes=10), 2, 1),
    ]
    assert queue.throughput(since=since + timedelta(hours=1)) == []


def test_throughput_refuses_bad_arguments(queue: Queue) -> None:
    import pytest

    from jobqueue import InvalidOptionError

    with pytest.raises(InvalidOptionError, match="time zone"):
        queue.throughput(since=datetime(2026, 1, 1))
    with pytest.raises(InvalidOptionError, match="bucket_seconds"):
        queue.throughput(since=datetime.now(UTC), bucket_seconds=0)
    with pytest.raises(InvalidOptionError, match="since must be a datetime"):
        queue.throughput(since="yesterday")  # type: ignore[arg-type]
