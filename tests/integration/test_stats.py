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
