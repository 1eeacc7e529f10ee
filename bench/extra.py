"""Benchmarks beyond throughput: latency at scale, cold start, memory."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from jobqueue import Queue

ROOT = Path(__file__).parents[1]
QUEUE = "scale"


def _fresh(dsn: str) -> Queue:
    queue = Queue(dsn)
    queue.db.connection().execute("DROP SCHEMA IF EXISTS jobqueue CASCADE")
    queue.migrate()
    queue.create_queue(QUEUE)
    return queue


def _fill(queue: Queue, count: int) -> None:
    batch = [{"data": {"n": 1}}] * 10_000
    for start in range(0, count, 10_000):
        queue.insert(QUEUE, batch[: min(10_000, count - start)])
    queue.db.connection().execute("VACUUM ANALYZE jobqueue.job")


def _fetch_complete_ms(queue: Queue, rounds: int = 50) -> tuple[float, float]:
    fetch, complete = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        jobs = queue.fetch(QUEUE, 100)
        middle = time.perf_counter()
        queue.complete(QUEUE, jobs)
        fetch.append((middle - start) * 1000)
        complete.append((time.perf_counter() - middle) * 1000)
    return statistics.median(fetch), statistics.median(complete)


def scaling(dsn: str, small: int, large: int) -> dict[str, Any]:
    """fetch(100) and complete(100) latency with `small` and `large` queued jobs, and beside `large` finished ones."""
    results: dict[str, Any] = {}
    for label, queued in (("queued_small", small), ("queued_large", large)):
        queue = _fresh(dsn)
        _fill(queue, queued)
        results[label] = dict(zip(("fetch_ms", "complete_ms"), _fetch_complete_ms(queue), strict=True))
        results[label]["jobs"] = queued
        queue.close()
    queue = _fresh(dsn)
    _fill(queue, large)
    conn = queue.db.connection()
    # Finished jobs not yet archived: set directly (a bench shortcut around the transition trigger).
    conn.execute("ALTER TABLE jobqueue.job DISABLE TRIGGER job_state_transition")
    conn.execute("UPDATE jobqueue.job SET state = 'completed', completed_on = now()")
    conn.execute("ALTER TABLE jobqueue.job ENABLE TRIGGER job_state_transition")
    _fill(queue, small)
    results["finished_large_plus_queued_small"] = dict(
        zip(("fetch_ms", "complete_ms"), _fetch_complete_ms(queue), strict=True)
    )
    results["finished_large_plus_queued_small"]["jobs"] = large
    queue.close()
    return results


def cold_start(repeats: int = 3) -> dict[str, float]:
    """Import time of each function module in a fresh interpreter (best of `repeats`), ms."""
    code = (
        "import importlib.util, sys, time\n"
        "t = time.perf_counter()\n"
        "spec = importlib.util.spec_from_file_location('app', sys.argv[1])\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "print((time.perf_counter() - t) * 1000)\n"
    )
    env = {
        **os.environ,
        "QUEUE_NAME": "send-email",
        "POWERTOOLS_METRICS_NAMESPACE": "Bench",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "DATABASE_URL": "postgresql://localhost/unused",
    }
    timings = {}
    for name in ("worker", "scheduler", "maintenance", "api"):
        runs = [
            float(
                subprocess.run(
                    [sys.executable, "-c", code, str(ROOT / "functions" / name / "app.py")],
                    capture_output=True,
                    text=True,
                    env=env,
                    check=True,
                    cwd=ROOT,
                ).stdout.strip()
            )
            for _ in range(repeats)
        ]
        timings[name] = min(runs)
    return timings


_RSS_WORKER = """
import json, resource, sys
from jobqueue import Queue
with Queue(sys.argv[1]) as q:
    drained = 0
    while jobs := q.fetch("scale", 100):
        drained += len(q.complete("scale", jobs))
print(json.dumps({"drained": drained, "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def worker_rss(dsn: str, count: int) -> dict[str, float]:
    """Peak memory of a process draining `count` jobs."""
    queue = _fresh(dsn)
    _fill(queue, count)
    queue.close()
    out = subprocess.run([sys.executable, "-c", _RSS_WORKER, dsn], capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])
