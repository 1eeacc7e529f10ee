"""The queue's access to Postgres: one connection, the named queries, errors.

A `Database` either owns its connection (made from a conninfo string or URL,
in autocommit mode, re-opened when broken) or uses one the caller lends it.
Every call may also pass `conn=`: the statement then runs on the caller's
connection, inside the caller's transaction, and commits or rolls back with it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import Connection, Cursor
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import TransactionStatus
from psycopg.rows import RowFactory, dict_row

from jobqueue.errors import ConfigurationError, DatabaseUnavailableError
from jobqueue.sqlfiles import queries_for, quote_schema

Params = Mapping[str, Any]


def parse_conninfo(conninfo: str) -> dict[str, Any]:
    """Check a conninfo string or postgresql:// URL without connecting."""
    if not isinstance(conninfo, str) or not conninfo.strip():
        raise ConfigurationError("database URL is empty: set DATABASE_URL to postgresql://user:password@host:port/db")
    if "://" in conninfo and not conninfo.startswith(("postgresql://", "postgres://")):
        raise ConfigurationError("malformed database URL: the scheme must be postgresql:// or postgres://")
    try:
        parts = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as exc:
        # libpq's message may quote the string, password included: keep it out.
        reason = str(exc).split(" in connection info string")[0].split(' after "')[0].strip()
        raise ConfigurationError(f"malformed database URL or conninfo: {reason}") from None
    port = parts.get("port")
    if port is not None and not all(p.isdigit() and 0 < int(p) < 65536 for p in str(port).split(",")):
        raise ConfigurationError(f"malformed database URL: port {port!r} is not a number between 1 and 65535")
    return parts


def redact(conninfo: str) -> str:
    """The conninfo without its password, for messages and logs."""
    try:
        parts = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "<malformed conninfo>"
    parts.pop("password", None)
    return make_conninfo("", **parts)


class Database:
    def __init__(
        self,
        target: str | Connection[Any],
        schema: str,
        *,
        connect_timeout: int = 10,
        statement_timeout_ms: int | None = None,
        prepare_threshold: int | None = 5,
        application_name: str = "jobqueue",
    ) -> None:
        quote_schema(schema)
        self.schema = schema
        self.queries = queries_for(schema)
        self._lock = threading.Lock()
        self._conn: Connection[Any] | None = None
        self._conninfo: str | None = None
        if isinstance(target, Connection):
            self._conn = target
        else:
            parse_conninfo(target)
            self._conninfo = target
        self._connect_timeout = connect_timeout
        self._statement_timeout_ms = statement_timeout_ms
        self._prepare_threshold = prepare_threshold
        self._application_name = application_name

    @property
    def owns_connection(self) -> bool:
        return self._conninfo is not None

    def _open(self) -> Connection[Any]:
        assert self._conninfo is not None
        conninfo = make_conninfo(
            self._conninfo,
            connect_timeout=self._connect_timeout,
            application_name=self._application_name,
            options=f"-c statement_timeout={self._statement_timeout_ms}" if self._statement_timeout_ms else None,
        )
        try:
            conn = psycopg.connect(conninfo, autocommit=True, prepare_threshold=self._prepare_threshold)
        except psycopg.OperationalError as exc:
            # libpq's message names host and port but never the password.
            raise DatabaseUnavailableError(
                f"cannot connect to the database ({redact(self._conninfo)}): {str(exc).strip()}"
            ) from None
        return conn

    def connection(self, conn: Connection[Any] | None = None) -> Connection[Any]:
        if conn is not None:
            return conn
        current = self._conn
        if current is not None and not current.closed and not current.broken:
            return current
        if not self.owns_connection:
            raise DatabaseUnavailableError("the connection given to the queue is closed")
        with self._lock:
            if self._conn is None or self._conn.closed or self._conn.broken:
                if self._conn is not None:
                    self._conn.close()
                self._conn = self._open()
            return self._conn

    def execute(
        self,
        name: str,
        params: Params | None = None,
        conn: Connection[Any] | None = None,
        row_factory: RowFactory[Any] = dict_row,
    ) -> Cursor[Any]:
        """Run a named query and return its cursor (rows not yet read)."""
        connection = self.connection(conn)
        cursor = connection.cursor(row_factory=row_factory)
        try:
            return cursor.execute(self.queries[name], params)
        except psycopg.OperationalError as exc:
            if connection.broken and conn is None:
                raise DatabaseUnavailableError(
                    f"lost the database connection during {name}: {str(exc).strip()}"
                ) from exc
            raise

    def rows(
        self,
        name: str,
        params: Params | None = None,
        conn: Connection[Any] | None = None,
        row_factory: RowFactory[Any] = dict_row,
    ) -> list[Any]:
        return self.execute(name, params, conn, row_factory).fetchall()

    def scalar(self, name: str, params: Params | None = None, conn: Connection[Any] | None = None) -> Any:
        row = self.execute(name, params, conn).fetchone()
        return None if row is None else next(iter(row.values()))

    @contextmanager
    def transaction(self, conn: Connection[Any] | None = None) -> Iterator[Connection[Any]]:
        """A transaction on our connection, or a savepoint in the caller's."""
        connection = self.connection(conn)
        with connection.transaction():
            yield connection

    @staticmethod
    def in_transaction(conn: Connection[Any]) -> bool:
        return conn.info.transaction_status != TransactionStatus.IDLE

    def close(self) -> None:
        if self.owns_connection and self._conn is not None:
            self._conn.close()
            self._conn = None
