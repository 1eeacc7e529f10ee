"""Shared fixtures: one throwaway Postgres per test session, a migrated
template database built once, and a cheap clone of it for every test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import boto3
import psycopg
import pytest
from moto.server import ThreadedMotoServer
from pytest_postgresql import factories
from pytest_postgresql.executors.noop import NoopExecutor
from pytest_postgresql.janitor import DatabaseJanitor

from deploy import project
from jobqueue import Queue
from local.embedded_postgres import FAST_SETTINGS, EmbeddedPostgres, free_port, temporary_postgres
from runtime import catalog, handlers

# The runtime serves the platform JOBS_PLATFORM names, here as in template.yaml: this repository's
# (functions run in subprocesses inherit it).
os.environ.setdefault(catalog.VARIABLE, project.find().platform)


@pytest.fixture(autouse=True)
def _declared_handlers() -> Iterator[None]:
    """A test that replaces a handler (handlers.set_handler) does so for itself only."""
    yield
    handlers.reset()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedPostgres]:
    # Prepared transactions allowed, so that a test can leave one open (what holds the horizon).
    with temporary_postgres({**FAST_SETTINGS, "max_prepared_transactions": "4"}) as server:
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


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """AWS clients made by the code under test reach moto's server on loopback."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    return moto_endpoint


@pytest.fixture
def secrets(aws: str) -> Any:
    return boto3.client("secretsmanager", endpoint_url=aws, region_name="eu-west-1")
