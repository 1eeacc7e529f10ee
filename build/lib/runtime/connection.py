"""One queue connection per Lambda container, reused by warm invocations.

DATABASE_URL comes from Secrets Manager when DB_SECRET_ARN is set (through
Powertools' parameters, cached for SECRET_MAX_AGE seconds), else from the
environment (the local stack). The secret may hold a URL, or the JSON that RDS
keeps for a database user (username, password, host, port, dbname). RDS Proxy
and PgBouncer in transaction mode are a matter of configuration: point the
secret's host at the pooler. The defaults send no startup options and prepare
no statements, which poolers refuse or pin on; on a direct connection,
PREPARE_THRESHOLD=5 and STATEMENT_TIMEOUT_MS turn them on.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from psycopg import Connection
from psycopg.conninfo import make_conninfo

from jobqueue import ConfigurationError, DatabaseUnavailableError, Queue
from runtime.config import ConnectionSettings
from runtime.secrets import secret_value

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

_queue: Queue | None = None


def database_url(env: Mapping[str, str] = os.environ, *, refresh: bool = False) -> str:
    arn = env.get("DB_SECRET_ARN")
    if arn:
        return url_from_secret(secret_value(arn, refresh=refresh))
    url = env.get("DATABASE_URL")
    if not url:
        raise ConfigurationError("set DB_SECRET_ARN (a Secrets Manager secret) or DATABASE_URL")
    return url


def url_from_secret(secret: str) -> str:
    secret = secret.strip()
    if not secret.startswith("{"):
        return secret
    try:
        fields: dict[str, Any] = json.loads(secret)
    except json.JSONDecodeError:
        raise ConfigurationError("the database secret is neither a URL nor JSON") from None
    missing = {"username", "password", "host"} - fields.keys()
    if missing:
        raise ConfigurationError(f"the database secret lacks {', '.join(sorted(missing))}")
    return make_conninfo(
        "",
        user=fields["username"],
        password=fields["password"],
        host=fields["host"],
        port=str(fields.get("port", 5432)),
        dbname=fields.get("dbname") or fields.get("database") or "postgres",
        sslmode=fields.get("sslmode", os.environ.get("PGSSLMODE", "prefer")),
    )


def schema(env: Mapping[str, str] = os.environ) -> str:
    """The queue's Postgres schema (JOBQUEUE_SCHEMA, default jobqueue)."""
    return env.get("JOBQUEUE_SCHEMA", "jobqueue")


def queue_on(conn: Connection[Any], env: Mapping[str, str] = os.environ) -> Queue:
    """A queue client on a connection someone else manages (a handler's, inside its transaction)."""
    return Queue(conn, schema=schema(env))


def get_queue(env: Mapping[str, str] = os.environ) -> Queue:
    """The container's queue client, created on first use."""
    global _queue
    if _queue is None:
        settings = ConnectionSettings.from_env(env)
        _queue = Queue(
            database_url(env),
            schema=schema(env),
            prepare_threshold=settings.prepare_threshold,
            statement_timeout_ms=settings.statement_timeout_ms,
            connect_timeout=settings.connect_timeout,
        )
    return _queue


_handler_pool: ConnectionPool[Any] | None = None


def handler_pool(size: int, env: Mapping[str, str] = os.environ) -> ConnectionPool[Any]:
    """Connections for transactional handlers (JobType.transactional), one per handler thread at
    most, kept by the container like its queue client. Like the queue's, they prepare no statement
    and send no startup option, so that they work through a pooler in transaction mode."""
    from psycopg_pool import ConnectionPool  # here: most functions never need it, and cold starts pay imports

    global _handler_pool
    if _handler_pool is None or _handler_pool.max_size < size:
        if _handler_pool is not None:
            _handler_pool.close()
        settings = ConnectionSettings.from_env(env)
        _handler_pool = ConnectionPool(
            database_url(env),
            min_size=0,
            max_size=size,
            kwargs={"autocommit": True, "prepare_threshold": None, "connect_timeout": settings.connect_timeout},
            open=True,
        )
    return _handler_pool


def check(queue: Queue) -> None:
    """Open the connection now, so that a cold start without a database fails at once."""
    try:
        queue.db.connection()
    except DatabaseUnavailableError:
        reset()
        raise


def reset() -> None:
    """Forget the container's client and handler connections (after a failed connect, or in tests)."""
    global _queue, _handler_pool
    if _queue is not None:
        _queue.close()
    _queue = None
    if _handler_pool is not None:
        _handler_pool.close()
    _handler_pool = None
