"""One database for the whole suite, with our schema and pg-boss's side by side.

pg-boss (the npm package `make bench` installs) runs in a Node process of its
own, started once; every test uses queue names of its own, so that tests need
no fresh database.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from bench import peer

from jobqueue import Queue
from local.embedded_postgres import EmbeddedPostgres
from tests.conformance.peers import Ours, PgBoss

_names = itertools.count()


@pytest.fixture(scope="session")
def conformance_dsn(pg_server: EmbeddedPostgres) -> str:
    pg_server.create_database("conformance")
    dsn = f"host={pg_server.host} port={pg_server.port} user={pg_server.user} dbname=conformance"
    with Queue(dsn) as queue:
        queue.migrate()
    return dsn


@pytest.fixture(scope="session")
def observer(conformance_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(conformance_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def pgboss(conformance_dsn: str, observer: psycopg.Connection[Any]) -> Iterator[PgBoss]:
    try:
        peer.install()
    except peer.PeerUnavailable as exc:
        pytest.fail(f"pg-boss is needed for the conformance suite (Node.js and npm): {exc}")
    boss = PgBoss(conformance_dsn, observer)
    yield boss
    boss.close()


@pytest.fixture(scope="session")
def ours(conformance_dsn: str, observer: psycopg.Connection[Any]) -> Iterator[Ours]:
    queue = Ours(conformance_dsn, observer)
    yield queue
    queue.close()


@pytest.fixture
def fresh_name() -> Callable[[str], str]:
    """Queue names no other test (nor an earlier hypothesis example) has used."""
    return lambda base: f"{base}-{next(_names)}"
