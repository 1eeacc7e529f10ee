"""Powertools logger, metrics and tracer, shared by every function.

Logs are JSON with the queue, job id and attempt on every line of a job's
work (appended keys); nothing logs a secret: connection strings are never
logged, and errors from the queue redact passwords.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "jobs")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Jobs"), service=SERVICE)
# Tracing is off unless the function enables it (template Globals): the X-Ray
# SDK's patching costs cold-start time that local runs do not need.
tracer = Tracer(service=SERVICE, disabled=os.environ.get("POWERTOOLS_TRACE_DISABLED", "true").lower() == "true")


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
