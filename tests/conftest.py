"""Shared fixtures: one throwaway Postgres per test session, a migrated
template database built once, and a cheap clone of it for every test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from pytest_postgresql import factories
from pytest_postgresql.executors.noop import NoopExecutor
from pytest_postgresql.janitor import DatabaseJanitor

from jobqueue import Queue
from local.embedded_postgres import EmbeddedPostgres, temporary_postgres


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedPostgres]:
    with temporary_postgres() as server:
        yield server


def _migrate_template(host: str, port: int, user: str, dbname: str, password: str | None, **_: Any) -> None:
    with Queue(f"host={host} port={port} user={user} dbname={dbname}") as queue:
        queue.migrate()


@pytest.fixture(scope="session")
def pg_template(pg_server: EmbeddedPostgres) -> Iterator[NoopExecutor]:
    executor = NoopExecutor(host=pg_server.host, port=pg_server.port, user=pg_server.user, options="", dbname="tests")
    janitor = DatabaseJanitor(
        user=executor.user,
        host=executor.host,
        port=executor.port,
        dbname=executor.template_dbname,
        as_template=True,
    )
    with janitor:
        janitor.load(_migrate_template)
        yield executor


postgresql = factories.postgresql("pg_template")


@pytest.fixture
def dsn(postgresql: psycopg.Connection[Any]) -> str:
    """Conninfo of this test's own database, cloned from the migrated template."""
    info = postgresql.info
    return f"host={info.host} port={info.port} user={info.user} dbname={info.dbname}"


@pytest.fixture
def queue(dsn: str) -> Iterator[Queue]:
    with Queue(dsn) as q:
        yield q


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """A second, plain autocommit connection for backdating rows and looking around."""
    with psycopg.connect(dsn, autocommit=True) as c:
        yield c
