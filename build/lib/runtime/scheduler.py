"""The scheduler function's work: cron fire times become jobs, once each."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jobqueue import Queue
from runtime.observability import logger, metrics


def event_time(event: dict[str, Any]) -> datetime | None:
    """The scheduled time of an EventBridge event ("time": "2026-11-28T10:05:00Z"), if any.

    Using it rather than the clock makes a duplicated delivery of one event
    see exactly what the first delivery saw.
    """
    raw = event.get("time")
    if not isinstance(raw, str):
        return None
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        logger.warning("ignoring an unparsable event time", extra={"time": raw})
        return None


def tick(queue: Queue, event: dict[str, Any]) -> dict[str, Any]:
    created = queue.run_schedules(event_time(event))
    metrics.add_metric(name="ScheduledJobsCreated", unit="Count", value=len(created))
    logger.info("schedules run", extra={"jobs_created": len(created)})
    return {"created": len(created), "job_ids": created}
