"""Concurrent workers: every job is claimed and completed exactly once."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import psycopg

from jobqueue import Queue

JOBS = 20_000
WORKERS = 4


def test_four_workers_drain_twenty_thousand_jobs_exactly_once(
    queue: Queue, dsn: str, conn: psycopg.Connection[Any]
) -> None:
    queue.create_queue("drain")
    for start in range(0, JOBS, 5000):
        queue.insert("drain", [{"data": n} for n in range(start, start + 5000)])
    fetched: list[list[str]] = [[] for _ in range(WORKERS)]
    completed: list[list[str]] = [[] for _ in range(WORKERS)]
    barrier = threading.Barrier(WORKERS)

    def worker(index: int) -> None:
        with Queue(dsn) as q:
            barrier.wait()
            while jobs := q.fetch("drain", 100):
                fetched[index] += [j.id for j in jobs]
                completed[index] += q.complete("drain", jobs)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    all_fetched = [i for ids in fetched for i in ids]
    all_completed = [i for ids in completed for i in ids]
    assert len(all_fetched) == JOBS and len(set(all_fetched)) == JOBS
    assert Counter(all_completed) == Counter(all_fetched)
    assert all(ids for ids in fetched), "every worker got a share"
    states = conn.execute("SELECT state::text, count(*) FROM jobqueue.job GROUP BY 1").fetchall()
    assert states == [("completed", JOBS)]
