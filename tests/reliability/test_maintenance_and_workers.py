"""Maintenance overlapping itself and a draining worker: no errors, no double expiry."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from jobqueue import Queue


def test_expiry_races_with_a_worker_and_itself(queue: Queue, dsn: str, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("q", retry_limit=5)
    queue.insert("q", [{"data": n} for n in range(600)])
    held = queue.fetch("q", 300)  # a worker holding 300 jobs when they expire
    errors: list[BaseException] = []
    expired: list[int] = []
    barrier = threading.Barrier(4)

    def maintenance() -> None:
        try:
            with Queue(dsn) as own:
                barrier.wait()
                retried, failed = own.expire(batch_size=50, now=datetime.now(UTC) + timedelta(hours=1))
                expired.append(retried + failed)
                own.maintain(batch_size=50)
        except BaseException as exc:
            errors.append(exc)

    def worker() -> None:
        try:
            with Queue(dsn) as own:
                barrier.wait()
                while jobs := own.fetch("q", 50):
                    own.complete("q", jobs)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=maintenance) for _ in range(3)] + [threading.Thread(target=worker)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    # Each expiry moved one attempt to retry exactly once: the expiries reported add up to the
    # retries recorded. (A job retried, fetched again by the worker and expired again under the
    # fake clock is a second attempt expiring, which is legitimate.)
    # Retries scheduled: those started (retry_count), and those still waiting in retry.
    (retries,) = conn.execute(
        "SELECT sum(retry_count + (state = 'retry' AND started_on IS NOT NULL)::int) FROM jobqueue.job"
    ).fetchone() or (0,)
    assert sum(expired) == retries
    assert sum(expired) >= len(held)
    # The worker that held the expired jobs cannot complete them late.
    assert queue.complete("q", held) == []
