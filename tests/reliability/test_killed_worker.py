"""A worker process killed mid-batch (SIGKILL at its timeout, as Lambda does) loses no job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from jobqueue import Queue
from local import invoke
from runtime import catalog
from tests.runtime.conftest import EVENTS
from tests.runtime.test_invoke import env

pytestmark = pytest.mark.slow


@pytest.fixture
def ready_queue(queue: Queue) -> Queue:
    catalog.register(queue)
    return queue


def test_worker_killed_mid_batch_loses_no_job(ready_queue: Queue, dsn: str, conn: psycopg.Connection[Any]) -> None:
    ids = ready_queue.insert(
        "send-email", [{"data": {"to": f"u{n}@example.com", "hang": n % 2 == 0}} for n in range(10)]
    )
    overrides = env(dsn, SAFETY_MARGIN_MS="0", EXPIRY_MARGIN_S="1", BATCH_SIZE="10", TEAM_SIZE="10")
    outcome = invoke.invoke("SendEmailWorker", EVENTS / "schedule.json", overrides=overrides, timeout=8)
    assert outcome.timed_out and not outcome.ok
    assert outcome.result["errorType"] == "Sandbox.Timedout"
    states = dict(conn.execute("SELECT state::text, count(*) FROM jobqueue.job WHERE name = 'send-email' GROUP BY 1"))
    # The jobs that finished were written as they finished; the hung ones stay claimed by the dead invocation.
    assert states == {"active": 5, "completed": 5}
    # Its jobs expire shortly after the invocation's end, not after the queue's hour.
    (latest,) = conn.execute(
        "SELECT max(expire_at) - now() FROM jobqueue.job WHERE name = 'send-email'"
    ).fetchone() or (None,)
    assert latest is not None and latest <= timedelta(seconds=6)
    assert ready_queue.expire(now=datetime.now(UTC) + timedelta(seconds=10)) == (5, 0)
    conn.execute("UPDATE jobqueue.job SET start_after = now(), data = data - 'hang' WHERE name = 'send-email'")
    again = invoke.invoke("SendEmailWorker", EVENTS / "schedule.json", overrides=env(dsn), timeout=30)
    assert again.ok, again.output
    assert again.result["completed"] == 5
    rows = conn.execute(
        "SELECT id::text, state::text, retry_count FROM jobqueue.job WHERE name = 'send-email'"
    ).fetchall()
    assert sorted(r[0] for r in rows) == sorted(ids)
    assert {r[1] for r in rows} == {"completed"}
    assert sorted(r[2] for r in rows) == [0] * 5 + [1] * 5  # the hung ones on their second attempt
