"""A backlog drained by the worker function's scale-out as Lambda runs it: execution environments
of their own, the scale-out invokes reaching the local Lambda service's Invoke API through boto3,
never more environments than the reserved concurrency."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobqueue import Queue
from local.embedded_postgres import free_port
from local.lambda_service import LambdaService
from local.runtime_api import FunctionConfig, Outcome
from runtime import catalog

ROOT = Path(__file__).parents[2]
pytestmark = pytest.mark.slow


def test_scale_out_drains_a_backlog_within_the_concurrency(queue: Queue, dsn: str) -> None:
    catalog.register(queue)
    queue.insert("send-email", [{"data": {"to": f"u{n}@example.com"}} for n in range(2500)])
    port = free_port()
    environment = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": dsn,
        "QUEUE_NAME": "send-email",
        "JOBS_PLATFORM": "tests.runtime.sample_catalog",
        "MAX_JOBS": "400",
        "MAX_CONCURRENCY": "2",
        "POWERTOOLS_METRICS_NAMESPACE": "JobsTest",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_ENDPOINT_URL_LAMBDA": f"http://127.0.0.1:{port}",
    }
    config = FunctionConfig("local-worker", "app.handler", ROOT / "functions" / "worker", 60, 512, environment)
    outcomes: list[Outcome] = []
    service = LambdaService(
        {"local-worker": config},
        reserved={"local-worker": 2},
        on_outcome=lambda name, outcome: outcomes.append(outcome),
        extra_path=(str(ROOT),),
    )
    service.serve(port)
    try:
        service.invoke_async("local-worker", json.dumps({"source": "aws.events"}).encode())  # one tick
        assert service.wait_idle(timeout_s=120)
    finally:
        service.stop()
    assert [o.payload for o in outcomes if not o.ok] == []
    assert queue.queue_size("send-email") == 0
    assert queue.queue_size("send-email", ["completed"]) == 2500
    results = [o.payload for o in outcomes]
    assert sum(r["completed"] for r in results) == 2500
    stats = service.functions["local-worker"].stats
    assert stats.cold_starts == 2  # chains in two environments, never more than MAX_CONCURRENCY at once
    # The tick fanned out once; every scale-out invocation with work left handed over to one successor.
    assert sorted(r.get("workers_started", 0) for r in results if r.get("workers_started", 0) > 1) == [2]
    handovers = [r for r in results if r["stopped"] == "max_jobs"]
    assert len(handovers) >= 5 and all(r.get("workers_started", 0) >= 1 for r in handovers)
