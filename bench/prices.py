"""List prices used by the cost lines of `make bench`, in one place (USD, us-east-1, published
prices as of 2026; change them here when AWS does or for another region)."""

from __future__ import annotations

from typing import Final

# AWS Lambda, arm64 (Graviton): per GB-second of duration, and per request.
LAMBDA_ARM64_PER_GB_S: Final = 0.0000133334
LAMBDA_PER_REQUEST: Final = 0.20 / 1_000_000
# CloudWatch Logs, standard log class: ingestion per GB (EMF blobs are log lines too).
LOGS_INGESTION_PER_GB: Final = 0.50


def per_million_jobs(
    jobs_per_s: float, memory_mb: int, jobs_per_invocation: float, log_bytes_per_job: float
) -> dict[str, float]:
    """Cost of one million jobs through the worker function, by item and in all."""
    seconds = 1_000_000 / jobs_per_s
    compute = seconds * memory_mb / 1024 * LAMBDA_ARM64_PER_GB_S
    requests = 1_000_000 / jobs_per_invocation * LAMBDA_PER_REQUEST
    logs = 1_000_000 * log_bytes_per_job / 1024**3 * LOGS_INGESTION_PER_GB
    return {"compute": compute, "requests": requests, "logs": logs, "total": compute + requests + logs}
