"""Behaviour a pg-boss user relies on, each checked here on our own (tests/conformance runs both side by side)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from jobqueue import JobState, Queue
from tests.helpers import job_row


def finish_and_archive(queue: Queue, conn: psycopg.Connection[Any], name: str) -> datetime:
    """Complete what is queued, then archive it; returns a time past the archiving."""
    queue.complete(name, queue.fetch(name, 100))
    later = datetime.now(UTC) + timedelta(days=1)
    assert queue.archive(now=later) >= 1
    return later


def test_a_throttle_slot_stays_taken_while_its_job_is_archived(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("throttled", archive_after=0)
    assert queue.send_throttled("throttled", {}, 86_400, "k") is not None
    finish_and_archive(queue, conn, "throttled")
    assert conn.execute("SELECT count(*) FROM jobqueue.job").fetchone() == (0,)  # only the archive holds it
    assert queue.send_throttled("throttled", {}, 86_400, "k") is None  # same slot: refused
    assert queue.send_throttled("throttled", {}, 86_400, "other") is not None  # another key has its own
    assert queue.insert("throttled", [{"data": {}, "singleton_key": "k", "singleton_seconds": 86_400}]) == []


def test_a_debounced_send_goes_past_an_archived_slot(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("debounced", archive_after=0)
    assert queue.send_debounced("debounced", {}, 3_600, "k") is not None
    finish_and_archive(queue, conn, "debounced")
    next_one = queue.send_debounced("debounced", {}, 3_600, "k")
    assert next_one is not None
    assert job_row(conn, next_one)["start_after"] > datetime.now(UTC)  # the next slot


def test_a_cancelled_job_frees_its_slot_even_archived(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("throttled", archive_after=0)
    first = queue.send_throttled("throttled", {}, 86_400, "k")
    assert first is not None
    queue.cancel("throttled", first)
    assert queue.archive(now=datetime.now(UTC) + timedelta(days=1)) == 1
    assert queue.send_throttled("throttled", {}, 86_400, "k") is not None


def test_delete_after_zero_keeps_finished_jobs_for_good(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("kept", archive_after=0, delete_after=0)
    queue.create_queue("dropped", archive_after=0, delete_after=60)
    kept, dropped = queue.send("kept", {}), queue.send("dropped", {})
    finish_and_archive(queue, conn, "kept")
    finish_and_archive(queue, conn, "dropped")
    purged, _ = queue.purge(now=datetime.now(UTC) + timedelta(days=3650))
    assert purged == 1
    assert kept is not None and (job := queue.get_job(kept)) is not None and job.state is JobState.COMPLETED
    assert dropped is not None and queue.get_job(dropped) is None


def test_fail_takes_queued_jobs_too(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("retrying", retry_limit=1, retry_delay=30)
    queue.create_queue("final", retry_limit=0, dead_letter=None)
    created = queue.send("retrying", {})
    final = queue.send("final", {})
    assert created is not None and final is not None
    first = queue.fail("retrying", created, "stop it")
    assert first.retried == [created]
    row = job_row(conn, created)
    assert row["state"] == "retry" and row["output"] == {"message": "stop it"}
    assert row["start_after"] > datetime.now(UTC) + timedelta(seconds=25)
    again = queue.fail("retrying", created, "and again")  # it never ran: no attempt spent, as in pg-boss
    assert again.retried == [created] and job_row(conn, created)["retry_count"] == 0
    assert queue.fail("final", final, "no").failed == [final]
    assert queue.fail("final", final, "once more") == queue.fail("final", [], "nothing")  # finished: left alone
