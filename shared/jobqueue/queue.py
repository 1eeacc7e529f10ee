"""`Queue`: the public API, pg-boss's operations with Pythonic names.

Each operation is one SQL statement (one round trip) unless its docstring says
otherwise; batches are finished in one statement per batch. Every write takes
`conn=`: pass your own psycopg connection and the job commits or rolls back
with your transaction ("jobs are part of database transactions").
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from psycopg import Connection
from psycopg import errors as pg_errors
from psycopg.rows import class_row

from jobqueue import maintenance, migrations, options, scheduling
from jobqueue.database import Database
from jobqueue.errors import (
    InvalidOptionError,
    PolicyConflictError,
    QueueInUseError,
    UnknownQueueError,
)
from jobqueue.models import FailResult, Job, MaintenanceResult, QueueInfo, QueueStats, Schedule, Throughput
from jobqueue.sending import batch_record, data_only_batch, job_params
from jobqueue.states import QUEUED, JobState

Conn = Connection[Any] | None
JobRef = str | Job
_QUEUE_SETTINGS = (
    "policy",
    "retry_limit",
    "retry_delay",
    "retry_backoff",
    "retry_delay_max",
    "expire_in",
    "retention",
    "archive_after",
    "delete_after",
    "dead_letter",
)
_FETCH_RETRIES = 3
# How long a queue's policy is trusted before fetch reads it again: a policy
# change reaches running workers within this time (or at once, on a conflict).
_POLICY_TTL = 60.0
_POLICIES_THAT_REFUSE_SENDS = frozenset({"short", "stately"})


class Queue:
    """A client of the job queue in one Postgres schema.

    `target` is a conninfo string / postgresql:// URL (the queue then owns one
    autocommit connection, re-opened when broken) or a psycopg connection you
    manage. Not safe for concurrent use from several threads at once: give each
    worker thread its own `Queue`.
    """

    def __init__(
        self,
        target: str | Connection[Any],
        *,
        schema: str = "jobqueue",
        max_payload_bytes: int = options.DEFAULT_MAX_PAYLOAD_BYTES,
        statement_timeout_ms: int | None = None,
        prepare_threshold: int | None = 5,
        connect_timeout: int = 10,
    ) -> None:
        self.db = Database(
            target,
            schema,
            connect_timeout=connect_timeout,
            statement_timeout_ms=statement_timeout_ms,
            prepare_threshold=prepare_threshold,
        )
        if isinstance(max_payload_bytes, bool) or not isinstance(max_payload_bytes, int) or max_payload_bytes < 1:
            raise InvalidOptionError(f"max_payload_bytes must be a positive integer, got {max_payload_bytes!r}")
        self.max_payload_bytes = max_payload_bytes
        self._policies: dict[str, tuple[str, float]] = {}

    @property
    def schema(self) -> str:
        return self.db.schema

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema ---------------------------------------------------------------

    def migrate(self, conn: Conn = None) -> int:
        """Install or upgrade the schema; safe to call from many processes at once."""
        return migrations.migrate(self.db, conn)

    def schema_version(self, conn: Conn = None) -> int:
        return migrations.current_version(self.db, conn)

    # -- queues ---------------------------------------------------------------

    def create_queue(
        self,
        name: str,
        *,
        policy: str = "standard",
        retry_limit: int | None = None,
        retry_delay: int | timedelta | None = None,
        retry_backoff: bool | None = None,
        retry_delay_max: int | timedelta | None = None,
        expire_in: int | timedelta | None = None,
        retention: int | timedelta | None = None,
        archive_after: int | timedelta | None = None,
        delete_after: int | timedelta | None = None,
        dead_letter: str | None = None,
        conn: Conn = None,
    ) -> bool:
        """Create a queue; True if created, False if it already existed (left unchanged).

        Policies (each enforced by a unique index, so no race can break it):

        - ``standard``: no limit.
        - ``short``: at most one *queued* (created) job per singleton key; a
          send while one waits returns None.
        - ``singleton``: at most one *active* job per key; more may wait.
        - ``stately``: at most one job per key in each of created, retry and
          active; a send while one is created returns None.

        Jobs without a singleton key share the key "" under these policies.
        Unset options take the defaults: retry_limit 2, retry_delay 0 s, no
        backoff, expire_in 900 s, retention 14 days, archive_after 3600 s,
        delete_after 7 days.
        """
        settings = self._queue_settings(
            name,
            policy=policy,
            retry_limit=retry_limit,
            retry_delay=retry_delay,
            retry_backoff=retry_backoff,
            retry_delay_max=retry_delay_max,
            expire_in=expire_in,
            retention=retention,
            archive_after=archive_after,
            delete_after=delete_after,
            dead_letter=dead_letter,
        )
        try:
            row = self.db.execute("create_queue", settings, conn).fetchone()
        except pg_errors.ForeignKeyViolation:
            raise UnknownQueueError(str(dead_letter), "dead letter queue") from None
        return row is not None

    def update_queue(self, name: str, conn: Conn = None, **changes: Any) -> None:
        """Change some of a queue's settings; jobs already sent keep theirs."""
        unknown = set(changes) - set(_QUEUE_SETTINGS)
        if unknown:
            raise InvalidOptionError(f"unknown queue setting(s) {', '.join(sorted(unknown))}")
        settings = self._queue_settings(name, **changes)
        for key in _QUEUE_SETTINGS:
            settings[f"set_{key}"] = key in changes
        try:
            row = self.db.execute("update_queue", settings, conn).fetchone()
        except pg_errors.ForeignKeyViolation:
            raise UnknownQueueError(str(changes.get("dead_letter")), "dead letter queue") from None
        except pg_errors.CheckViolation:
            raise InvalidOptionError(f"queue {name!r} cannot be its own dead letter queue") from None
        if row is None:
            raise UnknownQueueError(name)

    def _queue_settings(self, name: str, **values: Any) -> dict[str, Any]:
        settings: dict[str, Any] = {"name": options.queue_name(name)}
        for key in _QUEUE_SETTINGS:
            value = values.get(key)
            if value is None:
                settings[key] = None
            elif key == "policy":
                settings[key] = options.policy(value)
            elif key == "retry_backoff":
                settings[key] = options.boolean(key, value)
            elif key == "dead_letter":
                settings[key] = options.queue_name(value, "dead letter queue")
                if value == name:
                    raise InvalidOptionError(f"queue {name!r} cannot be its own dead letter queue")
            else:
                settings[key] = options.integer(key, value)
        return settings

    def delete_queue(self, name: str, conn: Conn = None) -> int:
        """Delete a queue with all its jobs and schedules; returns the number of jobs deleted."""
        options.queue_name(name)
        users = [r["name"] for r in self.db.rows("dead_letter_users", {"name": name}, conn)]
        if users:
            raise QueueInUseError(f"queue {name!r} is the dead letter queue of {', '.join(users)}: change those first")
        try:
            row = self.db.execute("delete_queue", {"name": name}, conn).fetchone()
        except pg_errors.ForeignKeyViolation:
            raise QueueInUseError(f"queue {name!r} became another queue's dead letter queue meanwhile") from None
        if row is None:
            raise UnknownQueueError(name)
        return int(row["jobs"])

    def get_queue(self, name: str, conn: Conn = None) -> QueueInfo | None:
        rows = self.db.rows("get_queue", {"name": options.queue_name(name)}, conn, class_row(QueueInfo))
        return rows[0] if rows else None

    def get_queues(self, conn: Conn = None) -> list[QueueInfo]:
        return self.db.rows("get_queues", None, conn, class_row(QueueInfo))

    def _require_queue(self, name: str, conn: Conn, dead_letter: str | None = None) -> None:
        """Explain why a write touched nothing: a missing queue is an error, a policy is not."""
        if not self.db.scalar("queue_exists", {"name": name}, conn):
            raise UnknownQueueError(name)
        if dead_letter is not None and not self.db.scalar("queue_exists", {"name": dead_letter}, conn):
            raise UnknownQueueError(dead_letter, "dead letter queue")

    # -- sending --------------------------------------------------------------

    def send(self, name: str, data: Any = None, *, conn: Conn = None, **send_options: Any) -> str | None:
        """Send one job; return its id, or None when a policy or throttle refused it.

        Options (None or absent: the queue's setting): priority (higher runs
        first), start_after (seconds, timedelta, aware datetime or ISO 8601
        string), retry_limit, retry_delay, retry_backoff, retry_delay_max,
        expire_in, singleton_key, singleton_seconds (throttle slot length),
        singleton_next_slot (debounce into the next slot), retention,
        delete_after, dead_letter, id. Sending to a queue that does not exist
        raises UnknownQueueError: queues are created explicitly.
        """
        options.queue_name(name)
        if not send_options:
            return self._send_plain(name, options.to_json(data, "data", self.max_payload_bytes), conn)
        params = job_params(send_options)
        next_slot = params.pop("singleton_next_slot")
        params.update(
            name=name, data=options.to_json(data, "data", self.max_payload_bytes), origin=None, singleton_offset=None
        )
        row = self.db.execute("send", params, conn).fetchone()
        if row is None and next_slot:
            params["singleton_offset"] = params["singleton_seconds"]
            row = self.db.execute("send", params, conn).fetchone()
        if row is None:
            self._require_queue(name, conn, params["dead_letter"])
            return None
        return str(row["id"])

    def _send_plain(self, name: str, data: str, conn: Conn) -> str | None:
        connection = self.db.connection(conn)
        params = {"name": name, "data": data}
        # Inside the caller's transaction a unique violation would abort it,
        # so there only the checked statement is used.
        if self.db.in_transaction(connection) or self._policy(name, connection) in _POLICIES_THAT_REFUSE_SENDS:
            row = self.db.execute("send_plain_checked", params, connection).fetchone()
        else:
            try:
                row = self.db.execute("send_plain", params, connection).fetchone()
            except pg_errors.UniqueViolation:
                self._policies.pop(name, None)  # the policy changed meanwhile: it can refuse sends now
                row = self.db.execute("send_plain_checked", params, connection).fetchone()
        if row is None:
            self._require_queue(name, conn)
            return None
        return str(row["id"])

    def send_after(
        self, name: str, data: Any, start_after: int | float | timedelta | datetime | str, **send_options: Any
    ) -> str | None:
        return self.send(name, data, start_after=start_after, **send_options)

    def send_throttled(
        self, name: str, data: Any, seconds: int, key: str | None = None, **send_options: Any
    ) -> str | None:
        """At most one job per `seconds`-long slot (per key); later sends in the slot return None."""
        return self.send(name, data, singleton_seconds=seconds, singleton_key=key, **send_options)

    def send_debounced(
        self, name: str, data: Any, seconds: int, key: str | None = None, **send_options: Any
    ) -> str | None:
        """Like send_throttled, but a send that finds its slot taken goes into the next slot."""
        return self.send(
            name, data, singleton_seconds=seconds, singleton_key=key, singleton_next_slot=True, **send_options
        )

    def insert(self, name: str, jobs: Iterable[Mapping[str, Any]], conn: Conn = None) -> list[str]:
        """Insert many jobs in one statement; return the ids of those inserted.

        Each job is a mapping with "data" and any send option except
        singleton_next_slot. All or nothing: an invalid job raises before
        anything is written; jobs a policy or throttle refuses are skipped.
        """
        options.queue_name(name)
        batch = list(jobs)
        if not batch:
            return []
        data_only = data_only_batch(batch, self.max_payload_bytes)
        if data_only is not None:
            rows = self.db.rows("insert_data", {"name": name, "data": data_only}, conn)
        else:
            records = [batch_record(job, self.max_payload_bytes) for job in batch]
            dead_letters = {job.get("dead_letter") for job in batch} - {None}
            for dead_letter in dead_letters:
                if not self.db.scalar("queue_exists", {"name": dead_letter}, conn):
                    raise UnknownQueueError(str(dead_letter), "dead letter queue")
            rows = self.db.rows("insert", {"name": name, "jobs": "[" + ",".join(records) + "]"}, conn)
        if not rows:
            self._require_queue(name, conn)
        return [row["id"] for row in rows]

    # -- working --------------------------------------------------------------

    def fetch(
        self,
        name: str,
        batch_size: int = 1,
        *,
        deadline: datetime | None = None,
        now: datetime | None = None,
        conn: Conn = None,
    ) -> list[Job]:
        """Claim up to `batch_size` queued jobs, highest priority first, then oldest.

        One statement with FOR UPDATE SKIP LOCKED: concurrent fetchers never
        claim the same job and never wait for each other. A claimed job
        expires at the earlier of its expire_in and `deadline` (the caller's
        own end of life, such as a Lambda invocation's).
        """
        params = {
            "name": options.queue_name(name),
            "limit": options.integer("batch_size", batch_size),
            "deadline": options.deadline(deadline),
            "now": options.now_or_none(now),
        }
        connection = self.db.connection(conn)
        jobs: list[Job] = []
        for attempt in range(_FETCH_RETRIES):
            query = "fetch_one_per_key" if self._policy(name, connection) in ("singleton", "stately") else "fetch"
            try:
                if self.db.in_transaction(connection):
                    with connection.transaction():  # a savepoint: a conflict must not abort the caller's work
                        jobs = self.db.rows(query, params, connection, _fetched_job)
                else:
                    jobs = self.db.rows(query, params, connection, _fetched_job)
                break
            except pg_errors.UniqueViolation:
                # Two fetchers picked different jobs of one singleton key (or
                # the policy changed under us): read the policy again, retry.
                self._policies.pop(name, None)
                if attempt == _FETCH_RETRIES - 1:
                    return []
        if len(jobs) > 1:
            jobs.sort(key=lambda job: (-job.priority, job.created_on or 0))
        return jobs

    def _policy(self, name: str, conn: Connection[Any]) -> str:
        cached = self._policies.get(name)
        now = time.monotonic()
        if cached is None or now - cached[1] > _POLICY_TTL:
            # An unknown queue reads as standard: fetch then simply finds nothing.
            policy = self.db.scalar("queue_policy", {"name": name}, conn) or "standard"
            cached = self._policies[name] = (policy, now)
        return cached[0]

    def complete(
        self,
        name: str,
        ids: JobRef | Sequence[JobRef],
        output: Any = None,
        *,
        outputs: Sequence[Any] | None = None,
        now: datetime | None = None,
        conn: Conn = None,
    ) -> list[str]:
        """Complete active jobs in one statement; return the ids completed.

        `output` is stored on every job; `outputs` gives one per job instead.
        Pass the Job objects from fetch (not bare ids) to complete only the
        attempt you ran: a job that expired and was fetched again meanwhile is
        left alone.
        """
        refs = _as_list(ids)
        job_ids, started = _refs(refs)
        params: dict[str, Any] = {
            "name": options.queue_name(name),
            "ids": job_ids,
            "started": started,
            "now": options.now_or_none(now),
        }
        query = "complete"
        if outputs is not None:
            if len(outputs) != len(refs):
                raise InvalidOptionError(f"outputs has {len(outputs)} items for {len(refs)} jobs")
            if any(value is not None for value in outputs):
                query = "complete_each"
                params["outputs"] = [
                    None if value is None else options.to_json(value, "output", self.max_payload_bytes)
                    for value in outputs
                ]
        params.setdefault(
            "output", None if output is None else options.to_json(output, "output", self.max_payload_bytes)
        )
        return [row["id"] for row in self.db.rows(query, params, conn)]

    def fail(
        self,
        name: str,
        ids: JobRef | Sequence[JobRef],
        error: Any = None,
        *,
        errors: Sequence[Any] | None = None,
        retryable: bool | Sequence[bool] = True,
        now: datetime | None = None,
        conn: Conn = None,
    ) -> FailResult:
        """Fail active jobs in one statement: to retry while attempts last, else failed.

        `error` (an exception, a message or a dict) is stored on every job;
        `errors` gives one per job. `retryable=False` (or a per-job sequence)
        fails at once, like the seed's JobError(should_retry=False). A job that
        ends failed is copied to its dead letter queue, if it has one.
        """
        refs = _as_list(ids)
        job_ids, started = _refs(refs)
        if errors is not None and len(errors) != len(refs):
            raise InvalidOptionError(f"errors has {len(errors)} items for {len(refs)} jobs")
        per_job = errors if errors is not None else [error] * len(refs)
        encoded = [options.to_json(options.error_payload(e), "error", self.max_payload_bytes) for e in per_job]
        if isinstance(retryable, bool):
            flags: list[bool] | None = None if retryable else [False] * len(refs)
        else:
            flags = [options.boolean("retryable", r) for r in retryable]
            if len(flags) != len(refs):
                raise InvalidOptionError(f"retryable has {len(flags)} items for {len(refs)} jobs")
        rows = maintenance.fail_batch(
            self.db,
            name=options.queue_name(name),
            ids=job_ids,
            started=started,
            errors=list(encoded),
            retryable=flags,
            now=options.now_or_none(now),
            conn=conn,
        )
        return FailResult(
            retried=[r["id"] for r in rows if r["state"] == JobState.RETRY],
            failed=[r["id"] for r in rows if r["state"] == JobState.FAILED],
            dead_lettered=int(rows[0]["dead_lettered"]) if rows else 0,
        )

    def cancel(self, name: str, ids: JobRef | Sequence[JobRef], conn: Conn = None) -> list[str]:
        """Cancel jobs that have not finished; returns the ids cancelled."""
        return self._ids_query("cancel", name, ids, conn)

    def resume(self, name: str, ids: JobRef | Sequence[JobRef], conn: Conn = None) -> list[str]:
        """Put cancelled jobs back in the queue (from the archive too)."""
        return self._requeue(name, ids, JobState.CANCELLED, conn)

    def retry(self, name: str, ids: JobRef | Sequence[JobRef], conn: Conn = None) -> list[str]:
        """Put failed jobs back in the queue with a fresh set of attempts (from the archive too)."""
        return self._requeue(name, ids, JobState.FAILED, conn)

    def _requeue(self, name: str, ids: JobRef | Sequence[JobRef], from_state: JobState, conn: Conn) -> list[str]:
        try:
            return self._ids_query("requeue", name, ids, conn, from_state=from_state.value)
        except pg_errors.UniqueViolation:
            raise PolicyConflictError(
                f"cannot requeue: the queue {name!r}'s policy allows one queued job per key, and two of these "
                "jobs (or a job sent meanwhile) share a key"
            ) from None

    def delete_job(self, name: str, ids: JobRef | Sequence[JobRef], conn: Conn = None) -> list[str]:
        """Delete jobs wherever they are (hot table or archive)."""
        return self._ids_query("delete_jobs", name, ids, conn)

    def _ids_query(self, query: str, name: str, ids: JobRef | Sequence[JobRef], conn: Conn, **extra: Any) -> list[str]:
        job_ids, _ = _refs(_as_list(ids))
        params = {"name": options.queue_name(name), "ids": job_ids, **extra}
        return [row["id"] for row in self.db.rows(query, params, conn)]

    def get_job(self, id: str, name: str | None = None, conn: Conn = None) -> Job | None:
        """A job by id, from the hot table or the archive (then `job.archived` is True)."""
        params = {"id": options.job_id(id), "name": None if name is None else options.queue_name(name)}
        rows = self.db.rows("get_job", params, conn, class_row(Job))
        return rows[0] if rows else None

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
        states = None if state is None else [state] if isinstance(state, str) else list(state)
        for s in states or []:
            if s not in JobState.__members__.values():
                raise InvalidOptionError(f"unknown job state {s!r}; known: {', '.join(JobState)}")
        params = {
            "name": options.queue_name(name),
            "states": states,
            "key": key,
            "data": None if data is None else options.to_json(data, "data filter"),
            "include_archive": options.boolean("include_archive", include_archive),
            "limit": options.integer("limit", limit),
        }
        return self.db.rows("find_jobs", params, conn, class_row(Job))

    # -- monitoring -----------------------------------------------------------

    def queue_size(self, name: str, states: Iterable[str] = QUEUED, conn: Conn = None) -> int:
        """Jobs of a queue in `states` (default: queued, i.e. created or retry)."""
        wanted = [str(s) for s in states]
        for s in wanted:
            if s not in JobState.__members__.values():
                raise InvalidOptionError(f"unknown job state {s!r}; known: {', '.join(JobState)}")
        return int(self.db.scalar("queue_size", {"name": options.queue_name(name), "states": wanted}, conn))

    def get_queue_stats(self, now: datetime | None = None, conn: Conn = None) -> list[QueueStats]:
        """Per queue: jobs by state not yet archived, and the wait of the oldest ready job."""
        return self.db.rows("queue_stats", {"now": options.now_or_none(now)}, conn, class_row(QueueStats))

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
        return self.db.rows("failed_jobs", params, conn, class_row(Job))

    # -- maintenance ----------------------------------------------------------

    def expire(
        self, *, batch_size: int = 1000, now: datetime | None = None, time_budget: float | None = None
    ) -> tuple[int, int]:
        """Move active jobs past their deadline to retry or failed; returns (retried, failed)."""
        return maintenance.expire(
            self.db, options.integer("batch_size", batch_size), options.now_or_none(now), time_budget
        )

    def archive(self, *, batch_size: int = 1000, now: datetime | None = None, time_budget: float | None = None) -> int:
        """Move finished jobs older than their queue's archive_after to the archive; returns the count."""
        return maintenance.archive(
            self.db, options.integer("batch_size", batch_size), options.now_or_none(now), time_budget
        )

    def purge(
        self, *, batch_size: int = 1000, now: datetime | None = None, time_budget: float | None = None
    ) -> tuple[int, int]:
        """Delete archived jobs past delete_after, and fail queued jobs past their retention.

        Returns (deleted, failed for retention). Queued jobs that outlive their
        retention are failed (visible in failed_jobs) rather than deleted.
        """
        return maintenance.purge(
            self.db, options.integer("batch_size", batch_size), options.now_or_none(now), time_budget
        )

    def maintain(
        self, *, batch_size: int = 1000, now: datetime | None = None, time_budget: float | None = None
    ) -> MaintenanceResult:
        """expire + archive + purge, skipped (skipped=True) if another process is already at it."""
        return maintenance.maintain(
            self.db, options.integer("batch_size", batch_size), options.now_or_none(now), time_budget
        )

    # -- cron -----------------------------------------------------------------

    def schedule(
        self,
        name: str,
        cron: str,
        data: Any = None,
        *,
        tz: str = "UTC",
        key: str = "",
        now: datetime | None = None,
        **send_options: Any,
    ) -> None:
        """Create or replace the schedule (name, key): a job on `name` at each fire time of `cron` in `tz`."""
        scheduling.schedule(
            self.db,
            name=name,
            cron=cron,
            data=data,
            tz=tz,
            key=key,
            now=now,
            send_options=send_options,
            max_payload_bytes=self.max_payload_bytes,
        )

    def unschedule(self, name: str, key: str | None = "") -> int:
        """Remove a schedule (key=None removes every key of the queue); returns how many."""
        return len(self.db.rows("delete_schedule", {"name": options.queue_name(name), "key": key}))

    def get_schedules(self, name: str | None = None) -> list[Schedule]:
        return scheduling.get_schedules(self.db, None if name is None else options.queue_name(name))

    def run_schedules(
        self, now: datetime | None = None, *, catch_up: timedelta = scheduling.DEFAULT_CATCH_UP
    ) -> list[str]:
        """Create one job per due fire time since the last run (at most `catch_up` back).

        Safe to call repeatedly and concurrently: each (schedule, key, fire
        time) becomes exactly one job. Returns the ids of the jobs created.
        """
        return scheduling.run_schedules(self.db, now, catch_up)


def _fetched_job(cursor: Any) -> Any:
    """Row factory for fetch: columns in Job's field order, built positionally."""
    return lambda values: Job(*values)


def _as_list(ids: JobRef | Sequence[JobRef]) -> list[JobRef]:
    if isinstance(ids, str | Job):
        return [ids]
    if not isinstance(ids, Sequence) and not isinstance(ids, set | frozenset):
        raise InvalidOptionError(f"ids must be a job id, a Job or a list of them, got {ids!r}")
    return list(ids)


def _refs(refs: list[JobRef]) -> tuple[list[str], list[datetime] | None]:
    """The ids, and the attempts (started_on) that fence them when all are fetched Jobs.

    Jobs fetched together share one started_on, so the fence is a short list.
    Ids of Job objects come from the database and are not parsed again.
    """
    ids = [ref.id if isinstance(ref, Job) else options.job_id(ref) for ref in refs]
    started = {ref.started_on if isinstance(ref, Job) else None for ref in refs}
    if not started or None in started:
        return ids, None
    return ids, sorted(s for s in started if s is not None)
