"""The queue's access to Postgres: one connection, the named queries, errors.

Postgres' errors become the library's here and only here (`translate`): a
caller of the queue never has to catch a psycopg exception for something it
did wrong.

A `Database` either owns its connection (made from a conninfo string or URL,
in autocommit mode, re-opened when broken) or uses one the caller lends it.

The connection keeps no session state, so that it works unchanged through a
pooler in transaction mode (PgBouncer, RDS Proxy without pinning): no startup
options unless asked for (statement_timeout_ms, which poolers refuse), no
server-side prepared statements unless asked for (prepare_threshold), no
SET, no session-level locks, no LISTEN.
Every call may also pass `conn=`: the statement then runs on the caller's
connection, inside the caller's transaction, and commits or rolls back with it.

`Database.deadline(seconds)` bounds every call on its own connection in time, also
when the network stalls without closing (a hung pooler, a route that drops
packets): TCP keepalives and libpq's timeouts do not fire while something on the
path still acknowledges, so a timer cuts the connection's socket when the time is
up, and no connection is opened past it.
"""

from __future__ import annotations

import math
import os
import re
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import Connection, Cursor
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import TransactionStatus
from psycopg.rows import RowFactory, dict_row

from jobqueue.errors import (
    ConcurrentUpdateError,
    ConfigurationError,
    DatabaseUnavailableError,
    InvalidOptionError,
    LockTimeoutError,
    PolicyConflictError,
    QueueInUseError,
    UnknownQueueError,
)
from jobqueue.sqlfiles import queries_for, quote_schema

Params = Mapping[str, Any]
_MISSING_KEY = re.compile(r"Key \(\w+\)=\((.*)\) is not present")
# The constraints whose violation is the caller's doing (schema.sql names them). A queue that
# names itself its dead letter queue (queue_check) is refused before any statement, by queues.py.
DEAD_LETTER_FK = "queue_dead_letter_fkey"
POLICY_INDEXES = frozenset({"job_policy", "job_throttle", "job_exclusive", "job_strict_fifo"})
# Check constraints a caller can violate, and what to tell them.
CHECKS = {
    "job_strict_fifo_key": "queue {name!r} is key_strict_fifo: every job needs a singleton_key",
    "queue_fairness_policy": (
        "queue {name!r}: fairness round_robin takes jobs in the groups' turns, which a policy that takes one "
        "job of a key at a time (singleton, stately) cannot: use standard, short, exclusive or key_strict_fifo"
    ),
}
# A statement's unique violation that is the caller's mistake, by statement.
UNIQUE_BY_QUERY = {"make_batch": "batch {id!r} exists already: a batch's id is used once"}
# libpq's shortest connect_timeout: with less time than this left, no connection is attempted.
MIN_CONNECT_S = 2
# How PgBouncer and RDS Proxy refuse the `options` startup parameter.
POOLER_REFUSES_OPTIONS = re.compile(r"unsupported startup parameter|command-line options", re.IGNORECASE)


# A partition's copy of one of the job table's indexes: the partition's name, then the parent
# index's name after "job_" (schema.sql's name_partition_indexes).
_PARTITION_INDEX = re.compile(r"^job_(?:common|[0-9a-f]{24})_(\w+)$")


def _on_parent(constraint: str) -> str:
    """The job table's name for a constraint that a partition reports under its own."""
    found = _PARTITION_INDEX.match(constraint)
    return f"job_{found.group(1)}" if found else constraint


def translate(error: psycopg.errors.IntegrityError, query: str, params: Params | None) -> Exception:
    """The library's error for a constraint violation, or the violation itself if it is a bug of ours."""
    constraint = _on_parent(error.diag.constraint_name or "")
    name = (params or {}).get("name")
    if isinstance(error, psycopg.errors.ForeignKeyViolation) and constraint == DEAD_LETTER_FK:
        if query == "delete_queue":
            return QueueInUseError(f"queue {name!r} became another queue's dead letter queue meanwhile")
        missing = _MISSING_KEY.search(error.diag.message_detail or "")
        return UnknownQueueError(missing.group(1) if missing else "?", "dead letter queue")
    refused = (
        CHECKS.get(constraint)
        if isinstance(error, psycopg.errors.CheckViolation)
        else UNIQUE_BY_QUERY.get(query)
        if isinstance(error, psycopg.errors.UniqueViolation)
        else None
    )
    if refused is not None:
        return InvalidOptionError(refused.format(name=name, id=(params or {}).get("id")))
    if isinstance(error, psycopg.errors.UniqueViolation) and constraint in POLICY_INDEXES:
        if query == "requeue":
            return PolicyConflictError(
                f"cannot requeue: the queue {name!r}'s policy allows one queued job per key, and two of these "
                "jobs (or a job sent meanwhile) share a key"
            )
        return PolicyConflictError(f"the policy of queue {name!r} refused the change ({constraint})")
    return error


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


def connection_target(
    conninfo: str, connect_timeout: int, statement_timeout_ms: int | None, application_name: str = "jobqueue"
) -> str:
    """The conninfo a queue connects with: the caller's, its timeouts and name added."""
    return make_conninfo(
        conninfo,
        connect_timeout=connect_timeout,
        application_name=application_name,
        options=f"-c statement_timeout={statement_timeout_ms}" if statement_timeout_ms else None,
    )


def connect_failure(exc: psycopg.OperationalError, conninfo: str, statement_timeout_ms: int | None) -> Exception:
    """What a failed connect raises: a pooler's refusal of the timeout option is the caller's
    configuration; anything else, the database unavailable (its password never in the message)."""
    if statement_timeout_ms and POOLER_REFUSES_OPTIONS.search(str(exc)):
        return ConfigurationError(
            "the server refused the startup option that sets statement_timeout (a pooler such as "
            "PgBouncer or RDS Proxy does): leave statement_timeout_ms (STATEMENT_TIMEOUT_MS) unset and "
            "set the timeout on the database role instead, e.g. ALTER ROLE <user> SET statement_timeout = '30s'"
        )
    # libpq's message names host and port but never the password; its first line says
    # what failed (the next ones are hints such as "Is the server running on that host").
    reason = (str(exc).strip().splitlines() or ["no reason given"])[0]
    return DatabaseUnavailableError(f"cannot connect to the database ({redact(conninfo)}): {reason}")


async def open_async_pool(pool: Any, timeout: float, conninfo: str, statement_timeout_ms: int | None) -> None:
    """Open an AsyncQueue's own pool (psycopg_pool.AsyncConnectionPool): a database that does not
    answer within `timeout` is DatabaseUnavailableError, as for Queue, the pool closed again."""
    from psycopg_pool import PoolTimeout  # noqa: PLC0415 - only AsyncQueue's users load the pool

    try:
        await pool.open(wait=True, timeout=timeout)
    except PoolTimeout:
        await pool.close()
        raise DatabaseUnavailableError(
            f"cannot connect to the database ({redact(conninfo)}): no connection within {timeout} s"
        ) from None
    except psycopg.OperationalError as exc:
        await pool.close()
        raise connect_failure(exc, conninfo, statement_timeout_ms) from None


class Translating:
    """Around a statement: Postgres' errors become the library's (a class, not a generator: hot path)."""

    __slots__ = ("connection", "lent", "name", "params")

    def __init__(self, name: str, params: Params | None, connection: Any, *, lent: bool) -> None:
        self.name, self.params, self.connection, self.lent = name, params, connection, lent

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _tb: object) -> None:
        if isinstance(exc, psycopg.errors.IntegrityError):
            translated = translate(exc, self.name, self.params)
            if translated is not exc:
                raise translated from None
        elif isinstance(exc, psycopg.errors.DeadlockDetected):
            raise ConcurrentUpdateError(
                f"{self.name} was chosen to break a deadlock: {str(exc).splitlines()[0]}"
            ) from None
        elif isinstance(exc, psycopg.errors.LockNotAvailable):
            raise LockTimeoutError(f"{self.name} gave up waiting for a lock: {str(exc).splitlines()[0]}") from None
        elif isinstance(exc, psycopg.OperationalError) and self.connection.broken and not self.lent:
            raise DatabaseUnavailableError(
                f"lost the database connection during {self.name}: {str(exc).strip()}"
            ) from exc
        # Anything else goes on as it was.


class Database:
    def __init__(
        self,
        target: str | Connection[Any],
        schema: str,
        *,
        connect_timeout: int = 10,
        statement_timeout_ms: int | None = None,
        prepare_threshold: int | None = None,
        application_name: str = "jobqueue",
    ) -> None:
        quote_schema(schema)
        self.schema = schema
        self.queries = queries_for(schema)
        self._lock = threading.Lock()
        self._conn: Connection[Any] | None = None
        self._conninfo: str | None = None
        self._plain_cursor: Cursor[Any] | None = None  # affected()'s, on the last connection it ran on
        if isinstance(target, Connection):
            self._conn = target
        else:
            parse_conninfo(target)
            self._conninfo = target
        self._connect_timeout = connect_timeout
        self._statement_timeout_ms = statement_timeout_ms
        self._prepare_threshold = prepare_threshold
        self._application_name = application_name
        self._deadline: float | None = None  # time.monotonic() after which no call may run (deadline())
        self._cut = False  # the deadline passed and the connection was cut
        # The deadline block whose timer may still cut (None: none), and the lock that keeps a cut
        # from racing the block's end or a close: a late timer must not cut the next block's
        # connection, nor a socket whose descriptor number was freed and reused meanwhile.
        self._armed: object | None = None
        self._cut_lock = threading.Lock()

    @property
    def owns_connection(self) -> bool:
        return self._conninfo is not None

    def _open(self, connect_timeout: int) -> Connection[Any]:
        assert self._conninfo is not None
        conninfo = connection_target(
            self._conninfo, connect_timeout, self._statement_timeout_ms, self._application_name
        )
        try:
            conn = psycopg.connect(conninfo, autocommit=True, prepare_threshold=self._prepare_threshold)
        except psycopg.OperationalError as exc:
            raise connect_failure(exc, self._conninfo, self._statement_timeout_ms) from None
        return conn

    def connection(self, conn: Connection[Any] | None = None) -> Connection[Any]:
        if conn is not None:
            return conn
        current = self._conn
        if current is not None and not current.closed and not current.broken and not self._cut:
            return current
        if not self.owns_connection:
            raise DatabaseUnavailableError("the connection given to the queue is closed")
        with self._lock:
            if self._conn is None or self._conn.closed or self._conn.broken or self._cut:
                if self._conn is not None:
                    with self._cut_lock:
                        self._conn.close()
                        self._conn = None
                self._conn = self._open(self._connect_within())
            return self._conn

    def _lent(self, conn: Connection[Any] | None) -> bool:
        """Whether `conn` is the caller's (its loss is theirs to handle), not ours passed along."""
        return conn is not None and conn is not self._conn

    def _connect_within(self) -> int:
        """The connect timeout: the configured one, or less when a deadline is nearer."""
        if self._deadline is None:
            self._cut = False  # a cut that came as its block ended: the next block starts afresh
            return self._connect_timeout
        left = self._deadline - time.monotonic()
        if self._cut or left < MIN_CONNECT_S:
            raise DatabaseUnavailableError(
                "the database did not answer in the time this call had (its deadline passed or is "
                f"{max(left, 0):.1f} s away): no connection is opened"
            )
        return min(self._connect_timeout, math.floor(left))

    @contextmanager
    def deadline(self, seconds: float) -> Iterator[None]:
        """Within the block, every call on this Database's own connection ends within `seconds`:
        when the time is up, a call in flight fails with DatabaseUnavailableError (its socket is
        cut: whatever it had sent may still commit on the server, as after any lost connection),
        and so does every later call, without connecting again. A connection is opened only with
        time enough left for libpq's shortest connect timeout, and with no more than that time.
        Afterwards the connection is opened again as needed."""
        self._deadline = time.monotonic() + max(seconds, 0.0)
        block = object()
        self._armed = block
        timer = threading.Timer(max(seconds, 0.0), self._cut_connection, args=(block,))
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()
            with self._cut_lock:  # a timer already running waits here, then finds itself disarmed
                self._armed = None
            self._deadline = None
            if self._cut:
                self._cut = False
                self.close()

    def _cut_connection(self, block: object) -> None:
        """Shut the connection's socket down (from the timer's thread): a call blocked on it, even on
        a stalled network, wakes up to an error at once; the connection is then broken. Nothing
        when `block`, the deadline block that armed this timer, has ended."""
        with self._cut_lock:
            if self._armed is not block:
                return
            self._cut = True
            conn = self._conn
            if conn is None or conn.closed:
                return
            try:
                fd = conn.pgconn.socket
                with socket.socket(fileno=os.dup(fd)) as cutter:
                    cutter.shutdown(socket.SHUT_RDWR)
            except (OSError, psycopg.Error):
                pass  # closed meanwhile: nothing in flight to cut

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
        with Translating(name, params, connection, lent=self._lent(conn)):
            return cursor.execute(self.queries[name], params)

    def affected(self, name: str, params: Params | None = None, conn: Connection[Any] | None = None) -> int:
        """Run a named statement that returns no rows; how many rows it changed.

        The hot path of a plain send: a cursor kept per connection, no row factory.
        """
        connection = self.connection(conn)
        cursor = self._plain_cursor
        if cursor is None or cursor.closed or cursor.connection is not connection:
            cursor = self._plain_cursor = connection.cursor()
        with Translating(name, params, connection, lent=self._lent(conn)):
            cursor.execute(self.queries[name], params)
        return cursor.rowcount

    def optional(self, name: str, params: Params | None = None, conn: Connection[Any] | None = None) -> bool:
        """Run a named statement whose failure changes nothing the caller needs (moving a fetch
        floor on): False instead of an error. On the caller's connection outside a transaction,
        or on ours; a broken connection is reopened by the next statement, as always."""
        try:
            with self.connection(conn).cursor() as cursor:
                cursor.execute(self.queries[name], params)
        except psycopg.Error:
            return False
        return True

    def copy(self, name: str, text: str, conn: Connection[Any]) -> None:
        """COPY ... FROM STDIN (a named statement) with `text` in COPY's text format."""
        with (
            Translating(name, None, conn, lent=self._lent(conn)),
            conn.cursor() as cursor,
            cursor.copy(self.queries[name]) as copy,
        ):
            copy.write(text)

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
        # BEGIN and COMMIT are statements too: a connection lost on either is the same fault.
        with Translating("transaction", None, connection, lent=self._lent(conn)), connection.transaction():
            yield connection

    @staticmethod
    def in_transaction(conn: Connection[Any]) -> bool:
        return conn.info.transaction_status != TransactionStatus.IDLE

    def close(self) -> None:
        if self.owns_connection:
            with self._cut_lock:  # never while a cut holds its descriptor
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
