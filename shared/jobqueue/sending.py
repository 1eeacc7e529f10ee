"""Sending jobs: one (`send` and its throttled, debounced and delayed forms) or many (`insert`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Unpack

from jobqueue import options
from jobqueue.client import Client, Conn
from jobqueue.errors import InvalidOptionError, PolicyConflictError
from jobqueue.ids import new_id, new_ids
from jobqueue.settings import POLICIES_THAT_REFUSE_SENDS, SEND_OPTIONS, NewJob, Policy, SendOptions, check_all


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


def job_params(values: Mapping[str, Any]) -> dict[str, Any]:
    """Send options as query parameters, checked; None means "use the queue's setting"."""
    params = check_all(SEND_OPTIONS, values, "send option")
    params["start_after"], params["start_in"] = params["start_after"] or (None, None)
    group = params.pop("group") or {}
    params["group_id"], params["group_tier"] = group.get("id"), group.get("tier")
    params["singleton_next_slot"] = bool(params["singleton_next_slot"])
    if params["singleton_next_slot"] and params["singleton_seconds"] is None:
        raise InvalidOptionError("singleton_next_slot needs singleton_seconds (the length of a slot)")
    return params


def copy_text(json_text: str) -> str:
    """JSON as a field of COPY's text format: backslashes doubled (JSON text has no raw tab or newline)."""
    return json_text.replace("\\", "\\\\") if "\\" in json_text else json_text


def batch_options(options_given: Mapping[str, Any]) -> str:
    """A job's send options for `insert`, checked, as the JSON object's members after "data"."""
    params = job_params(options_given)
    if params.pop("singleton_next_slot"):
        raise InvalidOptionError("singleton_next_slot is not supported by insert; use send_debounced")
    record: dict[str, Any] = {k: v for k, v in params.items() if v is not None}
    if isinstance(record.get("start_after"), datetime):
        record["start_after"] = record["start_after"].isoformat()
    rest = options.to_json(record, "job options")
    return "," + rest[1:] if rest != "{}" else "}"


def batch_records(batch: list[Mapping[str, Any]], max_payload_bytes: int) -> list[str]:
    """Each job of `insert` as a JSON object for json_to_recordset.

    Jobs of a batch mostly share their options (a priority, a retry limit):
    each distinct set is checked and encoded once, which was two thirds of
    such a batch's time. Sets that cannot be a dictionary key (a group, given
    as a mapping) are checked job by job.
    """
    checked: dict[tuple[tuple[str, Any], ...], str] = {}
    records = []
    ids = iter(new_ids(len(batch)))  # made here, as for a send: the database's uuid_v7() costs more
    for job in batch:
        if not isinstance(job, Mapping):
            raise InvalidOptionError(f"each job given to insert must be a mapping, got {job!r}")
        given = {k: v for k, v in job.items() if k != "data"}
        key = tuple(sorted(given.items()))
        try:
            rest = checked.get(key)
        except TypeError:  # an unhashable value
            rest = batch_options(given)
        else:
            if rest is None:
                rest = checked[key] = batch_options(given)
        head = '{"data":' if "id" in given else '{"id":"' + next(ids) + '","data":'
        records.append(head + options.to_json(job.get("data"), "data", max_payload_bytes) + rest)
    return records


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
        if not send_options:
            return self._send_plain(name, self._json(data, "data"), conn)
        params = job_params(send_options)
        next_slot = params.pop("singleton_next_slot")
        job_id = str(params["id"]) if params["id"] is not None else new_id()
        params.update(id=job_id, name=name, data=self._json(data, "data"), origin=None, singleton_offset=None)
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

    def insert(self, name: str, jobs: Iterable[NewJob], conn: Conn = None) -> list[str]:
        """Insert many jobs in one statement; return the ids of those inserted.

        Each job is a mapping with "data" and any send option except
        singleton_next_slot. All or nothing: an invalid job raises before
        anything is written; jobs a policy or throttle refuses are skipped.
        """
        options.queue_name(name)
        batch: list[Mapping[str, Any]] = list(jobs)  # checked below, key by key: callers may pass any mapping
        if not batch:
            return []
        if all(isinstance(job, Mapping) and job.keys() == {"data"} for job in batch):
            return self._insert_data([job["data"] for job in batch], name, conn)
        else:
            records = batch_records(batch, self.max_payload_bytes)
            for dead_letter in {job.get("dead_letter") for job in batch} - {None}:
                self._require_queue(name, conn, str(dead_letter))
            rows = self.db.rows("insert", {"name": name, "jobs": "[" + ",".join(records) + "]"}, conn)
        if not rows:
            self._require_queue(name, conn)
        return [row["id"] for row in rows]

    def _insert_data(self, datas: list[Any], name: str, conn: Conn) -> list[str]:
        """Jobs given only as data: by COPY when the queue's policy cannot refuse any of them.

        COPY is the fastest way into a table, but cannot skip a row a unique index
        refuses; under short, stately and exclusive the batch goes through
        insert_data's ON CONFLICT DO NOTHING instead. The queue's settings are
        read in the batch's transaction (the caller's, or one of our own), so the
        batch is all or nothing and every job gets the settings of one moment.
        """
        encoded = [self._json(data, "data") for data in datas]
        connection = self.db.connection(conn)
        # Our own transaction only on an autocommit connection outside one; on the caller's
        # connection otherwise, the statements join (or begin) the caller's transaction.
        own = connection.autocommit and not self.db.in_transaction(connection)
        with self.db.transaction(connection) if own else nullcontext():
            row = self.db.execute("copy_row_tail", {"name": name}, connection).fetchone()
            if row is None:
                raise self._unknown_queue(name, conn=connection)
            if row["policy"] in POLICIES_THAT_REFUSE_SENDS or row["policy"] == Policy.KEY_STRICT_FIFO:
                # key_strict_fifo: data alone has no key, which the table's check refuses, as insert_data says.
                array = "[" + ",".join(encoded) + "]"
                return [r["id"] for r in self.db.rows("insert_data", {"name": name, "data": array}, connection)]
            ids = new_ids(len(encoded))
            tail = "\t" + row["tail"] + "\n"
            self.db.copy(
                "copy_jobs",
                "".join([f"{job_id}\t{copy_text(data)}{tail}" for job_id, data in zip(ids, encoded, strict=True)]),
                connection,
            )
            return ids
