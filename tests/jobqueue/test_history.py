"""A queue's history (Queue.history): what maintenance records per queue and minute, kept 14 days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from jobqueue import InvalidOptionError, Queue


def _total(queue: Queue, name: str | None, since: datetime, until: datetime) -> Any:
    """The whole span as one bucket."""
    points = queue.history(name, since, until, bucket_seconds=86_400)
    assert len(points) <= 1
    return points[0] if points else None


def test_a_minute_counts_sends_starts_ends_and_their_times(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    begun = datetime.now(UTC)
    queue.create_queue("q", retry_limit=0)
    queue.create_queue("other")
    ids = queue.insert("q", [{"data": {"n": n}} for n in range(10)])
    queue.send("other", {})
    jobs = queue.fetch("q", 6)
    queue.complete("q", jobs[:4])
    queue.fail("q", jobs[4:])
    queue.cancel("q", [i for i in ids if i not in {job.id for job in jobs}][:1])
    # The run times, known: each completed job ran 2 s, each failed one 30 s.
    conn.execute(
        "UPDATE jobqueue.job SET started_on = completed_on - CASE WHEN state = 'completed'"
        " THEN interval '2 seconds' ELSE interval '30 seconds' END WHERE name = 'q' AND started_on IS NOT NULL"
    )
    later = datetime.now(UTC) + timedelta(minutes=2)
    assert queue.record_history(now=later) >= 1
    point = _total(queue, "q", begun - timedelta(minutes=5), later)
    assert (point.sent, point.started, point.completed, point.failed, point.cancelled, point.expired) == (
        10,
        6,
        4,
        2,
        1,
        0,
    )
    assert point.run_p50 == pytest.approx(2.0) and point.run_p99 == pytest.approx(30.0, rel=0.2)
    assert point.wait_p50 is not None and 0 <= point.wait_p50 < 60
    # Every queue's at once; nothing recorded twice: the mark moved on.
    assert _total(queue, None, begun - timedelta(minutes=5), later).sent == 11
    assert queue.record_history(now=later) == 0


def test_recording_a_minute_again_gives_the_same_counts(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    begun = datetime.now(UTC)
    queue.create_queue("q")
    queue.insert("q", [{"data": {}} for _ in range(5)])
    queue.complete("q", queue.fetch("q", 3))
    later = datetime.now(UTC) + timedelta(minutes=2)
    queue.record_history(now=later)
    first = _total(queue, "q", begun - timedelta(minutes=5), later)
    conn.execute("UPDATE jobqueue.history_mark SET recorded_through = recorded_through - interval '1 hour'")
    queue.record_history(now=later)
    assert _total(queue, "q", begun - timedelta(minutes=5), later) == first


def test_expiry_is_counted_and_archived_jobs_still_count(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    begun = datetime.now(UTC)
    queue.create_queue("q", expire_in=1, retry_limit=1, archive_after=60)
    queue.insert("q", [{"data": {}} for _ in range(3)])
    queue.complete("q", queue.fetch("q", 2))
    queue.fetch("q", 1)  # left to expire
    later = datetime.now(UTC) + timedelta(minutes=3)
    # maintain: expires the job, archives the completed ones (archive_after 60 s), records the minutes.
    result = queue.maintain(now=later)
    assert result.expired_retried == 1 and result.history_minutes >= 1
    point = _total(queue, "q", begun - timedelta(minutes=5), later + timedelta(minutes=1))
    # The expired attempt's job waits for its retry: its start is counted when the retry starts.
    assert (point.sent, point.started, point.completed, point.expired) == (3, 2, 2, 1)
    assert conn.execute("SELECT count(*) FROM jobqueue.archive WHERE name = 'q'").fetchone() == (2,)
    conn.execute("UPDATE jobqueue.history_mark SET recorded_through = recorded_through - interval '1 hour'")
    queue.record_history(now=later)
    again = _total(queue, "q", begun - timedelta(minutes=5), later + timedelta(minutes=1))
    assert (again.sent, again.completed) == (3, 2)


def test_history_is_kept_fourteen_days_and_idle_queues_cost_no_row(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("q")
    queue.create_queue("idle")
    queue.send("q", {})
    now = datetime.now(UTC) + timedelta(minutes=2)
    queue.record_history(now=now)
    rows = conn.execute("SELECT DISTINCT name FROM jobqueue.queue_history").fetchall()
    assert rows == [("q",)]
    queue.record_history(now=now + timedelta(days=15))
    assert conn.execute("SELECT count(*) FROM jobqueue.queue_history").fetchone() == (0,)


@pytest.mark.parametrize("bucket", [0, 30, 90, 86_460, "60"])
def test_a_bucket_must_be_whole_minutes(queue: Queue, bucket: Any) -> None:
    with pytest.raises(InvalidOptionError, match="bucket_seconds must be whole minutes"):
        queue.history("q", datetime.now(UTC), bucket_seconds=bucket)


def test_a_maintainer_that_was_away_catches_up_over_its_next_runs(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("q")
    queue.send("q", {})
    now = datetime.now(UTC) + timedelta(minutes=2)
    queue.record_history(now=now)
    # Away for three hours: each run records up to an hour more, none is skipped.
    back = conn.execute("SELECT recorded_through FROM jobqueue.history_mark").fetchone()[0]  # type: ignore[index]
    later = now + timedelta(hours=3)
    marks = []
    for _ in range(4):
        queue.record_history(now=later)
        marks.append(conn.execute("SELECT recorded_through FROM jobqueue.history_mark").fetchone()[0])  # type: ignore[index]
    assert [round((m - back).total_seconds() / 3600, 2) for m in marks[:3]] == [1.0, 2.0, 3.0]
    assert marks[3] == marks[2]  # caught up
