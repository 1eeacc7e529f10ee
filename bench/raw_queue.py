"""The ceiling: the least a Postgres queue can do, in plain psycopg.

COPY to enqueue, one UPDATE ... FOR UPDATE SKIP LOCKED to claim a batch, one
UPDATE to finish it. No options, no policies, no retries: whatever our queue
costs beyond this is the price of its features.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from jobqueue.ids import new_ids

SCHEMA = """
CREATE SCHEMA IF NOT EXISTS raw;
DROP TABLE IF EXISTS raw.job;
CREATE TABLE raw.job (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    data jsonb,
    state text NOT NULL DEFAULT 'created',
    priority integer NOT NULL DEFAULT 0,
    created_on timestamptz NOT NULL DEFAULT now(),
    started_on timestamptz,
    completed_on timestamptz
);
CREATE INDEX raw_job_fetch ON raw.job (name, priority DESC, created_on, id) WHERE state = 'created';
"""

SEND = "INSERT INTO raw.job (name, data) VALUES (%s, %s)"
FETCH = """
WITH next AS MATERIALIZED (
    SELECT id FROM raw.job WHERE name = %s AND state = 'created'
    ORDER BY priority DESC, created_on, id LIMIT %s FOR UPDATE SKIP LOCKED
)
UPDATE raw.job j SET state = 'active', started_on = now() FROM next WHERE j.id = next.id
RETURNING j.id, j.data
"""
COMPLETE = "UPDATE raw.job SET state = 'completed', completed_on = now() WHERE id = ANY(%s)"


class RawQueue:
    def __init__(self, conninfo: str) -> None:
        self.conn = psycopg.connect(conninfo, autocommit=True)

    def reset(self) -> None:
        self.conn.execute(SCHEMA)

    def send(self, name: str, data: Any) -> None:
        self.conn.execute(SEND, (name, Jsonb(data)))

    def copy(self, name: str, items: list[Any]) -> None:
        with (
            self.conn.transaction(),
            self.conn.cursor() as cur,
            cur.copy("COPY raw.job (name, data) FROM STDIN") as copy,
        ):
            for data in items:
                copy.write_row((name, Jsonb(data)))

    def fetch(self, name: str, batch_size: int) -> list[tuple[int, Any]]:
        return self.conn.execute(FETCH, (name, batch_size)).fetchall()

    def complete(self, ids: list[int]) -> None:
        self.conn.execute(COMPLETE, (ids,))

    def close(self) -> None:
        self.conn.close()


class JobTableBaseline:
    """The least work that puts our queue's rows into our job table: the ceiling for send and insert.

    The same rows as a plain send or a data-only insert writes (same columns,
    same indexes, the queue's settings as constants read once), without
    anything the queue adds: no validation, no queue lookup per call, no id
    returned. A single row is a plain INSERT (the column default makes its
    id); a batch is one COPY of rows rendered as text, with ids made on the
    client (jobqueue.ids), the fastest way found to COPY them: with the
    column default's uuid_v7() the same COPY runs at 0.8x.
    """

    SETTINGS = (
        "SELECT name, policy, retry_limit, retry_delay, retry_backoff, retry_delay_max, expire_in,"
        " now() + make_interval(secs => retention), delete_after, dead_letter FROM {schema}.queue WHERE name = %s"
    )
    COLUMNS = (
        "name, policy, retry_limit, retry_delay, retry_backoff, retry_delay_max, expire_in, keep_until,"
        " delete_after, dead_letter, priority"
    )

    def __init__(self, conninfo: str, queue: str, schema: str = "jobqueue", priority: int = 0) -> None:
        self.conn = psycopg.connect(conninfo, autocommit=True, prepare_threshold=5)
        self.schema = schema
        row = self.conn.execute(self.SETTINGS.format(schema=schema), (queue,)).fetchone()
        if row is None:
            raise ValueError(f"no queue {queue!r}")
        self.values = (*row, priority)  # the rows of a batch whose jobs all give this priority
        self.insert_sql = (
            f"INSERT INTO {schema}.job (data, {self.COLUMNS}) VALUES (%s, {', '.join(['%s'] * len(self.values))})"
        )
        self.tail = "\t" + "\t".join(_copy_field(v) for v in self.values) + "\n"

    def send(self, data: Any) -> None:
        self.conn.execute(self.insert_sql, (Jsonb(data), *self.values))

    def copy(self, items: list[Any]) -> None:
        ids = new_ids(len(items))
        rows = [
            f"{job_id}\t{_copy_field(json.dumps(data))}{self.tail}" for job_id, data in zip(ids, items, strict=True)
        ]
        with (
            self.conn.transaction(),
            self.conn.cursor() as cur,
            cur.copy(f"COPY {self.schema}.job (id, data, {self.COLUMNS}) FROM STDIN") as copy,
        ):
            copy.write("".join(rows))

    def close(self) -> None:
        self.conn.close()


def _copy_field(value: Any) -> str:
    """A value in COPY's text format."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
