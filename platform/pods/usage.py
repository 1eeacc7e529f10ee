"""calculate-usage: running seconds per pod (and its owner) for one hour.

Computed from the status history, and stored with an upsert keyed by (hour,
pod): recomputing an hour gives the same rows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from jobqueue import Job, JobError
from pods.context import Resources
from pods.payloads import optional
from pods.schema import QUERIES


def hour_of(job: Job, now: datetime | None = None) -> datetime:
    raw = optional(job.data, "hour")
    if raw is not None:
        try:
            hour = datetime.fromisoformat(raw)
        except ValueError:
            raise JobError(f"hour {raw!r} is not an ISO 8601 time", should_retry=False) from None
        if hour.tzinfo is None:
            raise JobError(f"hour {raw!r} must carry a time zone", should_retry=False)
    else:
        # The hour that just ended (a scheduled run at hh:00 bills hh-1:00..hh:00).
        fire = (job.origin or {}).get("fire_time")
        hour = datetime.fromisoformat(fire) if fire else (now or datetime.now(UTC))
        hour -= timedelta(hours=1)
    return hour.replace(minute=0, second=0, microsecond=0)


def calculate_usage(resources: Resources, job: Job) -> dict[str, Any]:
    hour = hour_of(job)
    with resources.connection() as conn, conn.transaction():
        rows = conn.execute(QUERIES["usage_for_hour"], {"hour": hour}).fetchall()
        for pod_id, owner_id, seconds in rows:
            conn.execute(
                QUERIES["upsert_usage"],
                {"hour": hour, "pod_id": pod_id, "owner_id": owner_id, "seconds": max(0, min(3600, seconds))},
            )
    return {"hour": hour.isoformat(), "pods": len(rows)}
