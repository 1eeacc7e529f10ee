"""Handlers for tests that run functions in a subprocess (loaded through HANDLER_MODULES)."""

from __future__ import annotations

import time
from typing import Any

from jobqueue import Job
from runtime.handlers import register


@register("send-email")
def send_email(job: Job) -> Any:
    if job.data.get("hang"):
        time.sleep(600)  # stands in for a stuck SMTP connection
    return {"sent": job.data.get("to")}
