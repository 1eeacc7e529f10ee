"""Install or upgrade the queue's schema.

Many processes may call `migrate()` at once (every cold-starting Lambda does):
a transaction-level advisory lock serialises them, and each one re-reads the
version after taking it, so the schema is changed once and the others find
nothing to do. A fresh database gets sql/schema.sql in one go; an existing one
gets the numbered migrations it lacks, each in the same transaction.
"""

from __future__ import annotations

from typing import Any

from psycopg import Connection

from jobqueue.database import Database
from jobqueue.sqlfiles import LATEST_VERSION, migration_sql, migrations, schema_sql


def current_version(db: Database, conn: Connection[Any] | None = None) -> int:
    """The installed schema version, 0 when the queue's schema is not installed."""
    present = db.scalar("version_table_exists", {"table": f'"{db.schema}".version'}, conn)
    if not present:
        return 0
    return int(db.scalar("schema_version", None, conn) or 0)


def migrate(db: Database, conn: Connection[Any] | None = None, target: int = LATEST_VERSION) -> int:
    """Bring the schema to `target` (default: latest); return the version reached."""
    with db.transaction(conn) as tx:
        db.execute("lock_migrations", {"schema": db.schema}, tx)
        version = current_version(db, tx)
        if version > LATEST_VERSION:
            raise RuntimeError(
                f"schema {db.schema!r} is at version {version}, newer than this code's {LATEST_VERSION}: "
                "deploy the newer code instead"
            )
        if version == 0 and target == LATEST_VERSION:
            tx.execute(schema_sql(db.schema))  # a trusted file; the schema name is validated
            db.execute("set_version", {"version": LATEST_VERSION}, tx)
            return LATEST_VERSION
        for number, path in migrations():
            if version < number <= target:
                tx.execute(migration_sql(path, db.schema))
                db.execute("set_version", {"version": number}, tx)
                version = number
        return version
