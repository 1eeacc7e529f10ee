"""Powertools logger, metrics and tracer, shared by every function.

Logs are JSON with the queue, job id and attempt on every line of a job's
work (appended keys); nothing logs a secret: connection strings are never
logged, and errors from the queue redact passwords.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics.base import MetricManager
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "jobs")


class LockedMetrics(Metrics):
    """Powertools' Metrics, safe to call from handler threads, one blob per invocation.

    Adding a metric and flushing the set (which Powertools also does by itself
    at 100 values) each hold one lock, so no value is lost or written twice
    when threads add metrics while another flushes. With metrics turned off
    (POWERTOOLS_METRICS_DISABLED) nothing is kept: Powertools would keep the
    values across invocations (its flush writes nothing then, and so clears
    nothing) and print them all at 100 values.
    """

    _lock = threading.RLock()

    def add_metric(self, name: str, unit: Any, value: float, resolution: Any = 60) -> None:
        if is_metrics_disabled():
            return
        with self._lock:
            super().add_metric(name=name, unit=unit, value=value, resolution=resolution)

    def add_dimension(self, name: str, value: str) -> None:
        with self._lock:
            super().add_dimension(name=name, value=value)

    def add_metadata(self, key: str, value: Any) -> None:
        with self._lock:
            super().add_metadata(key=key, value=value)

    def flush_metrics(self, raise_on_empty_metrics: bool = False) -> None:
        with self._lock:
            super().flush_metrics(raise_on_empty_metrics=raise_on_empty_metrics)


logger = Logger(service=SERVICE)
metrics = LockedMetrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Jobs"), service=SERVICE)


def write_dimensioned(dimensions: dict[str, str], values: Iterable[tuple[str, Any, float]]) -> None:
    """Metrics under dimensions of their own (e.g. a queue's), written at once as one blob, named
    after the invocation's function as `metrics` names its own; nothing with metrics turned off."""
    if is_metrics_disabled():
        return
    blob = MetricManager(namespace=metrics.namespace)
    for metric, unit, amount in values:
        blob.add_metric(name=metric, unit=unit, value=amount)
    for dimension, label in dimensions.items():
        blob.add_dimension(name=dimension, value=label)
    if "function_name" in metrics.metadata_set:
        blob.add_metadata("function_name", metrics.metadata_set["function_name"])
    print(json.dumps(blob.serialize_metric_set(), separators=(",", ":")))


class _NoTracer:
    """What the functions use of Powertools' Tracer, doing nothing: with tracing off, the X-Ray
    SDK (and the botocore it imports, 140 ms of a cold start here) is never imported."""

    def capture_lambda_handler(self, lambda_handler: Any = None, **_: Any) -> Any:
        return lambda_handler if lambda_handler is not None else (lambda function: function)

    def capture_method(self, method: Any = None, **_: Any) -> Any:
        return method if method is not None else (lambda function: function)


def _tracer() -> Any:
    # Tracing is off unless the deployment turns it on (template parameter Tracing).
    if os.environ.get("POWERTOOLS_TRACE_DISABLED", "true").lower() == "true":
        return _NoTracer()
    from aws_lambda_powertools import Tracer

    return Tracer(service=SERVICE)


tracer = _tracer()


class _JobContext(threading.local):
    job: Any = None  # the Job a handler thread is running, if any


job_context = _JobContext()


class JobKeys(logging.Filter):
    """Puts the running job's queue, id and attempt on every log line of its handler thread.

    One attribute set per job on the worker's side (threading.local), read only
    when a line is actually logged: appending keys per job cost more than a
    no-op job itself.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        job = job_context.job
        if job is not None:
            record.queue = job.name
            record.job_id = job.id
            record.attempt = job.retry_count + 1
        return True


logger.addFilter(JobKeys())
