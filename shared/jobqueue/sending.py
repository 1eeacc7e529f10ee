"""Sending jobs: one (`send` and its throttled, debounced and delayed forms) or many (`insert`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Unpack

from psycopg import Connection

from jobqueue import options, tracing
from jobqueue.client import Client, Conn
from jobqueue.errors import InvalidOptionError, PolicyConflictError
from jobqueue.ids import new_id, new_ids
from jobqueue.rows import (
    BatchJob,
    checked_jobs,
    copy_data_rows,
    copy_rows,
    copyable,
    copyable_data,
    data_only,
    in_batch,
    job_params,
    record_rest,
)
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
        trace = tracing.current()  # the sender's span, which the job's processing continues
        if not send_options and trace is None:
            return self._send_plain(name, self._json(data, "data"), conn)
        params = job_params(send_options)
        next_slot = params.pop("singleton_next_slot")
        job_id = str(params["id"]) if params["id"] is not None else new_id()
        origin = None if trace is None else options.to_json({tracing.TRACE_KEY: trace}, "origin")
        params.update(id=job_id, name=name, data=self._json(data, "data"), origin=origin, singleton_offset=None)
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
        throttled: SendOptions = {**send_options, "singleton_seconds": seconds, "singleton_key": key}
        return self.send(name, data, **throttled)

    def send_debounced(
        self, name: str, data: Any, seconds: int, key: str | None = None, **send_options: Unpack[SendOptions]
    ) -> str | None:
        """Like send_throttled, but a send that finds its slot taken goes into the next slot."""
        debounced: SendOptions = {
            **send_options,
            "singleton_seconds": seconds,
            "singleton_key": key,
            "singleton_next_slot": True,
        }
        return self.send(name, data, **debounced)

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
        options.queue_name(name)
        spec = None if batch is None else options.batch_spec(batch, self.max_payload_bytes)
        batch_id = None if spec is None else spec[0]
        batch_jobs: list[Mapping[str, Any]] = list(jobs)  # checked below, key by key: callers may pass any mapping
        if not batch_jobs:
            if spec is not None:
                raise InvalidOptionError(f"batch {batch_id!r} has no job: a batch needs at least one")
            return []
        # Jobs given as data alone, the common case, skip the per-job bookkeeping of options.
        datas = [job["data"] for job in batch_jobs] if all(data_only(job) for job in batch_jobs) else None
        encoded = [self._json(data, "data") for data in datas] if datas is not None else []
        checked = checked_jobs(batch_jobs, self.max_payload_bytes) if datas is None else []
        connection = self.db.connection(conn)
        trace = tracing.current()  # every job of the batch carries the sender's span
        origin = None if trace is None else options.to_json({tracing.TRACE_KEY: trace}, "origin")
        # Our own transaction only on an autocommit connection outside one; on the caller's
        # connection otherwise, the statements join (or begin) the caller's transaction.
        own = connection.autocommit and not self.db.in_transaction(connection)
        with self.db.transaction(connection) if own else nullcontext():
            queue = self.db.execute("copy_queue", {"name": name}, connection).fetchone()
            if queue is None:
                raise self._unknown_queue(name, conn=connection)
            if spec is not None and spec[1] is not None:
                self._check_on_finish(spec[1], connection)
            if datas is not None and not copyable_data(queue["policy"]):
                array = "[" + ",".join(encoded) + "]"
                params = {"name": name, "data": array, "batch_id": batch_id, "origin": origin}
                ids = [row["id"] for row in self.db.rows("insert_data", params, connection)]
            elif datas is None and not copyable(checked, queue["policy"]):
                ids = self._insert_statement(name, checked, connection, batch_id, origin)
            else:
                ids = new_ids(len(batch_jobs))
                if datas is not None:
                    text = copy_data_rows(encoded, ids, queue, queue["now"], origin)
                else:
                    text = copy_rows(checked, ids, queue, queue["now"], origin)
                if batch_id is None:
                    self.db.copy("copy_jobs", text, connection)
                else:
                    self.db.copy("copy_batch_jobs", in_batch(text, batch_id), connection)
            if spec is not None:
                if not ids:
                    raise InvalidOptionError(f"batch {batch_id!r}: the queue's policy refused every job of it")
                made = {"id": batch_id, "name": name, "total": len(ids), "on_finish": spec[2]}
                self.db.execute("make_batch", made, connection)  # a taken id: InvalidOptionError
            return ids

    def _check_on_finish(self, name: str, conn: Connection[Any]) -> None:
        """A batch's on_finish queue exists, and its policy cannot refuse the job it will be sent."""
        policy = self.db.scalar("batch_finish_policy", {"name": name}, conn)
        if policy is None:
            raise self._unknown_queue(name, "on_finish queue", conn)
        if policy in POLICIES_THAT_REFUSE_SENDS:
            raise InvalidOptionError(
                f"batch on_finish queue {name!r} is {policy}: its policy could refuse the job a batch sends; "
                "use a standard or singleton queue"
            )

    def _insert_statement(
        self,
        name: str,
        jobs: list[BatchJob],
        conn: Connection[Any],
        batch_id: str | None = None,
        origin: str | None = None,
    ) -> list[str]:
        """The batch in one INSERT whose ON CONFLICT DO NOTHING skips what a policy or throttle refuses."""
        for dead_letter in {job.params["dead_letter"] for job in jobs} - {None}:
            # The batch's own queue was read already; its dead letter queues must exist too.
            if not self.db.scalar("queue_exists", {"name": dead_letter}, conn):
                raise self._unknown_queue(str(dead_letter), "dead letter queue", conn)
        rests: dict[int, str] = {}
        ids = iter(new_ids(len(jobs)))  # made here, as for a send: the database's uuid_v7() costs more
        records = []
        for job in jobs:
            rest = rests.get(id(job.params))
            if rest is None:
                rest = rests[id(job.params)] = record_rest(job.params)
            head = '{"data":' if job.params["id"] is not None else '{"id":"' + next(ids) + '","data":'
            key = "" if job.key is None else ',"singleton_key":' + options.to_json(job.key, "singleton_key")
            records.append(head + job.data + key + rest)
        params = {"name": name, "jobs": "[" + ",".join(records) + "]", "batch_id": batch_id, "origin": origin}
        return [row["id"] for row in self.db.rows("insert", params, conn)]
