"""Many workers at once, a poison job, and a database role without superuser rights."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import psycopg
import pytest

from jobqueue import Job, Queue
from runtime import handlers
from tests.runtime.conftest import FakeContext, event

pytestmark = pytest.mark.slow
JOBS = 50_000
WORKERS = 4


def _drain(dsn: str, barrier: Any, results: Any) -> None:
    completed: list[str] = []
    with Queue(dsn) as queue:
        barrier.wait(timeout=60)
        while jobs := queue.fetch("bulk", 200):
            completed += queue.complete("bulk", jobs)
    results.put(completed)


def test_four_worker_processes_complete_fifty_thousand_jobs_exactly_once(
    queue: Queue, dsn: str, conn: psycopg.Connection[Any]
) -> None:
    queue.create_queue("bulk")
    for start in range(0, JOBS, 10_000):
        queue.insert("bulk", [{"data": n} for n in range(start, start + 10_000)])
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    results = ctx.Queue()
    processes = [ctx.Process(target=_drain, args=(dsn, barrier, results)) for _ in range(WORKERS)]
    for process in processes:
        process.start()
    completed = [results.get(timeout=300) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    all_ids = [job_id for ids in completed for job_id in ids]
    assert len(all_ids) == JOBS and len(set(all_ids)) == JOBS  # each completed once
    assert all(completed), "every process got work"
    assert conn.execute("SELECT state::text, count(*) FROM jobqueue.job GROUP BY 1").fetchall() == [("completed", JOBS)]


def test_poison_job_is_retried_with_backoff_then_dead_lettered(
    load_function: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch, dsn: str, conn: psycopg.Connection[Any]
) -> None:
    monkeypatch.setenv("QUEUE_NAME", "send-email")
    monkeypatch.setenv("SAFETY_MARGIN_MS", "500")
    worker = load_function("worker")
    ran: list[Any] = []

    def handler(job: Job) -> dict[str, Any]:
        ran.append(job.data)
        if job.data == "poison":
            raise ValueError("cannot parse this payload")
        return {"ok": job.data}

    handlers.set_handler("send-email", handler)
    worker.handler(event("schedule.json"), FakeContext())  # registers the platform's queues
    with Queue(dsn) as q:
        poison = q.send("send-email", "poison")
        q.insert("send-email", [{"data": n} for n in range(9)])
        first = worker.handler(event("schedule.json"), FakeContext())
        assert (first["completed"], first["retried"]) == (9, 1)  # the others are unaffected
        delays = []
        for _attempt in range(3):  # retry_limit 3, 60 s apart with exponential backoff
            row = conn.execute(
                "SELECT start_after - now(), retry_count FROM jobqueue.job WHERE id = %s", (poison,)
            ).fetchone()
            assert row is not None
            delays.append(row[0].total_seconds())
            conn.execute("UPDATE jobqueue.job SET start_after = now() WHERE id = %s", (poison,))
            worker.handler(event("schedule.json"), FakeContext())
        # Backoff as pg-boss: retry n waits between 1x and 2x of 60 s * 2^(n-1).
        assert 59 <= delays[0] <= 120 and 119 <= delays[1] <= 240 and 239 <= delays[2] <= 480
        job = q.get_job(str(poison))
        assert job is not None and job.state == "failed" and job.retry_count == 3
        [dead] = q.find_jobs("dead-letters")
        assert dead.data == "poison"
        assert dead.origin is not None
        source = dead.origin["dead_letter_of"]
        assert (source["queue"], source["id"]) == ("send-email", poison)
        assert {k: source["error"][k] for k in ("message", "type")} == {
            "message": "cannot parse this payload",
            "type": "ValueError",
        }
        assert 'raise ValueError("cannot parse this payload")' in source["error"]["traceback"]
    assert ran.count("poison") == 4


def test_functions_need_no_superuser(dsn: str, conn: psycopg.Connection[Any], queue: Queue) -> None:
    """The grants the README documents are enough for the functions' work."""
    conn.execute("CREATE ROLE jobs_app LOGIN")
    conn.execute("GRANT USAGE ON SCHEMA jobqueue TO jobs_app")
    conn.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA jobqueue TO jobs_app")
    conn.execute("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA jobqueue TO jobs_app")
    app_dsn = dsn.replace("user=postgres", "user=jobs_app")
    assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = 'jobs_app'").fetchone() == (False,)
    with Queue(app_dsn) as app:
        app.create_queue("q", retry_limit=0)
        app.insert("q", [{"data": n} for n in range(5)])
        app.schedule("q", "* * * * *", now=datetime.now(UTC) - timedelta(minutes=3))
        assert len(app.run_schedules()) == 3
        jobs = app.fetch("q", 10)
        app.complete("q", jobs[:4])
        app.fail("q", jobs[4:], "boom")
        assert not app.maintain(now=datetime.now(UTC) + timedelta(days=30)).skipped
        assert app.migrate() >= 1  # already migrated: nothing to change, no rights needed
