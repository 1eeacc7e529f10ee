"""What handlers share in one container: a connection pool and the host agents' key.

Handlers run in threads (the worker's team), so each takes its own pooled
connection; follow-up jobs are sent on that connection, inside the handler's
own transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from psycopg import Connection
from psycopg_pool import ConnectionPool

from jobqueue import Queue
from pods import config, schema
from pods.clients.host_agent import HostAgent
from runtime.connection import queue_on
from runtime.secrets import secret_or_env


@dataclass
class Resources:
    pool: ConnectionPool[Any]
    # None: read when a handler first talks to a host agent. Only the job types
    # that do may read the secret (template.yaml grants it to them alone).
    host_api_key: str | None = None
    agent_timeout: float = 10.0
    # Dial every host agent here instead of its recorded address (HOST_AGENT_ADDRESS): a
    # container run by `sam local` reaches the local stack's agents through host.docker.internal.
    agent_address: str | None = None

    @contextmanager
    def connection(self) -> Iterator[Connection[Any]]:
        with self.pool.connection() as conn:
            yield conn

    def agent(self, address: str, port: int) -> HostAgent:
        if self.host_api_key is None:
            # Read on first use, like the key: only job types that talk to host agents declare it.
            self.host_api_key = host_api_key()
            self.agent_address = self.agent_address or config.host_agent_address()
        return HostAgent(self.agent_address or address, port, self.host_api_key, self.agent_timeout)

    @staticmethod
    def queue(conn: Connection[Any]) -> Queue:
        """The job queue on a handler's connection (in the runtime's configured schema)."""
        return queue_on(conn)


_resources: Resources | None = None


def host_api_key() -> str:
    return str(secret_or_env("HOST_API_KEY_SECRET_ARN", "HOST_API_KEY"))


def resources() -> Resources:
    global _resources  # noqa: PLW0603 - one per container
    if _resources is None:
        from runtime.config import ConnectionSettings
        from runtime.connection import database_url

        size = config.team_size()
        pool: ConnectionPool[Any] = ConnectionPool(
            database_url(),
            min_size=1,
            max_size=max(2, size),
            open=True,
            # The queue's connection settings: through a pooler, no prepared statements nor startup options.
            kwargs={"autocommit": True, **ConnectionSettings.from_env().psycopg_kwargs()},
            name="pods",
        )
        with pool.connection() as conn:
            schema.migrate(conn)
        _resources = Resources(
            pool,
            None,
            config.host_agent_timeout(),
        )
    return _resources


def set_resources(value: Resources | None) -> None:
    """Tests and the local stack provide their own."""
    global _resources  # noqa: PLW0603
    if _resources is not None and value is None:
        _resources.pool.close()
    _resources = value
