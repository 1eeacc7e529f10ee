"""A backlog drained by the worker function's scale-out, in processes, never beyond MAX_CONCURRENCY."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobqueue import Queue
from local.lambda_pool import FunctionPool
from runtime import catalog

ROOT = Path(__file__).parents[2]
pytestmark = pytest.mark.slow


def test_scale_out_drains_a_backlog_within_the_concurrency(queue: Queue, dsn: str) -> None:
    catalog.register(queue)
    queue.insert("send-email", [{"data": {"to": f"u{n}@example.com"}} for n in range(2500)])
    environment = {
        "DATABASE_URL": dsn,
        "QUEUE_NAME": "send-email",
        "JOBS_PLATFORM": "tests.runtime.sample_catalog",
        "MAX_JOBS": "400",
        "MAX_CONCURRENCY": "2",
        "POWERTOOLS_METRICS_NAMESPACE": "JobsTest",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    pool = FunctionPool(ROOT / "functions" / "worker" / "app.py", environment, concurrency=2, timeout_s=60)
    try:
        pool.invoke({"source": "aws.events"})  # one tick
        invocations = pool.run()
    finally:
        pool.stop()
    assert [i.error for i in invocations if i.error] == []
    assert queue.queue_size("send-email") == 0
    assert queue.queue_size("send-email", ["completed"]) == 2500
    assert pool.peak == 2 and len(pool.containers) == 2  # chains, never more than MAX_CONCURRENCY at once
    assert sum(i.result["completed"] for i in invocations) == 2500
    # The tick fanned out once; every scale-out invocation with work left handed over to one successor.
    root = next(i for i in invocations if i.event["source"] == "aws.events")
    assert root.result["workers_started"] == 2
    handovers = [i for i in invocations if i.event["source"] == "scale-out" and i.result["stopped"] == "max_jobs"]
    assert all(i.result["workers_started"] == 1 for i in handovers)
