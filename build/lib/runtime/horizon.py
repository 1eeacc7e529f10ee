"""Who holds the MVCC horizon back, as maintenance's result, the API's health and the dashboard show it."""

from __future__ import annotations

from typing import Any

from jobqueue import Horizon


def report(horizon: Horizon, warn_seconds: float) -> dict[str, Any]:
    """The oldest snapshot's age, the dead rows, and who holds a snapshot older than `warn_seconds`."""
    old = horizon.older_than(warn_seconds)
    return {
        "oldest_snapshot_seconds": round(horizon.oldest_seconds, 1),
        "dead_job_tuples": horizon.dead_job_tuples,
        "warning": None if not old else f"vacuum cannot remove finished jobs: {old[0].describe()}",
        "held_by": [{"kind": h.kind, "name": h.name, "held_seconds": h.held_seconds, **h.details} for h in old],
    }
