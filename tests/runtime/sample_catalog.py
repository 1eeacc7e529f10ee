"""The pods platform with a stand-in send-email handler, for functions run in a subprocess
(JOBS_PLATFORM=tests.runtime.sample_catalog)."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from jobqueue import Job
from pods.jobs import CATALOG as PODS


def send_email(job: Job) -> Any:
    if job.data.get("hang"):
        time.sleep(600)  # stands in for a stuck SMTP connection
    return {"sent": job.data.get("to")}


CATALOG = PODS.with_handler("send-email", send_email)


# The same platform with send-email capped at one active job per group
# (JOBS_PLATFORM=tests.runtime.sample_catalog:GROUPED).
GROUPED = dataclasses.replace(
    CATALOG,
    job_types=tuple(
        dataclasses.replace(t, group_concurrency=1) if t.name == "send-email" else t for t in CATALOG.job_types
    ),
)


def send_email_recorded(job: Job) -> Any:
    """Records the email in public.sent through job.connection, in the job's own transaction."""
    job.connection.execute("INSERT INTO public.sent (job_id, recipient) VALUES (%s, %s)", (job.id, job.data["to"]))
    return {"sent": job.data.get("to")}


# The same platform with send-email's handler run in the transaction that completes its job
# (JOBS_PLATFORM=tests.runtime.sample_catalog:TRANSACTIONAL).
_RECORDING = PODS.with_handler("send-email", send_email_recorded)
TRANSACTIONAL = dataclasses.replace(
    _RECORDING,
    job_types=tuple(
        dataclasses.replace(t, transactional=True) if t.name == "send-email" else t for t in _RECORDING.job_types
    ),
)
