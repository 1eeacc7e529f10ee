"""Fetch cost of the ordering and concurrency controls, beside a standard queue's, in the same run.

Four queues hold the same number of queued jobs spread over the same number of
keys/groups: a standard queue (the baseline), a key_strict_fifo queue (keys),
a standard queue fetched with a group limit (groups), and an exclusive queue
(one job per key, so it holds as many jobs as keys). Each figure is the median
of fetch(100) + complete(100) rounds, at a small and a large backlog.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from jobqueue import Queue

KEYS = 1_000
ROUNDS = 30
BATCH = 100


def _fresh(dsn: str) -> Queue:
    queue = Queue(dsn)
    queue.db.connection().execute("DROP SCHEMA IF EXISTS jobqueue CASCADE")
    queue.migrate()
    return queue


def _fill(queue: Queue, name: str, count: int, *, key: bool = False, group: bool = False) -> None:
    for start in range(0, count, 10_000):
        jobs: list[dict[str, Any]] = []
        for n in range(start, min(count, start + 10_000)):
            job: dict[str, Any] = {"data": {"n": n}}
            if key:
                job["singleton_key"] = f"k{n % KEYS}"
            if group:
                job["group"] = {"id": f"g{n % KEYS}"}
            jobs.append(job)
        queue.insert(name, jobs)  # type: ignore[arg-type]


def _rounds_ms(queue: Queue, name: str, **fetch: Any) -> float:
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        jobs = queue.fetch(name, BATCH, **fetch)
        queue.complete(name, jobs)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def compare(dsn: str, sizes: tuple[int, ...]) -> dict[str, Any]:
    """Median ms of fetch(100) + complete at each backlog size, and each control's ratio to standard."""
    results: dict[str, Any] = {"keys": KEYS, "batch": BATCH, "sizes": {}}
    for size in sizes:
        queue = _fresh(dsn)
        queue.create_queue("standard")
        queue.create_queue("fifo", policy="key_strict_fifo")
        queue.create_queue("grouped")
        queue.create_queue("exclusive", policy="exclusive")
        _fill(queue, "standard", size)
        _fill(queue, "fifo", size, key=True)
        _fill(queue, "grouped", size, group=True)
        _fill(queue, "exclusive", KEYS, key=True)
        queue.db.connection().execute("VACUUM ANALYZE")
        ms = {
            "standard": _rounds_ms(queue, "standard"),
            "key_strict_fifo": _rounds_ms(queue, "fifo"),
            "group_concurrency": _rounds_ms(queue, "grouped", group_concurrency=1),
            "exclusive": _rounds_ms(queue, "exclusive"),
        }
        queue.close()
        results["sizes"][size] = {"ms": ms, "ratio": {name: value / ms["standard"] for name, value in ms.items()}}
    return results
