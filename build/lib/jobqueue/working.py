"""Working jobs: claim them (`fetch`), finish them (`complete`, `fail`), and change their course
(`cancel`, `resume`, `retry`, `delete_job`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from psycopg.rows import tuple_row

from jobqueue import options
from jobqueue.client import Client, Conn, JobRef, QueueRules, as_list, refs
from jobqueue.errors import (
    MAX_SNOOZE_S,
    ConcurrentUpdateError,
    InvalidOptionError,
    LockTimeoutError,
    PolicyConflictError,
)
from jobqueue.models import FailResult, Job, SnoozeResult
from jobqueue.settings import POLICIES_ONE_ACTIVE_PER_KEY, GroupConcurrency, Policy, RateLimit
from jobqueue.states import CANCELLABLE, RESUMABLE, RETRYABLE, JobState

FETCH_ATTEMPTS: Final = 3
# How long a fetch of a rate-limited queue waits for the queue's turn: a turn takes milliseconds,
# so a longer wait means a holder that stopped (a stalled network) and is not waited for.
RATE_TURN_TIMEOUT: Final = "2s"


def _fetched_job(cursor: Any) -> Any:
    """Row factory for fetch: columns in Job's field order, built positionally."""
    return lambda values: Job(*values)


# A client moves a queue's fetch floor on at most this often (the statement checks it across clients too).
FLOOR_PERIOD_S: Final = 0.25
# How often one job may snooze before it fails for good (Queue.snooze's max_snoozes).
DEFAULT_MAX_SNOOZES: Final = 100
# A strict-FIFO fetch first looks for heads among this many of the first ready jobs per job wanted.
FIFO_WINDOW_PER_JOB: Final = 10
FIFO_WINDOW_MIN: Final = 1000


class Working(Client):
    def fetch(
        self,
        name: str,
        batch_size: int = 1,
        *,
        deadline: datetime | None = None,
        group_concurrency: GroupConcurrency | None = None,
        now: datetime | None = None,
        conn: Conn = None,
    ) -> list[Job]:
        """Claim up to `batch_size` queued jobs, highest priority first, then oldest.

        One statement with FOR UPDATE SKIP LOCKED: concurrent fetchers never
        claim the same job and never wait for each other. On a singleton,
        stately or key_strict_fifo queue, one short transaction of two
        statements: take the keys' locks (passing over keys another fetcher
        holds), then claim one job per key (see lock_keys in sql/queries/working.sql for why
        two); under key_strict_fifo, each key's next job in the order sent, and
        none of a key whose job is active, waiting for its retry or failed. A claimed job
        expires at the earlier of its expire_in and `deadline` (the caller's
        own end of life, such as a Lambda invocation's).

        `group_concurrency` caps the active jobs of each group (the send
        option `group`) of this queue, for all fetchers that pass it: a
        number, or {"default": n, "tiers": {tier: n}}. It is never exceeded,
        not even briefly (see lock_groups in sql/queries/working.sql).

        On a queue with a `rate_limit`, fetchers take turns (a short transaction
        each) and claim no more than the limit leaves in its window: fewer jobs,
        or none, while it is full (`rate_wait` says for how long). Under a
        `group_rate_limit`, each group's window is kept the same way, its turn
        being the group's lock: a fetch passes over the groups whose window is
        full and takes the others' jobs. On a queue whose `fairness` is
        round_robin, the groups take turns (see fetch_turns in sql/schema.sql).
        """
        params: dict[str, Any] = {
            "name": options.queue_name(name),
            "limit": options.integer("batch_size", batch_size),
            "deadline": options.deadline(deadline),
            "now": options.now_or_none(now),
            "group_limit": None,
            "tiers": None,
            "group_rate_limit": None,
            "group_rate_period": None,
        }
        connection = self.db.connection(conn)
        if group_concurrency is not None:
            params.update(options.group_limits(group_concurrency))
        rules = self.policies.rules(name, connection)
        if rules.group_rate_limit is not None:
            params["group_rate_limit"] = rules.group_rate_limit["limit"]
            params["group_rate_period"] = rules.group_rate_limit["period"]
        if rules.fairness != "fifo":
            tiers = rules.fairness["tiers"] if isinstance(rules.fairness, dict) else {}
            params["weights"] = options.to_json(tiers)
        grouped = group_concurrency is not None or rules.group_rate_limit is not None or "weights" in params
        if rules.rate_limit is None and rules.group_rate_limit is None:
            jobs = self._claim(name, params, grouped, connection)
        else:
            jobs = self._claim_counted(name, rules, params, grouped, connection)
        if len(jobs) > 1:
            jobs.sort(key=lambda job: (-job.priority, job.created_on or 0))
        if now is None and not self.db.in_transaction(connection):
            # Not inside the caller's transaction: its claims could still roll back behind the floor.
            self._advance_floor(str(params["name"]), jobs[0].priority if jobs else None, connection)
        return jobs

    def _claim_counted(
        self, name: str, rules: QueueRules, params: dict[str, Any], grouped: bool, connection: Any
    ) -> list[Job]:
        """Claim no more than the queue's rate limits leave (schema.sql: job_start), in one
        transaction (a savepoint in the caller's: the locks then last until the caller's ends):
        take the queue's rate lock and count its window with a snapshot taken after it (under a
        rate_limit), claim (each group's window counted by claim_grouped after its lock, under a
        group_rate_limit), and record the starts."""
        try:
            with self.db.transaction(connection):
                if rules.rate_limit is not None:
                    room = self._rate_room(name, rules.rate_limit, params["now"], connection)
                    if room <= 0:
                        return []
                    params = {**params, "limit": min(params["limit"], room)}
                jobs = self._claim(name, params, grouped, connection)
                # Under a group_rate_limit the claim recorded them, a row per group (claim_groups).
                if jobs and rules.group_rate_limit is None:
                    started = [job.started_on for job in jobs]
                    self.db.execute("record_starts", {"name": name, "started": started}, connection)
                return jobs
        except LockTimeoutError:
            # Another fetch held the queue's turn for RATE_TURN_TIMEOUT (stalled, most likely):
            # nothing was claimed; a later fetch tries again.
            return []

    def _rate_room(self, name: str, rate: RateLimit, now: datetime | None, connection: Any) -> int:
        """Take the queue's rate turn (until the transaction ends) and count what its window leaves."""
        turn = self.db.execute("lock_rate_window", {"name": name, "timeout": RATE_TURN_TIMEOUT}, connection)
        before = turn.fetchone()
        window = self.db.execute(
            "rate_window",
            {
                "name": name,
                "period": rate["period"],
                "now": now,
                "lock_timeout": before["lock_timeout_before"] if before else None,
            },
            connection,
        ).fetchone()
        return rate["limit"] - int(window["started"]) if window else rate["limit"]

    def rate_wait(self, name: str, *, now: datetime | None = None, conn: Conn = None) -> float | None:
        """Seconds until the queue's rate limit lets a job start, when a job waits to start: 0 when
        its window has room now; None when nothing waits for the limit (no limit, or no job ready).

        A worker whose fetch came back empty asks this before it stops: it can wait that long, or
        leave the jobs to a later invocation, instead of fetching again and again. 0 after a fetch
        that found the window full means that a start left the window since: fetch again.
        """
        connection = self.db.connection(conn)
        window = self._rate_window(options.queue_name(name), now, connection)
        if window is None:
            return None
        if not self.db.scalar("ready_job_exists", {"name": name, "now": options.now_or_none(now)}, connection):
            return None
        return 0.0 if window.room else window.frees_in

    def _claim(self, name: str, params: dict[str, Any], grouped: bool, connection: Any) -> list[Job]:
        """Claim by the queue's policy: one statement, or the keys' or groups' locks first."""
        jobs: list[Job] = []
        for attempt in range(FETCH_ATTEMPTS):
            policy = self.policies.get(name, connection)
            try:
                key_locks = (
                    ["lock_fifo_heads"]
                    if policy is Policy.KEY_STRICT_FIFO
                    else ["lock_keys"]
                    if policy in POLICIES_ONE_ACTIVE_PER_KEY
                    else []
                )
                # One statement for a standard queue, or a round-robin one (params["weights"]; it
                # takes the keys' locks itself on a key_strict_fifo queue); else the locks first.
                single = "fetch_turns" if "weights" in params else None if grouped or key_locks else "fetch"
                if single is not None and self.db.in_transaction(connection):
                    with self.db.transaction(connection):  # a savepoint: a conflict must not abort the caller's work
                        jobs = self.db.rows(single, params, connection, _fetched_job)
                elif single is not None:
                    jobs = self.db.rows(single, params, connection, _fetched_job)
                elif grouped:
                    locks = [*key_locks, "lock_groups_of"] if key_locks else ["lock_groups"]
                    jobs = self._claim_locked(locks, "claim_grouped", params, connection)
                else:
                    jobs = self._claim_locked(key_locks, "claim_keyed", params, connection)
                break
            except (PolicyConflictError, ConcurrentUpdateError):
                # The queue's policy changed under us (the cache still had the old one), or a
                # statement was cancelled to break a deadlock with something other than a
                # fetcher: nothing was claimed; retry.
                self.policies.forget(name)
                if attempt == FETCH_ATTEMPTS - 1:
                    return []
        return jobs

    def _advance_floor(self, name: str, band: int | None, connection: Any) -> None:
        """Move the queue's fetch floor on (sql/queries/working.sql: advance_fetch_floor), at most every
        FLOOR_PERIOD_S per client and queue: one statement a quarter second, whatever the fetch rate.
        Its failure changes nothing the fetch returns: the floor stays where it was."""
        at = time.monotonic()
        if at - self._floor_advanced.get(name, -FLOOR_PERIOD_S) < FLOOR_PERIOD_S:
            return
        self._floor_advanced[name] = at
        self.db.optional("advance_fetch_floor", {"name": name, "band": band}, connection)

    def _claim_locked(self, locks: list[str], claim: str, params: dict[str, Any], connection: Any) -> list[Job]:
        """A keyed or grouped fetch: take the keys' or groups' locks, then claim with a snapshot taken after them.

        Each lock query after the first narrows the ids the one before it chose.
        """
        with self.db.transaction(connection):  # the locks last until it ends (a savepoint in the caller's)
            ids: list[Any] = []
            for number, lock in enumerate(locks):
                if lock == "lock_fifo_heads":
                    ids = self._fifo_heads(params, connection)
                else:
                    step = params if number == 0 else {**params, "ids": ids}
                    ids = [row[0] for row in self.db.rows(lock, step, connection, tuple_row)]
                if not ids:
                    return []
            jobs: list[Job] = self.db.rows(claim, {**params, "ids": ids}, connection, _fetched_job)
            return jobs

    def _fifo_heads(self, params: dict[str, Any], connection: Any) -> list[Any]:
        """Lock the next jobs of a key_strict_fifo queue's keys: the first jobs in fetch order when
        they hold enough heads (the common case, as cheap as a standard fetch), else every key's."""
        window = max(params["limit"] * FIFO_WINDOW_PER_JOB, FIFO_WINDOW_MIN)
        rows = self.db.rows("lock_fifo_window", {**params, "window": window}, connection, tuple_row)
        heads, seen = [row[0] for row in rows if row[0] is not None], rows[0][1]
        if len(heads) >= params["limit"] or seen < window:
            return heads  # enough, or the window held every ready job: there is no head beyond it
        # Too few heads among the first jobs (most of their keys are busy or blocked): visit every
        # key. Locks the window took are ours already and are taken again (they are reentrant).
        return [row[0] for row in self.db.rows("lock_fifo_heads", params, connection, tuple_row)]

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
        items = as_list(ids)
        job_ids, started = refs(items)
        params: dict[str, Any] = {
            "name": options.queue_name(name),
            "ids": job_ids,
            "started": started,
            "now": options.now_or_none(now),
        }
        query = "complete"
        if outputs is not None:
            if len(outputs) != len(items):
                raise InvalidOptionError(f"outputs has {len(outputs)} items for {len(items)} jobs")
            if any(value is not None for value in outputs):
                query = "complete_each"
                params["outputs"] = [None if value is None else self._json(value, "output") for value in outputs]
        params.setdefault("output", None if output is None else self._json(output, "output"))
        for attempt in range(FETCH_ATTEMPTS):
            try:
                return [row[0] for row in self.db.rows(query, params, conn, tuple_row)]
            except ConcurrentUpdateError:
                # Broken out of a deadlock: the statement left nothing behind. On its own it is
                # retried (completing is idempotent); inside the caller's transaction the caller decides.
                if self.db.in_transaction(self.db.connection(conn)) or attempt == FETCH_ATTEMPTS - 1:
                    raise
        return []

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
        """Fail unfinished jobs in one statement: to retry while attempts last, else failed.

        Usually active jobs; a queued job (created or retry) can be failed too,
        as in pg-boss. Finished jobs are left alone.

        `error` (an exception, a message or a dict) is stored on every job;
        `errors` gives one per job. `retryable=False` (or a per-job sequence)
        fails at once, as a handler's JobError(should_retry=False) does. A job
        that ends failed is copied to its dead letter queue, if it has one.
        """
        items = as_list(ids)
        job_ids, started = refs(items)
        if errors is not None and len(errors) != len(items):
            raise InvalidOptionError(f"errors has {len(errors)} items for {len(items)} jobs")
        per_job = errors if errors is not None else [error] * len(items)
        encoded: list[str | None] = [self._json(options.error_payload(e), "error") for e in per_job]
        if isinstance(retryable, bool):
            flags: list[bool] | None = None if retryable else [False] * len(items)
        else:
            flags = [options.boolean("retryable", r) for r in retryable]
            if len(flags) != len(items):
                raise InvalidOptionError(f"retryable has {len(flags)} items for {len(items)} jobs")
        rows = self._fail_rows(
            options.queue_name(name),
            job_ids,
            started=started,
            errors=encoded,
            retryable=flags,
            now=options.now_or_none(now),
            conn=conn,
        )
        return FailResult(
            retried=[r["id"] for r in rows if r["state"] == JobState.RETRY],
            failed=[r["id"] for r in rows if r["state"] == JobState.FAILED],
            dead_lettered=int(rows[0]["dead_lettered"]) if rows else 0,
        )

    def _fail_rows(
        self,
        name: str,
        ids: list[str],
        *,
        started: list[datetime] | None,
        errors: Sequence[str | None],
        retryable: list[bool] | None,
        now: datetime | None,
        conn: Conn,
    ) -> list[dict[str, Any]]:
        """The fail statement for jobs of one queue (fail, and expiry in maintenance): each job's id and new state."""
        params = {"name": name, "ids": ids, "started": started, "errors": errors, "retryable": retryable, "now": now}
        return self.db.rows("fail", params, conn)

    def release(self, name: str, jobs: Sequence[Job], conn: Conn = None) -> list[str]:
        """Hand back fetched jobs that were never started: queued again at once, the attempt not counted.

        Only the attempt fetched (the Job objects from fetch) is released; a
        policy that admits one waiting job per key may keep a job active, to expire.
        """
        if not jobs:
            return []
        job_ids, started = refs(list(jobs))
        if started is None:
            raise InvalidOptionError("release takes the Job objects that fetch returned")
        params = {"name": options.queue_name(name), "ids": job_ids, "started": started}
        try:
            return [row[0] for row in self.db.rows("release", params, conn, tuple_row)]
        except PolicyConflictError:
            return []

    def snooze(
        self,
        name: str,
        jobs: JobRef | Sequence[JobRef],
        seconds: float,
        *,
        max_snoozes: int = DEFAULT_MAX_SNOOZES,
        now: datetime | None = None,
        conn: Conn = None,
    ) -> SnoozeResult:
        """Run active jobs again after `seconds`, without using up an attempt (River's JobSnooze).

        A job that has snoozed `max_snoozes` times already fails for good instead
        (to its dead letter queue, if it has one), so that nothing snoozes forever.
        Pass the Job objects from fetch to snooze only the attempt you ran.
        """
        items = as_list(jobs)
        if not items:
            return SnoozeResult([], [])
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 < seconds <= MAX_SNOOZE_S:
            raise InvalidOptionError(f"snooze seconds must be between 0 and {MAX_SNOOZE_S}, got {seconds!r}")
        limit = options.integer("max_snoozes", max_snoozes)
        job_ids, started = refs(items)
        params = {
            "name": options.queue_name(name),
            "ids": job_ids,
            "started": started,
            "seconds": float(seconds),
            "max_snoozes": limit,
            "now": options.now_or_none(now),
        }
        rows = self.db.rows("snooze", params, conn, tuple_row)
        snoozed = [job_id for job_id, allowed in rows if allowed]
        over = {job_id for job_id, allowed in rows if not allowed}
        failed: list[str] = []
        if over:
            worn_out = [item for item in items if (item.id if isinstance(item, Job) else item) in over]
            error = f"snoozed {limit} times, the most a job may"
            failed = self.fail(name, worn_out, error, retryable=False, now=now, conn=conn).failed
        return SnoozeResult(snoozed, failed)

    def no_longer_active(self, jobs: Sequence[Job], conn: Conn = None) -> list[str]:
        """Of fetched jobs, the ids whose attempt is not active any more (cancelled, deleted,
        expired meanwhile): one query for any number, for a worker to tell their handlers."""
        running = [job for job in jobs if job.started_on is not None]
        if not running:
            return []
        params = {"ids": [job.id for job in running], "started": [job.started_on for job in running]}
        return [row[0] for row in self.db.rows("no_longer_active", params, conn, tuple_row)]

    def cancel(self, name: str, ids: JobRef | Sequence[JobRef], conn: Conn = None) -> list[str]:
        """Cancel jobs that have not finished (CANCELLABLE states); returns the ids cancelled."""
        return self._ids_query("cancel", name, ids, conn, states=sorted(CANCELLABLE))

    def resume(self, name: str, ids: JobRef | Sequence[JobRef], conn: Conn = None) -> list[str]:
        """Put cancelled jobs back in the queue (from the archive too)."""
        return self._ids_query("requeue", name, ids, conn, states=sorted(RESUMABLE))

    def retry(self, name: str, ids: JobRef | Sequence[JobRef], conn: Conn = None) -> list[str]:
        """Put failed jobs back in the queue with a fresh set of attempts (from the archive too)."""
        return self._ids_query("requeue", name, ids, conn, states=sorted(RETRYABLE))

    def delete_job(self, name: str, ids: JobRef | Sequence[JobRef], conn: Conn = None) -> list[str]:
        """Delete jobs wherever they are (hot table or archive)."""
        return self._ids_query("delete_jobs", name, ids, conn)

    def _ids_query(self, query: str, name: str, ids: JobRef | Sequence[JobRef], conn: Conn, **extra: Any) -> list[str]:
        job_ids, _ = refs(as_list(ids))
        params = {"name": options.queue_name(name), "ids": job_ids, **extra}
        return [row["id"] for row in self.db.rows(query, params, conn)]
