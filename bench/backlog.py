"""A backlog drained by scale-out: worker invocations in processes of their own, at most
MAX_CONCURRENCY at once (local.lambda_pool), started by one tick as EventBridge would.

The root invocation drains MAX_JOBS jobs and starts chains of scale-out
invocations; each hands over to one successor while work is left. Reported
per concurrency: how long the backlog took, and where the time went (cold
starts, time in the database, the rest of the invocations, and the pool's
own gaps between invocations).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from local.lambda_pool import FunctionPool

ROOT = Path(__file__).parents[1]
QUEUE = "send-email"


def drain_backlog(dsn: str, jobs: int, concurrency: int, max_jobs: int = 1000) -> dict[str, Any]:
    from jobqueue import Queue
    from runtime import catalog

    environment = {
        "DATABASE_URL": dsn,
        "QUEUE_NAME": QUEUE,
        "JOBS_PLATFORM": "bench.noop_catalog",
        "MAX_JOBS": str(max_jobs),
        "MAX_CONCURRENCY": str(concurrency),
        "POWERTOOLS_METRICS_NAMESPACE": "Bench",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    os.environ.setdefault("JOBS_PLATFORM", "pods.jobs")
    with Queue(dsn) as queue:
        queue.migrate()
        catalog.register(queue)
        queue.db.connection().execute("TRUNCATE jobqueue.job, jobqueue.archive")
        for start in range(0, jobs, 10_000):
            queue.insert(QUEUE, [{"data": {"to": "someone@example.com"}}] * min(10_000, jobs - start))
        queue.db.connection().execute("VACUUM ANALYZE")
        pool = FunctionPool(ROOT / "functions" / "worker" / "app.py", environment, concurrency)
        started = time.perf_counter()
        try:
            pool.invoke({"source": "aws.events"})  # the tick
            invocations = pool.run()
        finally:
            wall = time.perf_counter() - started
            pool.stop()
        left = queue.queue_size(QUEUE)
        completed = queue.queue_size(QUEUE, ["completed"])
    errors = [i.error for i in invocations if i.error]
    if errors or left or completed != jobs:
        raise RuntimeError(f"backlog not drained: {left} left, {completed} completed, errors: {errors[:1]}")
    results = [i.result for i in invocations]
    busy_s = sum(i.seconds for i in invocations)
    database_s = sum(r["database_ms"] for r in results) / 1000
    drain_s = sum(r["elapsed_ms"] for r in results) / 1000
    cold_s = sum(c.started_s for c in pool.containers)
    return {
        "concurrency": concurrency,
        "jobs": jobs,
        "seconds": wall,
        "jobs_per_s": jobs / wall,
        "invocations": len(invocations),
        "containers": len(pool.containers),
        "cold_start_s": cold_s / len(pool.containers),
        # Shares of the containers' time (wall x concurrency): what an invocation spent where.
        "share_database": database_s / (wall * concurrency),
        "share_rest_of_drain": (drain_s - database_s) / (wall * concurrency),
        "share_invocation_overhead": (busy_s - drain_s) / (wall * concurrency),
        "share_cold_start": cold_s / (wall * concurrency),
        "share_idle": max(0.0, 1 - (busy_s + cold_s) / (wall * concurrency)),
    }
