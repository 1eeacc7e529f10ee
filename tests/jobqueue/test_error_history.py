"""Each failed attempt's error is kept with the job (bounded), not only the last."""

from __future__ import annotations

from typing import Any

import psycopg

from jobqueue import Queue
from tests.helpers import make_ready


def raise_and_catch(message: str) -> Exception:
    try:
        raise ConnectionError(message)
    except ConnectionError as exc:
        return exc


def test_every_attempts_error_is_kept_in_order_with_its_traceback(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("flaky", retry_limit=2)
    job_id = str(queue.send("flaky", {}))
    for n in range(3):
        queue.fail("flaky", queue.fetch("flaky"), raise_and_catch(f"attempt {n + 1} timed out"))
        make_ready(conn, job_id)
    job = queue.get_job(job_id)
    assert job is not None and job.state == "failed"
    assert job.errors is not None
    assert [(e["attempt"], e["message"], e["type"]) for e in job.errors] == [
        (1, "attempt 1 timed out", "ConnectionError"),
        (2, "attempt 2 timed out", "ConnectionError"),
        (3, "attempt 3 timed out", "ConnectionError"),
    ]
    assert all("raise ConnectionError(message)" in e["traceback"] for e in job.errors)
    assert job.output["message"] == "attempt 3 timed out"  # the last error stays the output, as in pg-boss
    # Archived, the history goes with it.
    conn.execute("UPDATE jobqueue.job SET completed_on = now() - interval '2 hours' WHERE id = %s", (job_id,))
    queue.archive()
    archived = queue.get_job(job_id)
    assert archived is not None and archived.archived and archived.errors == job.errors


def test_the_history_is_bounded_and_expiry_is_an_attempts_error(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("many", retry_limit=30)
    job_id = str(queue.send("many", {}))
    for n in range(25):
        queue.fail("many", queue.fetch("many"), f"failure {n + 1}")
        make_ready(conn, job_id)
    queue.fetch("many")
    conn.execute("UPDATE jobqueue.job SET expire_at = now() - interval '1 second' WHERE id = %s", (job_id,))
    queue.expire()
    job = queue.get_job(job_id)
    assert job is not None and job.errors is not None
    assert len(job.errors) == 20  # the newest 20
    assert job.errors[0]["message"] == "failure 7"
    assert (job.errors[-1]["attempt"], job.errors[-1]["type"]) == (26, "JobExpired")
