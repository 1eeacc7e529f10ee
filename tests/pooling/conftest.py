"""A real PgBouncer in transaction mode in front of the test server.

Each test still gets its own database (cloned from the migrated template);
`pooled_dsn` reaches it through PgBouncer, `dsn` and `conn` directly (to set
up rows and to look at the server's locks).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from local.embedded_pgbouncer import EmbeddedPgBouncer, temporary_pgbouncer
from local.embedded_postgres import EmbeddedPostgres

# Fewer server connections than clients: transactions of one client run on whichever is free.
POOL_SIZE = 3


@pytest.fixture(scope="session")
def pgbouncer(pg_server: EmbeddedPostgres) -> Iterator[EmbeddedPgBouncer]:
    with temporary_pgbouncer(pg_server, pool_size=POOL_SIZE) as bouncer:
        yield bouncer


@pytest.fixture
def pooled_dsn(dsn: str, pgbouncer: EmbeddedPgBouncer) -> str:
    """This test's database, through PgBouncer."""
    return make_conninfo(dsn, host=pgbouncer.host, port=str(pgbouncer.port))


def dbname(dsn: str) -> str:
    return str(conninfo_to_dict(dsn)["dbname"])
