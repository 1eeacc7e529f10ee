"""The platform's schema: installed once, upgraded in place from any earlier version."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from pods import schema


def test_a_version_1_schema_is_upgraded_in_place(conn: psycopg.Connection[Any]) -> None:
    conn.execute((schema.SQL_DIR / "schema.sql").read_text())
    conn.execute(schema.QUERIES["set_version"], {"version": 1})
    conn.execute("INSERT INTO pods.pod (id, owner_id, tier, status) VALUES ('p', 'u', 't', 'running')")
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("UPDATE pods.pod SET status = 'restarting' WHERE id = 'p'")

    assert schema.migrate(conn) == schema.VERSION == 2
    assert schema.migrate(conn) == 2  # again: nothing to do
    versions = [v for (v,) in conn.execute("SELECT version FROM pods.version ORDER BY version")]
    assert versions == [1, 2]
    conn.execute("UPDATE pods.pod SET status = 'restarting' WHERE id = 'p'")  # the pod and its data stay
    assert conn.execute("SELECT status FROM pods.pod").fetchall() == [("restarting",)]


def test_a_fresh_install_lands_on_the_newest_version(conn: psycopg.Connection[Any]) -> None:
    assert schema.migrate(conn) == schema.VERSION
    assert conn.execute("SELECT max(version) FROM pods.version").fetchone() == (schema.VERSION,)
