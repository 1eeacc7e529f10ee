"""Reading jobs and statistics: one job, a queue's jobs, sizes, stats, throughput, failures."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from psycopg.rows import class_row

from jobqueue import ids, options
from jobqueue.client import Client, Conn
from jobqueue.errors import InvalidOptionError
from jobqueue.models import Batch, GroupActivity, HistoryPoint, Job, QueueStats, RateWindow, Throughput, job_row
from jobqueue.settings import SingletonKey
from jobqueue.states import FINISHED, QUEUED, JobState

# The common questions have an index of their own: queued (fetch's) and active (expiry's).
SIZE_QUERIES: Final = {frozenset(QUEUED): "queued_size", frozenset({JobState.ACTIVE}): "active_size"}
# Queue.wait looks again after this long at first, doubling up to WAIT_POLL_MAX_S; it waits MAX_WAIT_S at most.
WAIT_POLL_FIRST_S: Final = 0.05
WAIT_POLL_MAX_S: Final = 1.0
MAX_WAIT_S: Final = 3600


def job_states(states: Iterable[str]) -> list[JobState]:
    """States named by the caller, each checked against the states that exist."""
    checked = []
    for state in states:
        try:
            checked.append(JobState(state))
        except ValueError:
            raise InvalidOptionError(f"unknown job state {state!r}; known: {', '.join(JobState)}") from None
    return checked


def _seconds(seconds: int) -> str:
    """A duration in the largest whole unit that fits: 90 -> '90 s', 7200 -> '2 h', 604800 -> '7 days'."""
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


class Inspecting(Client):
    def get_job(self, id: str, name: str | None = None, conn: Conn = None) -> Job | None:
        """A job by id, from the hot table or the archive (then `job.archived` is True)."""
        params = {"id": options.job_id(id), "name": None if name is None else options.queue_name(name)}
        rows = self.db.rows("get_job", params, conn, job_row)
        return rows[0] if rows else None

    def wait(self, name: str, id: str, timeout: float, *, conn: Conn = None) -> Job | None:
        """The job once it has finished (completed, failed or cancelled), or as it is when `timeout`
        seconds have passed, whichever comes first; None when there is no such job in the queue.

        Polls (every 50 ms at first, backing off to WAIT_POLL_MAX_S): no LISTEN, so it works
        through a pooler in transaction mode, and each look is one indexed read.
        """
        job_id, pauses = wait_steps(name, id, timeout)
        deadline = time.monotonic() + timeout
        for pause in pauses:
            job = self.get_job(job_id, name, conn)
            left = deadline - time.monotonic()
            if job is None or job.state in FINISHED or left <= 0:
                return job
            time.sleep(min(pause, left))
        return None  # pragma: no cover - the pauses never end

    def get_batch(self, id: str, conn: Conn = None) -> Batch | None:
        """A batch's counts (Queue.insert's `batch`); None for an unknown (or forgotten) one, and for an
        id no batch can have (too long, a NUL)."""
        try:
            SingletonKey().check("batch id", id)
        except InvalidOptionError:
            return None
        rows = self.db.rows("get_batch", {"id": str(id)}, conn, class_row(Batch))
        return rows[0] if rows else None

    @staticmethod
    def missing_batch(id: str) -> str:
        """Why get_batch finds no batch `id`, for an operator."""
        return f"no batch {id!r}: it was never made, or was forgotten after its jobs"

    def missing_job(self, id: str) -> str:
        """Why get_job finds no job `id`, for an operator: where a job that existed would have gone."""
        job_id = options.job_id(id)
        reasons = [f"no job {job_id}: it was never sent, or it finished and was deleted"]
        queues = self.db.rows("get_queues")
        if deleting := [q for q in queues if not q["archive"]]:
            reasons.append(
                "these queues delete finished jobs instead of archiving them: "
                + ", ".join(f"{q['name']} ({_seconds(q['archive_after'])} after they finish)" for q in deleting)
            )
        if kept := [q["delete_after"] for q in queues if q["archive"] and q["delete_after"]]:
            reasons.append(f"archived jobs are deleted after their delete_after (up to {_seconds(max(kept))})")
        if (made := ids.made_at(job_id)) is not None:
            reasons.append(f"its id was made at {made:%Y-%m-%d %H:%M:%S} UTC")
        return "; ".join(reasons)

    def find_jobs(
        self,
        name: str,
        *,
        state: str | Iterable[str] | None = None,
        key: str | None = None,
        data: Mapping[str, Any] | None = None,
        include_archive: bool = True,
        limit: int = 100,
        conn: Conn = None,
    ) -> list[Job]:
        """Jobs of a queue, newest first; `data` matches jobs whose data contains it."""
        states = None if state is None else job_states([state] if isinstance(state, str) else state)
        params = {
            "name": options.queue_name(name),
            "states": states,
            "key": key,
            "data": None if data is None else options.to_json(data, "data filter"),
            "include_archive": options.boolean("include_archive", include_archive),
            "limit": options.integer("limit", limit),
        }
        return self.db.rows("find_jobs", params, conn, job_row)

    def queue_size(
        self, name: str, states: Iterable[str] = QUEUED, conn: Conn = None, *, limit: int | None = None
    ) -> int:
        """Jobs of a queue in `states` (default: queued, i.e. created or retry); at most `limit` if given."""
        wanted = job_states(states)
        params = {
            "name": options.queue_name(name),
            "states": wanted,
            "limit": None if limit is None else options.integer("limit", limit),
        }
        query = SIZE_QUERIES.get(frozenset(wanted), "queue_size")
        return int(self.db.scalar(query, params, conn))

    def rate_window(self, name: str, *, now: datetime | None = None, conn: Conn = None) -> RateWindow | None:
        """A rate-limited queue's window now (how full it is); None for a queue without a limit."""
        self.require_queue(name, conn)
        return self._rate_window(name, now, self.db.connection(conn))

    def group_rate_windows(
        self, name: str, *, limit: int = 10, now: datetime | None = None, conn: Conn = None
    ) -> list[RateWindow]:
        """Under the queue's group_rate_limit: the windows of the groups that started jobs in it,
        the fullest first (up to `limit`); empty for a queue without one."""
        self.require_queue(name, conn)
        connection = self.db.connection(conn)
        rate = self.policies.rules(name, connection).group_rate_limit
        if rate is None:
            return []
        params = {
            "name": name,
            "period": rate["period"],
            "limit": options.integer("limit", limit),
            "now": options.now_or_none(now),
        }
        return [
            RateWindow(rate["limit"], rate["period"], int(row["started"]), float(row["frees_in"]), row["group_id"])
            for row in self.db.rows("group_rate_windows", params, connection)
        ]

    def get_queue_stats(self, now: datetime | None = None, conn: Conn = None) -> list[QueueStats]:
        """Per queue: jobs by state not yet archived, and the wait of the oldest ready job."""
        return self.db.rows("queue_stats", {"now": options.now_or_none(now)}, conn, class_row(QueueStats))

    def history(
        self,
        name: str | None,
        since: datetime,
        until: datetime | None = None,
        *,
        bucket_seconds: int = 60,
        conn: Conn = None,
    ) -> list[HistoryPoint]:
        """A queue's history (every queue's with name=None) from `since` to `until` (default: now),
        in buckets of `bucket_seconds` (whole minutes), oldest first; a bucket where nothing
        happened is left out. Maintenance records each minute once it is over (kept 14 days)."""
        if not isinstance(bucket_seconds, int) or bucket_seconds % 60 or not 60 <= bucket_seconds <= 86_400:
            raise InvalidOptionError(
                f"bucket_seconds must be whole minutes between 60 and 86400, got {bucket_seconds!r}"
            )
        params = {
            "name": None if name is None else options.queue_name(name),
            "since": options.aware("since", since),
            "until": options.aware("until", until) if until is not None else datetime.now(UTC),
            "bucket": bucket_seconds,
        }
        return self.db.rows("history", params, conn, class_row(HistoryPoint))

    def throughput(self, since: datetime, bucket_seconds: int = 300, conn: Conn = None) -> list[Throughput]:
        """Jobs completed and failed per queue and time bucket since `since` (archived ones included).

        Buckets start at `since` and are `bucket_seconds` long; empty buckets are not returned.
        """
        if not isinstance(since, datetime):
            raise InvalidOptionError(f"since must be a datetime, got {since!r}")
        params = {"since": options.aware("since", since), "bucket": options.integer("bucket_seconds", bucket_seconds)}
        return self.db.rows("throughput", params, conn, class_row(Throughput))

    def failed_jobs(self, limit: int = 100, name: str | None = None, conn: Conn = None) -> list[Job]:
        """The most recently failed jobs, archived ones included."""
        params = {"limit": options.integer("limit", limit), "name": None if name is None else options.queue_name(name)}
        return self.db.rows("failed_jobs", params, conn, job_row)

    def get_blocked_keys(self, name: str, conn: Conn = None) -> list[str]:
        """The keys of a key_strict_fifo queue that a failed job blocks (retry or delete it to unblock)."""
        return [row["key"] for row in self.db.rows("blocked_keys", {"name": options.queue_name(name)}, conn)]

    def active_groups(self, name: str, limit: int = 100, conn: Conn = None) -> list[GroupActivity]:
        """The queue's groups with active jobs and how many each, busiest first."""
        params = {"name": options.queue_name(name), "limit": options.integer("limit", limit)}
        return self.db.rows("active_groups", params, conn, class_row(GroupActivity))


def wait_steps(name: str, id: str, timeout: object) -> tuple[str, Iterator[float]]:
    """A wait's job id, checked with its queue and timeout, and the pauses between its looks: 50 ms
    at first, doubling up to WAIT_POLL_MAX_S (Queue.wait and AsyncQueue.wait)."""
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 <= timeout <= MAX_WAIT_S:
        raise InvalidOptionError(f"wait timeout must be between 0 and {MAX_WAIT_S} seconds, got {timeout!r}")
    options.queue_name(name)

    def pauses() -> Iterator[float]:
        pause = WAIT_POLL_FIRST_S
        while True:
            yield pause
            pause = min(pause * 2, WAIT_POLL_MAX_S)

    return options.job_id(id), pauses()
