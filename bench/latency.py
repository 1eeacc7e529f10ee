"""Latency from `send` to the handler's first line, through the worker function.

Run in a fresh interpreter (`python -m bench.latency <dsn> <rounds>`, one JSON
line out) because the worker function reads its settings at import and keeps
one connection per container, as on Lambda:

- first invocation of a new container (migrate check, queue registration,
  connect) until the handler of an already queued job starts; the import of
  the function module comes before it and is measured by extra.cold_start;
- kick: send, then `runtime.scale.kick` as a producer does; the Lambda
  service is a stand-in that runs the (warm) function on a new thread, as an
  asynchronous invoke does on a warm container; measured until the handler
  starts. The Lambda service's own dispatch time (tens of ms in AWS) is not in
  this figure;
- tick: the worker invoked by a schedule event with the job already queued.
  EventBridge ticks once a minute, so a job sent at a random moment waits
  30 s on average (60 s at most) for the tick, plus this figure.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[1]
QUEUE = "send-email"
FUNCTION = "jobs-worker-send-email"


@dataclass
class Context:
    """What Lambda passes as `context`, with a clock that runs down for real."""

    function_name: str = FUNCTION
    memory_limit_in_mb: int = 512
    aws_request_id: str = "bench"
    invoked_function_arn: str = f"arn:aws:lambda:eu-west-1:123456789012:function:{FUNCTION}"
    started: float = 0.0

    def __post_init__(self) -> None:
        self.started = time.monotonic()

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(60_000 - (time.monotonic() - self.started) * 1000))


class ThreadedLambda:
    """The Lambda service's asynchronous invoke, on a warm container: run the handler on a thread."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler
        self.threads: list[threading.Thread] = []

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        event = json.loads(kwargs["Payload"])
        thread = threading.Thread(target=self.handler, args=(event, Context()))
        thread.start()
        self.threads.append(thread)
        return {"StatusCode": 202}

    def join(self) -> None:
        for thread in self.threads:
            thread.join()
        self.threads.clear()


def _summary(samples: list[float]) -> dict[str, float]:
    samples = sorted(s * 1000 for s in samples)
    return {
        "p50_ms": statistics.median(samples),
        "p99_ms": samples[min(len(samples) - 1, int(len(samples) * 0.99))],
        "max_ms": samples[-1],
    }


def measure(dsn: str, rounds: int) -> dict[str, Any]:
    os.environ.update(
        {
            "DATABASE_URL": dsn,
            "QUEUE_NAME": QUEUE,
            "JOBS_PLATFORM": os.environ.get("JOBS_PLATFORM", "pods.jobs"),
            "POWERTOOLS_METRICS_NAMESPACE": "Bench",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "AWS_DEFAULT_REGION": "eu-west-1",
        }
    )
    from jobqueue import Job, Queue
    from runtime import bootstrap, catalog, handlers, scale

    started = threading.Event()
    start_times: list[float] = []

    def handler(job: Job) -> None:
        start_times.append(time.perf_counter())
        started.set()

    producer = Queue(dsn)
    producer.migrate()
    catalog.register(producer)  # so that the producer can send before the first worker runs
    handlers.set_handler(QUEUE, handler)

    # A job waits; a new container imports the function and is invoked for the first time.
    producer.send(QUEUE, {"to": "dev@example.com"})
    from local.lambda_runner import import_app

    app = import_app(ROOT / "functions" / "worker" / "app.py", "worker_app")
    t0 = time.perf_counter()
    app.handler({"source": "aws.events"}, Context())
    cold = start_times[-1] - t0

    service = ThreadedLambda(app.handler)
    scale.set_lambda_client(service)
    kicks: list[float] = []
    ticks: list[float] = []
    for _ in range(rounds):
        started.clear()
        t0 = time.perf_counter()
        producer.send(QUEUE, {"to": "dev@example.com"})
        scale.kick(FUNCTION, QUEUE)
        if not started.wait(timeout=30):
            raise RuntimeError("a kicked worker did not start the job within 30 s")
        kicks.append(start_times[-1] - t0)
        service.join()

        producer.send(QUEUE, {"to": "dev@example.com"})
        t0 = time.perf_counter()
        app.handler({"source": "aws.events"}, Context())
        ticks.append(start_times[-1] - t0)
    producer.close()
    bootstrap.reset()
    return {
        "rounds": rounds,
        "first_invocation_to_handler_ms": cold * 1000,
        "kick": _summary(kicks),
        "tick": _summary(ticks),
    }


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], int(sys.argv[2]))))
