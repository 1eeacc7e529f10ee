"""Small helpers for tests: backdating rows instead of sleeping."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from jobqueue.diagnostics import function_statement  # noqa: F401 - the tests' name for it


def seconds_ago(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)


def later(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def make_ready(conn: psycopg.Connection[Any], *ids: str, schema: str = "jobqueue") -> None:
    """Pretend a delayed or retrying job's start_after has passed.

    It stays after the job's created_on, as time passing leaves it: a job queued behind its place
    (retried, delayed) is found through the job_deferred index wherever the fetch floor stands.
    """
    conn.execute(
        f"UPDATE {schema}.job"
        " SET start_after = greatest(now() - interval '1 second', created_on + interval '1 microsecond')"
        " WHERE id = ANY(%s::uuid[])",
        (list(ids),),
    )


def job_row(conn: psycopg.Connection[Any], job_id: str, schema: str = "jobqueue") -> dict[str, Any]:
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"SELECT * FROM {schema}.job WHERE id = %s", (job_id,)).fetchone()
    assert row is not None, f"job {job_id} is not in the job table"
    return row


@contextmanager
def held_snapshot(dsn: str, application_name: str = "monthly-report") -> Iterator[psycopg.Connection[Any]]:
    """Another session in REPEATABLE READ, its snapshot taken and idle in its transaction: vacuum
    removes nothing finished after it until it ends (a report, a forgotten psql session)."""
    with psycopg.connect(dsn, application_name=application_name) as holder:
        holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        holder.execute("SELECT 1").fetchone()
        yield holder
        holder.rollback()


@contextmanager
def api_server(dsn: str, token: str, **env: str) -> Iterator[str]:
    """The local stack's API server (`local.api_server`, what `make dev` runs) on `dsn`: its URL."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from local.embedded_postgres import free_port

    port = free_port()
    settings = {
        **os.environ,
        "DATABASE_URL": dsn,
        "API_TOKEN": token,
        "POWERTOOLS_METRICS_NAMESPACE": "JobsTests",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "WORKER_FUNCTIONS": "",
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "local.api_server", "--port", str(port)],
        env=settings,
        cwd=Path(__file__).parents[1],
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert json.loads(process.stdout.readline()) == {"listening": port}
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
