"""Every function, run as Lambda runs it (a process per container, settings from template.yaml),
with DATABASE_URL pointing at PgBouncer in transaction mode: worker, scheduler, maintenance and
API at once, more containers than the pool has server connections."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from jobqueue import Queue
from local import invoke
from runtime import catalog
from tests.pooling.test_core_through_pgbouncer import server_leftovers
from tests.runtime.conftest import API_TOKEN, EVENTS, event

pytestmark = pytest.mark.slow
SENT = 300


def write_event(directory: Path, name: str, body: dict[str, Any]) -> Path:
    path = directory / name
    path.write_text(json.dumps(body))
    return path


def enqueue_request(to: str) -> dict[str, Any]:
    request = copy.deepcopy(event("api-enqueue.json"))
    request["body"] = json.dumps({"queue": "send-email", "data": {"to": to}})
    return request


def test_worker_scheduler_maintenance_and_api_at_once(
    pooled_dsn: str, dsn: str, conn: psycopg.Connection[Any], aws: str, tmp_path: Path
) -> None:
    env = {
        "DATABASE_URL": pooled_dsn,
        "API_TOKEN": API_TOKEN,
        "POWERTOOLS_METRICS_NAMESPACE": "JobsTest",
        "JOBS_PLATFORM": "tests.runtime.sample_catalog",
    }
    start = datetime.now(UTC).replace(second=0, microsecond=0)
    with Queue(dsn) as setup:
        catalog.register(setup)
        setup.insert("send-email", [{"data": {"to": f"u{n}@example.com"}} for n in range(SENT)])
        # A queue of the test's own shows every fire time of the last hour as a job.
        setup.create_queue("tick-test")
        setup.schedule("tick-test", "* * * * *", now=start - timedelta(hours=2))
        # Handlers that use the database through the platform's own pool (pods.context).
        hours = [start - timedelta(hours=h) for h in range(1, 21)]
        setup.insert(
            "calculate-usage", [{"data": {"hour": h.isoformat()}, "singleton_key": h.isoformat()} for h in hours]
        )
        setup.create_queue("stale", retry_limit=3)
        setup.insert("stale", [{"data": n} for n in range(50)])
        assert len(setup.fetch("stale", 50)) == 50
    conn.execute("UPDATE jobqueue.job SET expire_at = now() - interval '1 minute' WHERE name = 'stale'")
    tick = copy.deepcopy(event("schedule.json"))
    tick["time"] = start.strftime("%Y-%m-%dT%H:%M:%SZ")
    tick_file = write_event(tmp_path, "tick.json", tick)
    enqueue_file = write_event(tmp_path, "enqueue.json", enqueue_request("api@example.com"))

    def run(logical_id: str, event_file: Path) -> Callable[[], invoke.Invocation]:
        return lambda: invoke.invoke(logical_id, event_file, overrides=env, timeout=90)

    calls = (
        [run("SendEmailWorker", EVENTS / "schedule.json")] * 3
        + [run("CalculateUsageWorker", EVENTS / "schedule.json")] * 2
        + [run("Scheduler", tick_file)] * 4
        + [run("Maintenance", EVENTS / "schedule.json")] * 3
        + [run("Api", enqueue_file)] * 2
        + [run("Api", EVENTS / "api-stats.json")]
    )
    with ThreadPoolExecutor(len(calls)) as pool:
        outcomes = list(pool.map(lambda call: call(), calls))
    assert all(o.ok for o in outcomes), [o.output[-2000:] for o in outcomes if not o.ok]
    by_function: dict[str, list[Any]] = {}
    for outcome in outcomes:
        by_function.setdefault(outcome.function, []).append(outcome.result)
    # The API's jobs may arrive after the first workers are done: one more drains them.
    last = invoke.invoke("SendEmailWorker", EVENTS / "schedule.json", overrides=env, timeout=90)
    assert last.ok, last.output[-2000:]
    alone = invoke.invoke("Maintenance", EVENTS / "schedule.json", overrides=env, timeout=90)
    assert alone.ok, alone.output[-2000:]

    # Workers: every job completed, each once (a second run would have counted a retry).
    emails = conn.execute(
        "SELECT state::text, retry_count, count(*) FROM jobqueue.job WHERE name = 'send-email' GROUP BY 1, 2"
    ).fetchall()
    assert emails == [("completed", 0, SENT + 2)]
    assert sum(r["completed"] for r in [*by_function["SendEmailWorker"], last.result]) == SENT + 2
    usage = conn.execute(
        "SELECT state::text, count(*) FROM jobqueue.job WHERE name = 'calculate-usage' GROUP BY 1"
    ).fetchall()
    assert usage == [("completed", len(hours))]
    # API: both requests enqueued (201), and stats answered.
    assert [r["statusCode"] for r in by_function["Api"]].count(201) == 2
    assert 200 in [r["statusCode"] for r in by_function["Api"]]
    # Scheduler: four containers on one tick, one job per fire time.
    ticks = conn.execute(
        "SELECT count(*), count(DISTINCT origin->>'fire_time') FROM jobqueue.job WHERE name = 'tick-test'"
    ).fetchone()
    assert ticks == (60, 60)
    # Maintenance: it ran (not skipped by a leaked lock), each stale job expired once.
    maintenance = [*by_function["Maintenance"], alone.result]
    assert any(not r["skipped"] for r in by_function["Maintenance"]) and not alone.result["skipped"]
    assert sum(r["expired_retried"] for r in maintenance) == 50
    assert server_leftovers(conn) == (0, 0)


def test_transactional_workers_through_the_pool_write_each_job_once(
    pooled_dsn: str, dsn: str, conn: psycopg.Connection[Any], aws: str
) -> None:
    """send-email declared transactional, three containers through PgBouncer at once: each job's
    write (public.sent) commits with its completion, once, and no transaction is left open."""
    env = {
        "DATABASE_URL": pooled_dsn,
        "POWERTOOLS_METRICS_NAMESPACE": "JobsTest",
        "JOBS_PLATFORM": "tests.runtime.sample_catalog:TRANSACTIONAL",
        "JOBS_RATE_LIMITS": json.dumps({"send-email": None}),  # SES's quota would make the test wait
    }
    conn.execute("CREATE TABLE public.sent (job_id uuid PRIMARY KEY, recipient text NOT NULL)")
    with Queue(dsn) as setup:
        catalog.register(setup)
        setup.insert("send-email", [{"data": {"to": f"u{n}@example.com"}} for n in range(SENT)])
    with ThreadPoolExecutor(3) as pool:
        outcomes = list(
            pool.map(
                lambda _: invoke.invoke("SendEmailWorker", EVENTS / "schedule.json", overrides=env, timeout=90),
                range(3),
            )
        )
    assert all(o.ok for o in outcomes), [o.output[-2000:] for o in outcomes if not o.ok]
    assert sum(o.result["completed"] for o in outcomes) == SENT
    assert conn.execute(
        "SELECT state::text, count(*) FROM jobqueue.job WHERE name = 'send-email' GROUP BY 1"
    ).fetchall() == [("completed", SENT)]
    assert conn.execute("SELECT count(*), count(DISTINCT job_id) FROM public.sent").fetchone() == (SENT, SENT)
    assert server_leftovers(conn) == (0, 0)
    open_transactions = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'"
    ).fetchone()
    assert open_transactions == (0,)
