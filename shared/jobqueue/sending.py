"""Sending jobs: one (`send` and its throttled, debounced and delayed forms) or many (`insert`)."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Unpack

from jobqueue import options, plans
from jobqueue.client import Client, Conn
from jobqueue.errors import InvalidOptionError, PolicyConflictError
from jobqueue.ids import new_id
from jobqueue.settings import POLICIES_THAT_REFUSE_SENDS, BatchSpec, NewJob, SendOptions


class _Keep:
    """`update_job(data=KEEP)`: leave the data as it is (None is data: it clears it)."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Final = _Keep()


@dataclass(slots=True, frozen=True)
class UpsertResult:
    """What `upsert_job` did: the job's id, and whether it was sent (else a queued job was updated)."""

    id: str
    inserted: bool


@dataclass(slots=True, frozen=True)
class Change:
    """What update_job and upsert_job change in a queued job (KEEP / None: unchanged)."""

    data: Any
    priority: Any
    start_after: Any
    now: datetime | None


class Sending(Client):
    def send(
        self, name: str, data: Any = None, *, conn: Conn = None, **send_options: Unpack[SendOptions]
    ) -> str | None:
        """Send one job; return its id, or None when a policy or throttle refused it.

        Options (jobqueue.settings.SendOptions; absent or None: the queue's
        setting): priority, start_after, retry_limit, retry_delay,
        retry_backoff, retry_delay_max, expire_in, singleton_key,
        singleton_seconds, singleton_next_slot, retention, delete_after,
        dead_letter, id. Sending to a queue that does not exist raises
        UnknownQueueError: queues are created explicitly.
        """
        options.queue_name(name)
        trace = plans.origin()  # the sender's span, which the job's processing continues
        if not send_options and trace is None:
            return self._send_plain(name, self._json(data, "data"), conn)
        params, next_slot = plans.send_params(name, self._json(data, "data"), send_options, trace)
        job_id: str = params["id"]
        sent = self.db.affected("send", params, conn)
        if not sent and next_slot:
            params["singleton_offset"] = params["singleton_seconds"]
            sent = self.db.affected("send", params, conn)
        if not sent:
            self._require_queue(name, conn, params["dead_letter"])
            return None
        return job_id

    def _send_plain(self, name: str, data: str, conn: Conn) -> str | None:
        connection = self.db.connection(conn)
        job_id = new_id()
        params = {"id": job_id, "name": name, "data": data}
        # Inside the caller's transaction a unique violation would abort it,
        # so there only the checked statement is used.
        if self.db.in_transaction(connection) or self.policies.get(name, connection) in POLICIES_THAT_REFUSE_SENDS:
            sent = self.db.affected("send_plain_checked", params, connection)
        else:
            try:
                sent = self.db.affected("send_plain", params, connection)
            except PolicyConflictError:
                self.policies.forget(name)  # the policy changed meanwhile: it can refuse sends now
                sent = self.db.affected("send_plain_checked", params, connection)
        if not sent:
            self._require_queue(name, conn)
            return None
        return job_id

    def update_job(
        self,
        name: str,
        id: str,
        *,
        data: Any = KEEP,
        priority: int | None = None,
        start_after: int | float | timedelta | datetime | str | None = None,
        now: datetime | None = None,
        conn: Conn = None,
    ) -> bool:
        """Change a job that has not started (created or retry): its data, priority or start time.

        Only what is given changes (`data=None` clears the data). Returns False when
        the job is not queued any more (started, finished) or not of this queue.
        """
        change = Change(data, priority, start_after, now)
        return self._update_queued(name, options.job_id(id), None, change, conn) is not None

    def upsert_job(
        self,
        name: str,
        data: Any,
        key: str,
        *,
        conn: Conn = None,
        **send_options: Unpack[SendOptions],
    ) -> UpsertResult:
        """The newest queued job with singleton key `key` gets `data` (and the priority and start
        time given), or a new job is sent with that key and these options (pg-boss's upsert)."""
        if not isinstance(key, str) or not key:
            raise InvalidOptionError("upsert_job needs a singleton key (a non-empty string)")
        connection = self.db.connection(conn)
        with self.db.transaction(connection) as tx:
            change = Change(data, send_options.get("priority"), send_options.get("start_after"), None)
            updated = self._update_queued(name, None, key, change, tx)
            if updated is not None:
                return UpsertResult(updated, inserted=False)
            keyed: SendOptions = {**send_options, "singleton_key": key}
            job_id = self.send(name, data, conn=tx, **keyed)
            if job_id is None:
                # A policy refused the new job (the key has one queued meanwhile, or active): edit that one.
                updated = self._update_queued(name, None, key, change, tx)
                if updated is None:
                    raise PolicyConflictError(f"queue {name!r} refused a job with key {key!r} and has none queued")
                return UpsertResult(updated, inserted=False)
            return UpsertResult(job_id, inserted=True)

    def _update_queued(self, name: str, id: str | None, key: str | None, change: Change, conn: Conn) -> str | None:
        options.queue_name(name)
        absolute, start_in = options.start_after(change.start_after) if change.start_after is not None else (None, None)
        params = {
            "name": name,
            "id": id,
            "key": key,
            "has_data": change.data is not KEEP,
            "data": None if change.data is KEEP else self._json(change.data, "data"),
            "priority": None if change.priority is None else options.integer("priority", change.priority),
            "start_after": absolute,
            "start_in": start_in,
            "now": options.now_or_none(change.now),
        }
        row = self.db.execute("update_queued", params, conn).fetchone()
        if row is None:
            self._require_queue(name, conn)
            return None
        return str(row["id"])

    def send_after(
        self,
        name: str,
        data: Any,
        start_after: int | float | timedelta | datetime | str,
        /,
        **send_options: Unpack[SendOptions],
    ) -> str | None:
        delayed: SendOptions = {**send_options, "start_after": start_after}
        return self.send(name, data, **delayed)

    def send_throttled(
        self, name: str, data: Any, seconds: int, key: str | None = None, **send_options: Unpack[SendOptions]
    ) -> str | None:
        """At most one job per `seconds`-long slot (per key); later sends in the slot return None."""
        return self.send(name, data, **plans.throttled(send_options, seconds, key, next_slot=False))

    def send_debounced(
        self, name: str, data: Any, seconds: int, key: str | None = None, **send_options: Unpack[SendOptions]
    ) -> str | None:
        """Like send_throttled, but a send that finds its slot taken goes into the next slot."""
        return self.send(name, data, **plans.throttled(send_options, seconds, key, next_slot=True))

    def insert(
        self, name: str, jobs: Iterable[NewJob], conn: Conn = None, *, batch: BatchSpec | None = None
    ) -> list[str]:
        """Insert many jobs at once; return the ids of those inserted.

        Each job is a mapping with "data" and any send option except
        singleton_next_slot. All or nothing: an invalid job raises before
        anything is written; jobs a policy or throttle refuses are skipped.

        `batch={"id": ..., "on_finish": {"name": queue, "data": ...}}` makes them
        a batch (in the same transaction): `get_batch(id)` counts them by how they
        finished, and once every one has finished (completed, failed for good,
        cancelled or deleted), exactly one job is sent to the on_finish queue, its
        origin carrying the counts. A batch costs a counter's update per statement
        that finishes some of its jobs, whatever its size.

        The queue's settings are read in the batch's transaction (the caller's,
        or one of our own), so every job gets the settings of one moment. The
        batch then goes in by COPY, or, when a job needs what only the INSERT
        statement does (a policy that may refuse it, its own id, a throttle
        slot, a dead letter queue), by one statement (jobqueue/rows.py).
        """
        plan = plans.plan_insert(name, jobs, batch, self.max_payload_bytes, self._json)
        if plan is None:
            return []
        connection = self.db.connection(conn)
        # Our own transaction only on an autocommit connection outside one; on the caller's
        # connection otherwise, the statements join (or begin) the caller's transaction.
        own = connection.autocommit and not self.db.in_transaction(connection)
        with self.db.transaction(connection) if own else nullcontext():
            queue = self.db.execute("copy_queue", {"name": name}, connection).fetchone()
            if queue is None:
                raise self._unknown_queue(name, conn=connection)
            if plan.on_finish is not None:
                policy = self.db.scalar("batch_finish_policy", {"name": plan.on_finish}, connection)
                if policy is None:
                    raise self._unknown_queue(plan.on_finish, "on_finish queue", connection)
                if refusal := plans.on_finish_refusal(plan.on_finish, policy):
                    raise refusal
            statement = plans.insert_statement(plan, queue)
            if statement.copy_text is not None:
                self.db.copy(statement.query, statement.copy_text, connection)
                ids = statement.ids or []
            else:
                if statement.query == "insert":
                    for dead_letter in plan.dead_letters():  # the batch's queue was read already
                        if not self.db.scalar("queue_exists", {"name": dead_letter}, connection):
                            raise self._unknown_queue(dead_letter, "dead letter queue", connection)
                ids = [row["id"] for row in self.db.rows(statement.query, statement.params, connection)]
            if plan.batch_id is not None:
                self.db.execute("make_batch", plan.batch_row(ids), connection)  # a taken id: InvalidOptionError
            return ids
