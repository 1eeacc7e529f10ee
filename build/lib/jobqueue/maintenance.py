"""Expiry, archiving and purge: each a loop of bounded batches.

Every batch is one short transaction, so maintenance never holds a long lock on
the job table. Expiry locks its rows with SKIP LOCKED: it never waits on a worker,
and two overlapping runs split the work instead of doing it twice. Archiving and
purging lock nothing first (a row lock is a WAL record of its own): they touch
finished jobs only, which no worker holds, and recheck a row changed meanwhile.
A batch that touches fewer rows than the limit means the work is done (River's
job cleaner). Purge drops the archive's past days whole (a partition per day).

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
from datetime import datetime, timedelta
from typing import Any

from jobqueue import options
from jobqueue.client import PARTITION_LOCK_TIMEOUT
from jobqueue.errors import DatabaseUnavailableError, LockTimeoutError
from jobqueue.models import MaintenanceResult
from jobqueue.states import JobState
from jobqueue.working import Working

# One maintainer at a time holds this lease (a row in the lease table). It lasts the run's time
# budget and a grace, or UNBOUNDED_RUN_S for a run without budget: a maintainer that dies keeps
# the others out no longer than that.
MAINTENANCE_LEASE = "maintenance"
LEASE_GRACE_S = 60.0
UNBOUNDED_RUN_S = 900.0
# Queued jobs past their retention are failed by a sweep that reads every queued job's index
# entry: maintain runs it at most once per this many seconds (a lease row, never given up).
RETENTION_LEASE = "retention sweep"
RETENTION_SWEEP_S = 600.0
# The archive has a partition per day for as many days ahead as the queues keep archived jobs,
# up to this many; a job to be deleted later is archived in archive_other and purged row by row.
ARCHIVE_DAYS_AHEAD = 31
# The queues' history (queue_history): a minute is recorded once it has been over this long (its
# last jobs committed), at most HISTORY_CATCH_UP minutes per run (a maintainer that was away
# catches up over a few runs), and kept HISTORY_DAYS days.
HISTORY_SETTLE_S = 5.0
HISTORY_CATCH_UP = 60
HISTORY_DAYS = 14
# Expiry is how a job comes back whose worker could not say what became of it: the reason says so.
EXPIRED_ERROR = {
    "message": (
        "job expired: it was still active at its deadline (its handler ran too long, or the worker "
        "running it ended without reporting: timed out, killed, or its process exited)"
    ),
    "type": "JobExpired",
}


def _minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def _loop(step: Callable[[], int], batch_size: int, time_budget: float | None) -> int:
    """Run `step` (one batch) until a batch does less than `batch_size` or the time budget is spent."""
    total = 0
    started = time.monotonic()
    while True:
        done = step()
        total += done
        if done < batch_size:
            return total
        if time_budget is not None and time.monotonic() - started >= time_budget:
            return total


class Maintaining(Working):
    """Part of Queue: expiry fails jobs as Working.fail does."""

    def expire(
        self, *, batch_size: int = 1000, now: datetime | None = None, time_budget: float | None = None
    ) -> tuple[int, int]:
        """Move active jobs past their deadline to retry or failed; returns (retried, failed)."""
        batch_size, now = options.integer("batch_size", batch_size), options.now_or_none(now)
        totals = [0, 0]

        def step() -> int:
            retried, failed = self._expire_batch(batch_size, now)
            totals[0] += retried
            totals[1] += failed
            return retried + failed

        _loop(step, batch_size, time_budget)
        return totals[0], totals[1]

    def _expire_batch(self, batch_size: int, now: datetime | None) -> tuple[int, int]:
        """One batch of active jobs past their deadline, to retry or failed."""
        error = json.dumps(EXPIRED_ERROR)
        retried = failed = 0
        with self.db.transaction() as tx:
            expired = self.db.rows("lock_expired", {"limit": batch_size, "now": now}, tx)
            # The fail statement takes one queue; group the batch by queue.
            by_queue: dict[str, list[dict[str, Any]]] = {}
            for row in expired:
                by_queue.setdefault(row["name"], []).append(row)
            # The queues' history counts the attempts expiry ended, in the minute it ended them.
            self.db.execute("count_expired", {"names": [row["name"] for row in expired], "now": now}, tx)
            for name, rows in by_queue.items():
                started = sorted({r["started_on"] for r in rows})
                ids = [r["id"] for r in rows]
                errors = [error] * len(rows)
                result = self._fail_rows(name, ids, started=started, errors=errors, retryable=None, now=now, conn=tx)
                for row in result:
                    if row["state"] == JobState.RETRY:
                        retried += 1
                    else:
                        failed += 1
        return retried, failed

    def archive(self, *, batch_size: int = 1000, now: datetime | None = None, time_budget: float | None = None) -> int:
        """Move finished jobs older than their queue's archive_after to the archive, or delete them
        for a queue that does not archive; returns how many left the job table."""
        return sum(self._archive(batch_size, now, time_budget))

    def _archive(self, batch_size: int, now: datetime | None, time_budget: float | None) -> tuple[int, int]:
        """archive(): (archived, deleted)."""
        limit = options.integer("batch_size", batch_size)
        params = {"limit": limit, "now": options.now_or_none(now)}
        self._partition_archive("make_archive_days", {"most": ARCHIVE_DAYS_AHEAD})
        totals = [0, 0]

        def step() -> int:
            [row] = self.db.rows("archive", params)
            totals[0] += row["archived"]
            totals[1] += row["deleted"]
            return int(row["archived"] + row["deleted"])

        _loop(step, limit, time_budget)
        return totals[0], totals[1]

    def _partition_archive(self, name: str, params: dict[str, Any]) -> int:
        """Make or drop the archive's day partitions (`name`: make_archive_days, drop_archive_days).

        Their locks are waited for PARTITION_LOCK_TIMEOUT at most: the archive's readers (lookups,
        throttled sends) would queue up behind a waiting DROP or ATTACH. Without them in time
        this run does nothing more about partitions (0) and the next run tries again; jobs of a
        day without its partition meanwhile go to archive_other, purged row by row.
        """
        try:
            with self.db.transaction() as tx:
                self.db.execute("set_lock_timeout", {"timeout": PARTITION_LOCK_TIMEOUT}, tx)
                return int(self.db.scalar(name, params, tx))
        except LockTimeoutError:
            return 0

    def purge(
        self,
        *,
        batch_size: int = 1000,
        now: datetime | None = None,
        time_budget: float | None = None,
        retention: bool = True,
    ) -> tuple[int, int]:
        """Delete archived jobs past delete_after, and fail queued jobs past their retention.

        The archive's day partitions whose day is over are dropped whole; the jobs archived
        without a day partition (see schema.sql) are deleted in batches.

        Returns (deleted, failed for retention). Queued jobs that outlive their
        retention are failed (visible in failed_jobs) rather than deleted; `retention=False`
        leaves them for a later run (maintain sweeps them every RETENTION_SWEEP_S).
        """
        batch_size, now = options.integer("batch_size", batch_size), options.now_or_none(now)
        after: datetime | None = None

        def purge_batch() -> int:
            nonlocal after
            rows = self.db.rows("purge_archive", {"limit": batch_size, "now": now, "after": after})
            if rows:
                after = max(row["delete_at"] for row in rows)
            return len(rows)

        purged = self._partition_archive("drop_archive_days", {"now": now})
        purged += _loop(purge_batch, batch_size, time_budget)
        # A flow's edges go with the last record of their child.
        _loop(lambda: self.db.execute("purge_dependencies", {"limit": batch_size}).rowcount, batch_size, time_budget)
        # Batches whose jobs are gone too.
        _loop(
            lambda: self.db.execute("purge_batches", {"limit": batch_size, "now": now}).rowcount,
            batch_size,
            time_budget,
        )
        # Rate-limited queues' starts that left their window, round-robin queues' past turns (a row
        # per fetch of those queues).
        self.db.execute("trim_job_starts", {"now": now})
        self.db.execute("trim_fair_turns")
        if not retention:
            return purged, 0
        unstarted = _loop(
            lambda: int(self.db.scalar("fail_unstarted", {"limit": batch_size, "now": now})),
            batch_size,
            time_budget,
        )
        return purged, unstarted

    def maintain(
        self, *, batch_size: int = 1000, now: datetime | None = None, time_budget: float | None = None
    ) -> MaintenanceResult:
        """expire + archive + purge, skipped (skipped=True) if another process is already at it."""
        batch_size, now = options.integer("batch_size", batch_size), options.now_or_none(now)
        holder = uuid.uuid4()
        seconds = (time_budget or UNBOUNDED_RUN_S) + LEASE_GRACE_S
        lease = {"name": MAINTENANCE_LEASE, "holder": holder, "seconds": seconds}
        if not self.db.rows("take_lease", lease):
            return MaintenanceResult(skipped=True)
        try:
            started = time.monotonic()

            def remaining() -> float | None:
                return None if time_budget is None else max(0.0, time_budget - (time.monotonic() - started))

            retried, failed = self.expire(batch_size=batch_size, now=now, time_budget=remaining())
            archived, deleted = self._archive(batch_size, now, remaining())
            # The retention sweep reads every queued job's index entry (a second for 10 million):
            # once per RETENTION_SWEEP_S, whichever run takes the lease that long.
            sweep = {"name": RETENTION_LEASE, "holder": holder, "seconds": RETENTION_SWEEP_S}
            purged, unstarted = self.purge(
                batch_size=batch_size,
                now=now,
                time_budget=remaining(),
                retention=bool(self.db.rows("take_lease", sweep)),
            )
            self.check_fetch_floors()
            history = self.record_history(now=now)
            return MaintenanceResult(
                expired_retried=retried,
                expired_failed=failed,
                archived=archived,
                deleted=deleted,
                purged=purged,
                unstarted_failed=unstarted,
                history_minutes=history,
            )
        finally:
            # The lease is a row: giving it up works on any connection, a reopened one too. Without the
            # database it runs out by itself, and the error that ended the run is the one to raise.
            with contextlib.suppress(DatabaseUnavailableError):
                self.db.execute("end_lease", lease)

    def record_history(self, *, now: datetime | None = None) -> int:
        """Record the queues' history (Queue.history) for the minutes over since the last record, up
        to HISTORY_CATCH_UP of them per call (a maintainer that was away catches up over its next
        runs, as far back as the history is kept), and forget what is older than HISTORY_DAYS;
        returns the rows written. The first record starts HISTORY_CATCH_UP minutes back."""
        at = options.now_or_none(now) or self.db.scalar("db_now")
        until = _minute(at - timedelta(seconds=HISTORY_SETTLE_S))
        mark = self.db.scalar("history_mark")
        start = (
            until - timedelta(minutes=HISTORY_CATCH_UP)
            if mark is None
            else max(mark, until - timedelta(days=HISTORY_DAYS))
        )
        end = min(until, start + timedelta(minutes=HISTORY_CATCH_UP))
        if start >= end:
            return 0
        with self.db.transaction() as tx:
            written = int(self.db.scalar("record_history", {"from": start, "to": end}, tx))
            self.db.execute("purge_history", {"before": at - timedelta(days=HISTORY_DAYS)}, tx)
        return written

    def check_fetch_floors(self) -> int:
        """Lower every fetch floor that a queued job lies before; returns how many were lowered.

        Fetches move a queue's floor on only past jobs that cannot come back (README, "The fetch
        under a held snapshot"); a job sent in a transaction that outlived the floor's margins,
        or let go by a fetch that rolled back, may still end up before it. This finds such a job
        (walking what fetches skip, so its cost grows while an old snapshot is held) and puts
        the floor back at its place, in a statement of its own so that fetches see it at once.
        """
        strays = self.db.rows("stray_before_floor")
        for stray in strays:
            self.db.execute("lower_fetch_floor", stray)
        self.db.execute("trim_fetch_floors")
        return len(strays)
