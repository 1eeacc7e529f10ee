"""The pods platform with a no-op send-email handler, for benchmarks that run the worker function
in processes of their own (JOBS_PLATFORM=bench.noop_catalog)."""

from __future__ import annotations

from jobqueue import Job
from pods.jobs import CATALOG as PODS


def nothing(job: Job) -> None:
    return None


CATALOG = PODS.with_handler("send-email", nothing)
