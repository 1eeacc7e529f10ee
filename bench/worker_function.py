"""The worker function as deployed, beside the core it runs on, in one run.

The core's figure is one connection draining with fetch(100) + complete, the
fastest a single worker can go. The worker function's figure is
functions/worker/app.py's handler, called in-process with a Lambda-like
context (its import, settings, pipeline, metrics and logs included) until the
queue is empty, MAX_JOBS jobs per invocation as in template.yaml. Its logs are
counted at INFO, EMF blobs included, for the cost line.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from pathlib import Path
from typing import Any

from bench import prices

ROOT = Path(__file__).parents[1]
QUEUE = "send-email"  # a queue of the platform, its handler replaced by a no-op
MEMORY_MB = 512  # template.yaml's Globals MemorySize
MAX_JOBS = 1000  # template.yaml's WorkerMaxJobs default


class StandInLambda:
    """The Lambda service's asynchronous invoke, which cannot run here: scale-out requests are counted."""

    def __init__(self) -> None:
        self.invokes = 0

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        self.invokes += 1
        return {"StatusCode": 202}


class Context:
    function_name = "bench-worker"
    memory_limit_in_mb = MEMORY_MB
    aws_request_id = "bench"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:000000000000:function:bench-worker"

    def __init__(self, timeout_s: float = 300.0) -> None:
        self._end = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._end - time.monotonic()) * 1000))


def _environment(dsn: str, batch_size: int, team_size: int) -> None:
    os.environ.update(
        {
            "DATABASE_URL": dsn,
            "QUEUE_NAME": QUEUE,
            "JOBS_PLATFORM": os.environ.get("JOBS_PLATFORM", "pods.jobs"),
            "BATCH_SIZE": str(batch_size),
            "TEAM_SIZE": str(team_size),
            "MAX_JOBS": str(MAX_JOBS),
            "POWERTOOLS_METRICS_NAMESPACE": "Bench",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "INFO",
            "POWERTOOLS_SERVICE_NAME": "jobs",
            "AWS_DEFAULT_REGION": "eu-west-1",
        }
    )


def _fill(queue: Any, count: int) -> None:
    """`count` jobs in an otherwise empty job table, so that the core and the worker face the same table."""
    connection = queue.db.connection()
    connection.execute("TRUNCATE jobqueue.job, jobqueue.archive")
    for start in range(0, count, 5000):
        queue.insert(QUEUE, [{"data": {"to": "someone@example.com"}}] * min(5000, count - start))
    queue.db.connection().execute("VACUUM ANALYZE")


def _core(queue: Any, count: int) -> float:
    _fill(queue, count)
    started, done = time.perf_counter(), 0
    while jobs := queue.fetch(QUEUE, 100):
        done += len(queue.complete(QUEUE, jobs))
    return done / (time.perf_counter() - started)


def _worker(queue: Any, count: int, batch_size: int, team_size: int) -> dict[str, float]:
    from runtime import bootstrap, handlers, scale
    from runtime.observability import logger

    _environment(queue.db._conninfo, batch_size, team_size)
    bootstrap.reset()
    from local.lambda_runner import import_app

    # Reads BATCH_SIZE, TEAM_SIZE... as a cold start does.
    app = import_app(ROOT / "functions" / "worker" / "app.py", "bench_worker_app")
    handlers.set_handler(QUEUE, lambda job: None)
    lambda_service = StandInLambda()
    scale.set_lambda_client(lambda_service)
    app.handler({"source": "aws.events"}, Context())  # cold start: migrate, register
    _fill(queue, count)
    logs, printed = io.StringIO(), io.StringIO()
    stream = logger.registered_handler.setStream(logs)
    logger.setLevel("INFO")
    invocations = done = 0
    started = time.perf_counter()
    try:
        with contextlib.redirect_stdout(printed):
            event = {"source": "aws.events"}  # a tick, then the chain of scale-out invocations it starts
            while True:
                result = app.handler(event, Context())
                event = {"source": "scale-out"}
                invocations += 1
                done += result["completed"]
                if result["stopped"] == "empty":
                    break
    finally:
        logger.registered_handler.setStream(stream)
        handlers.set_handler(QUEUE, None)
        scale.set_lambda_client(None)
    elapsed = time.perf_counter() - started
    if done != count:
        raise RuntimeError(f"the worker function completed {done} jobs, expected {count}")
    log_bytes = len(logs.getvalue().encode()) + len(printed.getvalue().encode())
    return {
        "jobs_per_s": done / elapsed,
        "invocations": invocations,
        "log_bytes_per_job": log_bytes / done,
        "scale_out_requests": lambda_service.invokes,
    }


def compare(dsn: str, count: int, configs: list[tuple[int, int]], defaults: tuple[int, int]) -> dict[str, Any]:
    """The core, then the worker function at each (batch size, team size), alternating."""
    from jobqueue import Queue
    from runtime import catalog

    os.environ.setdefault("JOBS_PLATFORM", "pods.jobs")
    with Queue(dsn) as queue:
        queue.migrate()
        catalog.register(queue)
        rows = []
        for batch_size, team_size in configs:
            core = _core(queue, count)
            worker = _worker(queue, count, batch_size, team_size)
            rows.append({"batch_size": batch_size, "team_size": team_size, "core": core, **worker})
    default = next(r for r in rows if (r["batch_size"], r["team_size"]) == defaults)
    cost = prices.per_million_jobs(
        default["jobs_per_s"], MEMORY_MB, count / default["invocations"], default["log_bytes_per_job"]
    )
    return {"jobs": count, "defaults": list(defaults), "rows": rows, "cost_per_million": cost, "memory_mb": MEMORY_MB}


def median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each configuration's median over several runs of `compare` (by the worker's ratio to the core)."""
    first = runs[0]
    rows = []
    for index in range(len(first["rows"])):
        candidates = sorted((run["rows"][index] for run in runs), key=lambda row: row["jobs_per_s"] / row["core"])
        rows.append(candidates[len(candidates) // 2])
    default = next(r for r in rows if [r["batch_size"], r["team_size"]] == first["defaults"])
    cost = prices.per_million_jobs(
        default["jobs_per_s"], first["memory_mb"], first["jobs"] / default["invocations"], default["log_bytes_per_job"]
    )
    return {**first, "rows": rows, "runs": len(runs), "cost_per_million": cost}
