"""The ceiling: the least a Postgres queue can do, in plain psycopg.

COPY to enqueue, one UPDATE ... FOR UPDATE SKIP LOCKED to claim a batch, one
UPDATE to finish it. No options, no policies, no retries: whatever our queue
costs beyond this is the price of its features.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

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
