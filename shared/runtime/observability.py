"""Powertools logger, metrics and tracer, shared by every function.

Logs are JSON with the queue, job id and attempt on every line of a job's
work (appended keys); nothing logs a secret: connection strings are never
logged, and errors from the queue redact passwords.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "jobs")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Jobs"), service=SERVICE)
# Tracing is off unless the function enables it (template Globals): the X-Ray
# SDK's patching costs cold-start time that local runs do not need.
tracer = Tracer(service=SERVICE, disabled=os.environ.get("POWERTOOLS_TRACE_DISABLED", "true").lower() == "true")
