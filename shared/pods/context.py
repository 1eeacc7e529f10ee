"""What handlers share in one container: a connection pool and the host agents' key.

Handlers run in threads (the worker's team), so each takes its own pooled
connection; follow-up jobs are sent on that connection, inside the handler's
own transaction.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from psycopg import Connection
from psycopg_pool import ConnectionPool

from pods import schema
from pods.clients.host_agent import HostAgent
from runtime.secrets import secret_or_env


@dataclass
class Platform:
    pool: ConnectionPool[Any]
    host_api_key: str
    agent_timeout: float = 10.0

    @contextmanager
    def connection(self) -> Iterator[Connection[Any]]:
        with self.pool.connection() as conn:
            yield conn

    def agent(self, address: str, port: int) -> HostAgent:
        return HostAgent(address, port, self.host_api_key, self.agent_timeout)


_platform: Platform | None = None


def host_api_key() -> str:
    return str(secret_or_env("HOST_API_KEY_SECRET_ARN", "HOST_API_KEY"))


def platform() -> Platform:
    global _platform  # noqa: PLW0603 - one per container
    if _platform is None:
        from runtime.connection import database_url

        size = int(os.environ.get("TEAM_SIZE", "5"))
        pool: ConnectionPool[Any] = ConnectionPool(
            database_url(),
            min_size=1,
            max_size=max(2, size),
            open=True,
            kwargs={"autocommit": True},
            name="pods",
        )
        with pool.connection() as conn:
            schema.migrate(conn)
        _platform = Platform(pool, host_api_key(), float(os.environ.get("HOST_AGENT_TIMEOUT", "10")))
    return _platform


def set_platform(value: Platform | None) -> None:
    """Tests and the local stack provide their own."""
    global _platform  # noqa: PLW0603
    if _platform is not None and value is None:
        _platform.pool.close()
    _platform = value
