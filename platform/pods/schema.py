"""Install the platform's schema ("pods") beside the queue's, and bring it up to date."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from psycopg import Connection

from jobqueue.sqlfiles import parse_queries

SQL_DIR = Path(__file__).parent / "sql"
QUERIES = {name: query.sql for name, query in parse_queries((SQL_DIR / "queries.sql").read_text()).items()}
# schema.sql is version 1; each later version is one file, named NNNN_what.sql after its number.
MIGRATIONS = {int(path.name[:4]): path for path in sorted((SQL_DIR / "migrations").glob("[0-9][0-9][0-9][0-9]_*.sql"))}
VERSION = max(MIGRATIONS, default=1)


def migrate(conn: Connection[Any]) -> int:
    """Install or upgrade; idempotent and safe from many processes at once (advisory lock)."""
    with conn.transaction():
        conn.execute(QUERIES["lock_migrations"])
        row = conn.execute(QUERIES["schema_installed"]).fetchone()
        if row is None or not row[0]:
            conn.execute((SQL_DIR / "schema.sql").read_text())  # a trusted file of fixed text
            conn.execute(QUERIES["set_version"], {"version": 1})
        current = conn.execute(QUERIES["get_version"]).fetchone()[0]  # type: ignore[index]
        for version, path in MIGRATIONS.items():
            if version > current:
                conn.execute(path.read_text())  # a trusted file of fixed text
                conn.execute(QUERIES["set_version"], {"version": version})
    return VERSION
