"""schema.sql and the numbered migrations describe the same schema; migrate() is safe to race."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from jobqueue import InvalidNameError, Queue
from jobqueue.database import Database
from jobqueue.migrations import migrate
from jobqueue.sqlfiles import LATEST_VERSION, migrations

CATALOG = """
SELECT 'column', c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
       || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname = %(schema)s AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p')
UNION ALL
SELECT 'table', c.relname || ' ' || c.relkind::text || coalesce(' ' || array_to_string(c.reloptions, ','), '')
       || coalesce(' ' || pg_get_expr(c.relpartbound, c.oid), '')
       || coalesce(' ' || pg_get_partkeydef(c.oid), '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p')
UNION ALL
SELECT 'index', replace(pg_get_indexdef(i.indexrelid), %(schema)s || '.', '')
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s
UNION ALL
SELECT 'constraint',
       cl.relname || ' ' || co.conname || ' ' || replace(pg_get_constraintdef(co.oid), %(schema)s || '.', '')
FROM pg_constraint co JOIN pg_class cl ON cl.oid = co.conrelid JOIN pg_namespace n ON n.oid = co.connamespace
WHERE n.nspname = %(schema)s
UNION ALL
SELECT 'function', p.proname || '(' || pg_get_function_arguments(p.oid) || ') '
       || coalesce(array_to_string(p.proconfig, ',') || ' ', '') || replace(p.prosrc, %(schema)s, 'S')
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %(schema)s
UNION ALL
SELECT 'trigger', t.tgname || ' ' || replace(pg_get_triggerdef(t.oid), %(schema)s || '.', '')
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND NOT t.tgisinternal
UNION ALL
SELECT 'enum', t.typname || ' ' || string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname = %(schema)s GROUP BY t.typname
ORDER BY 1, 2
"""


def catalog(conn: psycopg.Connection[Any], schema: str) -> list[tuple[str, str]]:
    rows = conn.execute(CATALOG, {"schema": schema}).fetchall()
    return [(kind, text.replace(f'"{schema}"', "S").replace(schema, "S")) for kind, text in rows]


def test_replaying_migrations_gives_the_schema_file(dsn: str, conn: psycopg.Connection[Any]) -> None:
    with Queue(dsn, schema="from_file") as fresh:
        assert fresh.migrate() == LATEST_VERSION
    stepwise = Database(dsn, "from_steps")
    for number, _ in migrations():
        assert migrate(stepwise, target=number) == number
    stepwise.close()
    from_file, from_steps = catalog(conn, "from_file"), catalog(conn, "from_steps")
    assert len(from_file) > 50
    assert from_file == from_steps


def test_migrate_is_idempotent(queue: Queue) -> None:
    assert queue.schema_version() == LATEST_VERSION
    assert queue.migrate() == LATEST_VERSION
    assert queue.migrate() == LATEST_VERSION


def test_custom_schema_is_isolated(dsn: str) -> None:
    with Queue(dsn, schema="tenant_b") as other, Queue(dsn) as default:
        other.migrate()
        other.create_queue("q")
        other.send("q", {})
        assert default.get_queue("q") is None
        assert len(other.fetch("q")) == 1


@pytest.mark.parametrize("schema", ["Jobs", "job-queue", 'x"; DROP SCHEMA public; --', "", "1abc", "a" * 64])
def test_bad_schema_names_are_refused(dsn: str, schema: str) -> None:
    with pytest.raises(InvalidNameError, match="invalid schema name"):
        Queue(dsn, schema=schema)


def _migrate_in_process(dsn: str, schema: str, barrier: Any, results: Any) -> None:
    barrier.wait()
    with Queue(dsn, schema=schema) as q:
        results.put(q.migrate())


def test_four_processes_migrating_at_once(dsn: str, conn: psycopg.Connection[Any]) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    results = ctx.Queue()
    procs = [ctx.Process(target=_migrate_in_process, args=(dsn, "raced", barrier, results)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert sorted(results.get(timeout=5) for _ in range(4)) == [LATEST_VERSION] * 4
    versions = conn.execute("SELECT version FROM raced.version").fetchall()
    assert versions == [(LATEST_VERSION,)]  # applied once


STATES_AT_VERSION_14 = """
INSERT INTO upgraded.queue (name, policy, retry_limit, retry_delay, retry_backoff, expire_in, retention,
                            archive_after, delete_after)
VALUES ('q', 'standard', 2, 0, false, 900, 1209600, 3600, 604800);
INSERT INTO upgraded.job (id, name, data, state, retry_limit, retry_count, retry_delay, retry_backoff, expire_in,
                          keep_until, delete_after, started_on, expire_at, completed_on)
VALUES
    ('00000000-0000-7000-8000-000000000001', 'q', '{"n": 1}', 'created', 2, 0, 0, false, 900,
     now() + interval '14 days', 604800, NULL, NULL, NULL),
    ('00000000-0000-7000-8000-000000000002', 'q', '{"n": 2}', 'retry', 2, 1, 0, false, 900,
     now() + interval '14 days', 604800, now() - interval '1 minute', NULL, NULL),
    ('00000000-0000-7000-8000-000000000003', 'q', '{"n": 3}', 'active', 2, 0, 0, false, 900,
     now() + interval '14 days', 604800, now(), now() + interval '15 minutes', NULL),
    ('00000000-0000-7000-8000-000000000004', 'q', '{"n": 4}', 'completed', 2, 0, 0, false, 900,
     now() + interval '14 days', 604800, now(), NULL, now()),
    ('00000000-0000-7000-8000-000000000005', 'q', '{"n": 5}', 'cancelled', 2, 0, 0, false, 900,
     now() + interval '14 days', 604800, NULL, NULL, now()),
    ('00000000-0000-7000-8000-000000000006', 'q', '{"n": 6}', 'failed', 2, 2, 0, false, 900,
     now() + interval '14 days', 604800, now(), NULL, now());
INSERT INTO upgraded.archive (id, name, priority, data, state, policy, retry_limit, retry_count, retry_delay,
                              retry_backoff, expire_in, start_after, keep_until, delete_after, created_on,
                              completed_on, delete_at)
VALUES
    ('00000000-0000-7000-8000-000000000007', 'q', 0, '{"n": 7}', 'completed', 'standard', 2, 0, 0, false, 900,
     now() - interval '2 hours', now(), 604800, now() - interval '2 hours', now() - interval '2 hours',
     now() + interval '7 days'),
    ('00000000-0000-7000-8000-000000000008', 'q', 0, '{"n": 8}', 'failed', 'standard', 2, 2, 0, false, 900,
     now() - interval '2 hours', now(), 604800, now() - interval '2 hours', now() - interval '2 hours',
     now() + interval '1 day'),
    ('00000000-0000-7000-8000-000000000009', 'q', 0, '{"n": 9}', 'cancelled', 'standard', 2, 0, 0, false, 900,
     now() - interval '2 hours', now(), 0, now() - interval '2 hours', now() - interval '2 hours', 'infinity');
"""


def test_an_installation_holding_jobs_in_every_state_migrates_without_losing_one(
    dsn: str, conn: psycopg.Connection[Any]
) -> None:
    old = Database(dsn, "upgraded")
    assert migrate(old, target=14) == 14
    old.close()
    conn.execute(STATES_AT_VERSION_14)
    before = conn.execute("SELECT id::text, state::text, data, archived FROM upgraded.any_job ORDER BY id").fetchall()
    assert len(before) == 9

    with Queue(dsn, schema="upgraded") as queue:
        assert queue.migrate() == LATEST_VERSION
        after = [
            (job.id, job.state, job.data, job.archived)
            for job in (queue.get_job(row[0]) for row in before)
            if job is not None
        ]
        assert after == before
        # The queue works on: the queued jobs are fetched, the active one completes, maintenance
        # archives into the day partitions and purges what is due, archive_kept keeps its job.
        fetched = queue.fetch("q", 10)
        assert sorted(j.data["n"] for j in fetched) == [1, 2]
        queue.complete("q", [*fetched, "00000000-0000-7000-8000-000000000003"])
        later = datetime.now(UTC) + timedelta(hours=2)
        assert queue.maintain(now=later).archived == 6
        assert queue.purge(now=later + timedelta(days=60)) == (8, 0)
        left = queue.get_job("00000000-0000-7000-8000-000000000009")
        assert left is not None and left.archived and left.state == "cancelled"
