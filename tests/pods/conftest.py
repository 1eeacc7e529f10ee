"""The resources against real stand-ins: Postgres, host agents on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from jobqueue import Job, Queue
from pods import schema
from pods.context import Resources
from podslocal.fake_host_agent import FakeHostAgent
from runtime import catalog
from tests.runtime.conftest import lambda_service, load_function, runtime_env  # noqa: F401 - shared fixtures

API_KEY = "host-key-for-tests"


@pytest.fixture
def agents() -> Iterator[list[FakeHostAgent]]:
    started = [FakeHostAgent(API_KEY, host_index=i + 1).start() for i in range(2)]
    yield started
    for agent in started:
        agent.stop()


@pytest.fixture
def resources(
    dsn: str, queue: Queue, agents: list[FakeHostAgent], conn: psycopg.Connection[Any]
) -> Iterator[Resources]:
    catalog.register(queue)
    schema.migrate(conn)
    conn.execute(
        "INSERT INTO pods.host (id, address, agent_port, tier, capacity) VALUES (%s, %s, %s, 'dev.small', 3), "
        "(%s, %s, %s, 'dev.large', 1)",
        ("host-1", agents[0].address, agents[0].port, "host-2", agents[1].address, agents[1].port),
    )
    pool: ConnectionPool[Any] = ConnectionPool(dsn, min_size=1, max_size=10, kwargs={"autocommit": True}, open=True)
    yield Resources(pool, API_KEY, agent_timeout=2.0)
    pool.close()


def job(name: str, data: Any, attempt: int = 1, retry_limit: int = 3) -> Job:
    """A job as the worker hands it to a handler: `attempt` of 1 + `retry_limit`."""
    return Job(
        id="00000000-0000-7000-8000-000000000000",
        name=name,
        data=data,
        retry_count=attempt - 1,
        retry_limit=retry_limit,
    )


def pod_row(conn: psycopg.Connection[Any], pod_id: str) -> dict[str, Any]:
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT * FROM pods.pod WHERE id = %s", (pod_id,)).fetchone()
    assert row is not None
    return dict(row)
