"""Connections: malformed URLs, an unreachable database, a broken connection."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from jobqueue import ConfigurationError, DatabaseUnavailableError, Queue
from local.embedded_postgres import free_port


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "database URL is empty"),
        ("postgresql://user@host:notaport/db", "malformed database URL"),
        ("mysql://user@host/db", "scheme must be postgresql"),
        ("host=localhost port=99999", "port '99999'"),
        ("this is not a conninfo", "malformed database URL or conninfo"),
    ],
)
def test_malformed_database_url(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Queue(url)


def test_malformed_url_message_hides_the_password() -> None:
    for url in ("postgresql://app:s3cret-pw@host:bad/db", "password=s3cret-pw host"):
        with pytest.raises(ConfigurationError) as info:
            Queue(url)
        assert "s3cret-pw" not in str(info.value)


def test_unreachable_database_is_a_clear_error_without_the_password() -> None:
    queue = Queue(f"postgresql://app:s3cret-pw@127.0.0.1:{free_port()}/jobs", connect_timeout=2)
    with pytest.raises(DatabaseUnavailableError, match="cannot connect to the database") as info:
        queue.send("q", {})
    assert "s3cret-pw" not in str(info.value)


def test_broken_connection_is_reopened(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("q")
    pid = queue.db.connection().info.backend_pid
    conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises((DatabaseUnavailableError, psycopg.OperationalError)):
        queue.send("q", {})
    assert queue.send("q", {}) is not None  # the next call reconnects
    assert queue.db.connection().info.backend_pid != pid


def test_statement_timeout_is_applied(dsn: str) -> None:
    with Queue(dsn, statement_timeout_ms=1234) as queue:
        value = queue.db.connection().execute("SHOW statement_timeout").fetchone()
    assert value == ("1234ms",)


def test_queue_on_a_lent_connection(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as mine:
        queue = Queue(mine)
        queue.create_queue("q")
        assert queue.send("q", {}) is not None
        queue.close()  # does not close what it does not own
        assert not mine.closed
    with pytest.raises(DatabaseUnavailableError, match="closed"):
        queue.send("q", {})
