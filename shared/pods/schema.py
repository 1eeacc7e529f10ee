"""Install the platform's schema ("pods") beside the queue's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from psycopg import Connection

from jobqueue.sqlfiles import parse_queries

SQL_DIR = Path(__file__).parent / "sql"
QUERIES = {name: query.sql for name, query in parse_queries((SQL_DIR / "queries.sql").read_text()).items()}
VERSION = 1


def migrate(conn: Connection[Any]) -> int:
    """Idempotent and safe from many processes at once (advisory lock)."""
    with conn.transaction():
        conn.execute(QUERIES["lock_migrations"])
        row = conn.execute(QUERIES["schema_installed"]).fetchone()
        if row is None or not row[0]:
            conn.execute((SQL_DIR / "schema.sql").read_text())  # a trusted file of fixed text
            conn.execute(QUERIES["set_version"], {"version": VERSION})
    return VERSION
