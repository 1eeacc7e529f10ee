"""Queue.horizon(): who holds the MVCC horizon back, read from the statistics views alone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from jobqueue import Queue
from tests.helpers import held_snapshot


@pytest.fixture
def report(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with held_snapshot(dsn) as holder:
        yield holder


def test_nothing_holds_the_horizon_back(queue: Queue) -> None:
    horizon = queue.horizon()
    assert [h for h in horizon.holders if h.kind == "session"] == []
    assert horizon.oldest_seconds == 0.0 and horizon.older_than(0) == []
    assert horizon.dead_job_tuples >= 0 and horizon.live_job_tuples >= 0


def test_a_session_holding_a_snapshot_is_named(queue: Queue, report: psycopg.Connection[Any]) -> None:
    horizon = queue.horizon()
    holder = horizon.oldest
    assert holder is not None and holder.kind == "session"
    assert holder.name == f"pid {report.info.backend_pid}"
    assert holder.details["application_name"] == "monthly-report"
    assert holder.details["state"] == "idle in transaction" and holder.details["writing"] is False
    assert holder.held_seconds is not None and holder.held_seconds >= 0
    assert holder in horizon.older_than(0)
    assert "monthly-report" in holder.describe() and "idle in transaction" in holder.describe()
    assert horizon.older_than(10**6) == []


def test_a_prepared_transaction_nobody_finished_is_named(queue: Queue, dsn: str) -> None:
    with psycopg.connect(dsn) as forgotten:
        forgotten.execute("BEGIN")
        forgotten.execute("INSERT INTO jobqueue.lease VALUES ('x', gen_random_uuid(), now())")
        forgotten.execute("PREPARE TRANSACTION 'forgotten-transfer'")
    try:
        holders = [h for h in queue.horizon().holders if h.kind == "prepared transaction"]
        assert [h.name for h in holders] == ["forgotten-transfer"]
        assert holders[0].held_seconds is not None and holders[0].details["username"]
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("ROLLBACK PREPARED 'forgotten-transfer'")


def test_the_horizon_is_read_without_session_state(queue: Queue, report: psycopg.Connection[Any]) -> None:
    """Plain reads only (poolers in transaction mode): nothing left behind on the connection."""
    queue.horizon()
    conn = queue.db.connection()
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone() == (0,)
