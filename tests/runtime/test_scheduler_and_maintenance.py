"""The scheduler and maintenance functions through their events."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
import pytest

from jobqueue import Queue
from local import invoke
from tests.runtime.conftest import FakeContext, RecordingLambda, event


def tick_at(moment: datetime) -> dict[str, Any]:
    request = copy.deepcopy(event("schedule.json"))
    request["time"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return request


def test_scheduler_registers_the_platform_schedules(load_function: Callable[[str], ModuleType], dsn: str) -> None:
    scheduler = load_function("scheduler")
    scheduler.handler(event("schedule.json"), FakeContext(function_name="jobs-scheduler"))
    with Queue(dsn) as q:
        crons = {(s.name, s.cron) for s in q.get_schedules()}
    assert crons == {
        ("health-check-all", "*/5 * * * *"),
        ("cleanup-old", "0 2 * * *"),
        ("calculate-usage", "0 * * * *"),
    }


@pytest.mark.slow
def test_duplicated_and_overlapping_ticks_create_one_job_per_fire_time(
    load_function: Callable[[str], ModuleType], dsn: str, conn: psycopg.Connection[Any], tmp_path: Path
) -> None:
    scheduler = load_function("scheduler")
    start = datetime.now(UTC).replace(second=0, microsecond=0)
    scheduler.handler(tick_at(start), FakeContext())  # registers the schedules (from now on)
    # A standard queue of the test's own, so that every fire time shows as a job
    # (the platform's scheduled queues are "short": they keep one waiting).
    setup = Queue(conn)
    setup.create_queue("tick-test")
    setup.schedule("tick-test", "* * * * *", now=start - timedelta(hours=2))
    event_file = tmp_path / "tick.json"
    event_file.write_text(json.dumps(tick_at(start)))
    # Four Lambdas receive the same tick at once (EventBridge delivers at least once).
    env = {"DATABASE_URL": dsn, "POWERTOOLS_METRICS_NAMESPACE": "JobsTest"}
    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(lambda _: invoke.invoke("Scheduler", event_file, overrides=env, timeout=60), range(4)))
    assert all(o.ok for o in outcomes), [o.output for o in outcomes]
    counts = dict(conn.execute("SELECT name, count(*) FROM jobqueue.job GROUP BY name").fetchall())
    # Every minute of the last hour (the catch-up window), each once.
    assert counts == {"tick-test": 60}
    assert sum(o.result["created"] for o in outcomes) == 60
    duplicates = conn.execute(
        "SELECT origin->>'schedule', origin->>'fire_time' FROM jobqueue.job GROUP BY 1, 2 HAVING count(*) > 1"
    ).fetchall()
    assert duplicates == []


def test_repeated_delivery_of_one_event_adds_nothing(load_function: Callable[[str], ModuleType], dsn: str) -> None:
    scheduler = load_function("scheduler")
    start = datetime.now(UTC).replace(second=0, microsecond=0)
    scheduler.handler(tick_at(start), FakeContext())
    with Queue(dsn) as q:
        q.update_queue("calculate-usage", policy="standard")
    later = start + timedelta(hours=3)
    first = scheduler.handler(tick_at(later), FakeContext())
    assert first["created"] >= 1
    assert scheduler.handler(tick_at(later), FakeContext())["created"] == 0


@pytest.fixture
def maintenance(load_function: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("WORKER_FUNCTIONS", '{"send-email": "jobs-send-email"}')
    monkeypatch.setenv("SCALE_JOBS_PER_WORKER", "10")
    monkeypatch.setenv("SCALE_MAX_WORKERS", "3")
    monkeypatch.setenv("BACKLOG_WARN_JOBS", "20")
    return load_function("maintenance")


def test_maintenance_expires_archives_and_scales_out_on_backlog(
    maintenance: ModuleType, dsn: str, conn: psycopg.Connection[Any], lambda_service: RecordingLambda
) -> None:
    maintenance.handler(event("schedule.json"), FakeContext(function_name="jobs-maintenance"))
    with Queue(dsn) as q:
        q.insert("send-email", [{"data": n} for n in range(50)])
        stuck = q.fetch("send-email", 5)
        conn.execute("UPDATE jobqueue.job SET expire_at = now() - interval '1 minute' WHERE state = 'active'")
        done = q.fetch("send-email", 5)
        q.complete("send-email", done)
        conn.execute("UPDATE jobqueue.job SET completed_on = now() - interval '2 hours' WHERE state = 'completed'")
    result = maintenance.handler(event("schedule.json"), FakeContext(function_name="jobs-maintenance"))
    assert result["expired_retried"] == len(stuck)
    assert result["archived"] == 5
    assert result["backlog"] and result["backlog"][0]["queue"] == "send-email"
    assert result["workers_started"] == 3  # 45 queued, 10 per worker, at most 3 more
    assert {c["FunctionName"] for c in lambda_service.calls} == {"jobs-send-email"}


def test_overlapping_maintenance_runs_are_harmless(
    maintenance: ModuleType, dsn: str, conn: psycopg.Connection[Any]
) -> None:
    maintenance.handler(event("schedule.json"), FakeContext())
    with Queue(dsn) as q:
        q.insert("send-email", [{"data": n} for n in range(300)])
        while q.fetch("send-email", 100):
            pass
    conn.execute("UPDATE jobqueue.job SET expire_at = now() - interval '1 minute' WHERE state = 'active'")
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def run() -> None:
        try:
            with Queue(dsn) as own:
                from runtime import upkeep
                from runtime.config import MaintenanceSettings

                barrier.wait()
                results.append(
                    upkeep.run(own, settings=MaintenanceSettings.from_env(), remaining_ms=lambda: 60_000, workers={})
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(r["expired_retried"] for r in results) == 300  # each job expired once
    # Each in retry once, its retry counted when it is fetched again (retries started, as in pg-boss).
    rows = conn.execute("SELECT DISTINCT state::text, retry_count FROM jobqueue.job WHERE name = 'send-email'")
    assert rows.fetchall() == [("retry", 0)]


def test_dead_letters_are_counted_apart_from_waiting_work(
    maintenance: ModuleType, dsn: str, conn: psycopg.Connection[Any], capfd: pytest.CaptureFixture[str]
) -> None:
    """A dead letter queue's jobs wait for a person: no backlog warning, not in the queue-age alarm's
    metric, and a metric (and alarm) of their own."""
    maintenance.handler(event("schedule.json"), FakeContext())  # registers the platform's queues
    with Queue(dsn) as q:
        q.send("send-email", {"to": "x"}, retry_limit=0)
        q.fail("send-email", q.fetch("send-email"), "SES said no")  # copied to dead-letters
        q.send("send-email", {"to": "y"})
    conn.execute(
        "UPDATE jobqueue.job SET created_on = now() - interval '3 hours', start_after = now() - interval '3 hours'"
        " WHERE name = 'dead-letters'"
    )
    conn.execute("UPDATE jobqueue.job SET start_after = now() - interval '2 minutes' WHERE name = 'send-email'")
    capfd.readouterr()
    result = maintenance.handler(event("schedule.json"), FakeContext())
    assert [b["queue"] for b in result["backlog"]] == []  # 3 hours old, but a dead letter
    emitted = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    totals = next(m for m in emitted if "OldestQueuedJobAgeMax" in m)
    assert 100 <= totals["OldestQueuedJobAgeMax"][0] < 3600  # send-email's 2 minutes, not the dead letter's 3 hours
    assert totals["DeadLetterJobs"] == [1.0]
