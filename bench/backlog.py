"""A backlog drained by scale-out, as Lambda runs it: worker invocations in execution environments of
their own (local.lambda_service: AWS's runtime client in a process, against a Runtime API), at most
MAX_CONCURRENCY at once, started by one tick as EventBridge would.

The root invocation drains MAX_JOBS jobs and starts chains of scale-out invocations (through the local
service's Invoke API, as boto3 reaches Lambda); each hands over to one successor while work is left.
Reported per concurrency: how long the backlog took, where the time went (cold starts, time in the
database, the rest of the invocations, gaps between them), and what Lambda would bill for it, from
the REPORT lines (billed duration, init included on cold starts) and the bytes of the function's log.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from bench import prices
from local.lambda_service import LambdaService
from local.runtime_api import FunctionConfig, Outcome

ROOT = Path(__file__).parents[1]
QUEUE = "send-email"
FUNCTION = "local-worker"
MEMORY_MB = 512


def drain_backlog(dsn: str, jobs: int, concurrency: int, max_jobs: int = 1000) -> dict[str, Any]:
    from jobqueue import Queue
    from local.embedded_postgres import free_port
    from runtime import catalog

    port = free_port()
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": dsn,
        "QUEUE_NAME": QUEUE,
        "JOBS_PLATFORM": "bench.noop_catalog",
        "MAX_JOBS": str(max_jobs),
        "MAX_CONCURRENCY": str(concurrency),
        "POWERTOOLS_METRICS_NAMESPACE": "Bench",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_ENDPOINT_URL_LAMBDA": f"http://127.0.0.1:{port}",
    }
    os.environ.setdefault("JOBS_PLATFORM", "pods.jobs")
    outcomes: list[Outcome] = []
    log_bytes = 0

    def log(name: str, line: str) -> None:
        nonlocal log_bytes
        log_bytes += len(line.encode()) + 1

    config = FunctionConfig(FUNCTION, "app.handler", ROOT / "functions" / "worker", 300, MEMORY_MB, environment)
    with Queue(dsn) as queue:
        queue.migrate()
        catalog.register(queue)
        queue.db.connection().execute("TRUNCATE jobqueue.job, jobqueue.archive")
        for start in range(0, jobs, 10_000):
            queue.insert(QUEUE, [{"data": {"to": "someone@example.com"}}] * min(10_000, jobs - start))
        queue.db.connection().execute("VACUUM ANALYZE")
        service = LambdaService(
            {FUNCTION: config},
            reserved={FUNCTION: concurrency},
            log=log,
            on_outcome=lambda name, outcome: outcomes.append(outcome),
            extra_path=(str(ROOT),),
        )
        service.serve(port)
        started = time.perf_counter()
        try:
            service.invoke_async(FUNCTION, json.dumps({"source": "aws.events"}).encode())  # the tick
            if not service.wait_idle(timeout_s=1800):
                raise RuntimeError("the backlog's invocations did not end within 30 minutes")
        finally:
            wall = time.perf_counter() - started
            service.stop()
        left = queue.queue_size(QUEUE)
        completed = queue.queue_size(QUEUE, ["completed"])
    errors = [o.payload for o in outcomes if not o.ok]
    if errors or left or completed != jobs:
        raise RuntimeError(f"backlog not drained: {left} left, {completed} completed, errors: {errors[:1]}")
    results = [o.payload for o in outcomes]
    reports = [o.report for o in outcomes]
    busy_s = sum(r.duration_ms for r in reports) / 1000
    database_s = sum(r["database_ms"] for r in results) / 1000
    drain_s = sum(r["elapsed_ms"] for r in results) / 1000
    cold = [r.init_ms for r in reports if r.init_ms is not None]
    cold_s = sum(cold) / 1000
    billed_ms = sum(r.billed_ms for r in reports)
    compute = billed_ms / 1000 * MEMORY_MB / 1024 * prices.LAMBDA_ARM64_PER_GB_S
    requests = len(outcomes) * prices.LAMBDA_PER_REQUEST
    logs = log_bytes / 1024**3 * prices.LOGS_INGESTION_PER_GB
    return {
        "concurrency": concurrency,
        "jobs": jobs,
        "seconds": wall,
        "jobs_per_s": jobs / wall,
        "invocations": len(outcomes),
        "containers": len(cold),
        "cold_start_s": cold_s / max(1, len(cold)),
        # Shares of the environments' time (wall x concurrency): what an invocation spent where.
        "share_database": database_s / (wall * concurrency),
        "share_rest_of_drain": (drain_s - database_s) / (wall * concurrency),
        "share_invocation_overhead": (busy_s - drain_s) / (wall * concurrency),
        "share_cold_start": cold_s / (wall * concurrency),
        "share_idle": max(0.0, 1 - (busy_s + cold_s) / (wall * concurrency)),
        # As Lambda bills it: the REPORT lines' billed durations at MEMORY_MB, the requests, the log.
        "billed_ms": billed_ms,
        "billed_cost_per_million": (compute + requests + logs) * 1_000_000 / jobs,
    }
