"""Expiry, archiving and purge: each a loop of bounded batches.

Every batch is one short transaction that locks its rows with SKIP LOCKED, so
maintenance never waits on a worker, never holds a long lock on the job table,
and two overlapping runs split the work instead of doing it twice. A batch that
touches fewer rows than the limit means the work is done (River's job cleaner).

`maintain` runs them all under a lease row rather than a session-level lock,
so that it holds no session state and works through poolers in transaction
mode; overlapping runs would be harmless, the lease only saves the effort.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from jobqueue import options
from jobqueue.client import Client
from jobqueue.database import Database
from jobqueue.errors import DatabaseUnavailableError
from jobqueue.models import MaintenanceResult
from jobqueue.states import JobState

# One maintainer at a time holds this lease (a row in the lease table). It lasts the run's time
# budget and a grace, or UNBOUNDED_RUN_S for a run without budget: a maintainer that dies keeps
# the others out no longer than that.
MAINTENANCE_LEASE = "maintenance"
LEASE_GRACE_S = 60.0
UNBOUNDED_RUN_S = 900.0
EXPIRED_ERROR = {"message": "job expired: it was still active at its deadline", "type": "JobExpired"}


def _loop(step: Callable[[], int], batch_size: int, time_budget: float | None) -> int:
    total = 0
    started = time.monotonic()
    while True:
        done = step()
        total += done
        if done < batch_size:
            return total
        if time_budget is not None and time.monotonic() - started >= time_budget:
            return total


def fail_batch(
    db: Database,
    *,
    name: str | None,
    ids: list[str],
    started: list[datetime] | None,
    errors: list[str | None] | list[str] | None,
    retryable: list[bool] | None,
    now: datetime | None,
    conn: Any = None,
) -> list[dict[str, Any]]:
    return db.rows(
        "fail",
        {"name": name, "ids": ids, "started": started, "errors": errors, "retryable": retryable, "now": now},
        conn,
    )


def expire_batch(db: Database, batch_size: int, now: datetime | None) -> tuple[int, int]:
    """One batch of active jobs past their deadline, to retry or failed."""
    error = json.dumps(EXPIRED_ERROR)
    retried = failed = 0
    with db.transaction() as tx:
        expired = db.rows("lock_expired", {"limit": batch_size, "now": now}, tx)
        if not expired:
            return 0, 0
        # The fail query takes one queue; group the batch by queue.
        by_queue: dict[str, list[dict[str, Any]]] = {}
        for row in expired:
            by_queue.setdefault(row["name"], []).append(row)
        for name, rows in by_queue.items():
            result = fail_batch(
                db,
                name=name,
                ids=[r["id"] for r in rows],
                started=sorted({r["started_on"] for r in rows}),
                errors=[error] * len(rows),
                retryable=None,
                now=now,
                conn=tx,
            )
            for row in result:
                if row["state"] == JobState.RETRY:
                    retried += 1
                else:
                    failed += 1
    return retried, failed


def expire(db: Database, batch_size: int, now: datetime | None, time_budget: float | None) -> tuple[int, int]:
    totals = [0, 0]

    def step() -> int:
        retried, failed = expire_batch(db, batch_size, now)
        totals[0] += retried
        totals[1] += failed
        return retried + failed

    _loop(step, batch_size, time_budget)
    return totals[0], totals[1]


def archive(db: Database, batch_size: int, now: datetime | None, time_budget: float | None) -> int:
    return _loop(lambda: db.execute("archive", {"limit": batch_size, "now": now}).rowcount, batch_size, time_budget)


def purge(db: Database, batch_size: int, now: datetime | None, time_budget: float | None) -> tuple[int, int]:
    """Delete archived jobs past delete_at; fail queued jobs past their retention."""
    after: datetime | None = None

    def purge_batch() -> int:
        nonlocal after
        rows = db.rows("purge_archive", {"limit": batch_size, "now": now, "after": after})
        if rows:
            after = max(row["delete_at"] for row in rows)
        return len(rows)

    purged = _loop(purge_batch, batch_size, time_budget)
    # A flow's edges go with the last record of their child.
    _loop(lambda: db.execute("purge_dependencies", {"limit": batch_size}).rowcount, batch_size, time_budget)
    unstarted = _loop(
        lambda: db.execute("fail_unstarted", {"limit": batch_size, "now": now}).rowcount, batch_size, time_budget
    )
    return purged, unstarted


def maintain(db: Database, batch_size: int, now: datetime | None, time_budget: float | None) -> MaintenanceResult:
    """All maintenance, once, unless another process holds the maintenance lease."""
    holder = uuid.uuid4()
    lease = {"name": MAINTENANCE_LEASE, "holder": holder, "seconds": (time_budget or UNBOUNDED_RUN_S) + LEASE_GRACE_S}
    if not db.rows("take_lease", lease):
        return MaintenanceResult(skipped=True)
    try:
        started = time.monotonic()

        def remaining() -> float | None:
            return None if time_budget is None else max(0.0, time_budget - (time.monotonic() - started))

        retried, failed = expire(db, batch_size, now, remaining())
        archived = archive(db, batch_size, now, remaining())
        purged, unstarted = purge(db, batch_size, now, remaining())
        return MaintenanceResult(
            expired_retried=retried, expired_failed=failed, archived=archived, purged=purged, unstarted_failed=unstarted
        )
    finally:
        # The lease is a row: giving it up works on any connection, a reopened one too. Without the
        # database it runs out by itself, and the error that ended the run is the one to raise.
        with contextlib.suppress(DatabaseUnavailableError):
            db.execute("end_lease", lease)


class Maintaining(Client):
    def expire(
        self, *, batch_size: int = 1000, now: datetime | None = None, time_budget: float | None = None
    ) -> tuple[int, int]:
        """Move active jobs past their deadline to retry or failed; returns (retried, failed)."""
        return expire(self.db, options.integer("batch_size", batch_size), options.now_or_none(now), time_budget)

    def archive(self, *, batch_size: int = 1000, now: datetime | None = None, time_budget: float | None = None) -> int:
        """Move finished jobs older than their queue's archive_after to the archive; returns the count."""
        return archive(self.db, options.integer("batch_size", batch_size), options.now_or_none(now), time_budget)

    def purge(
        self, *, batch_size: int = 1000, now: datetime | None = None, time_budget: float | None = None
    ) -> tuple[int, int]:
        """Delete archived jobs past delete_after, and fail queued jobs past their retention.

        Returns (deleted, failed for retention). Queued jobs that outlive their
        retention are failed (visible in failed_jobs) rather than deleted.
        """
        return purge(self.db, options.integer("batch_size", batch_size), options.now_or_none(now), time_budget)

    def maintain(
        self, *, batch_size: int = 1000, now: datetime | None = None, time_budget: float | None = None
    ) -> MaintenanceResult:
        """expire + archive + purge, skipped (skipped=True) if another process is already at it."""
        return maintain(self.db, options.integer("batch_size", batch_size), options.now_or_none(now), time_budget)
