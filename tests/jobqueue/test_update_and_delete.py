"""update_job and upsert_job on queued jobs, and the bulk deletes (pg-boss 12)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from jobqueue import Queue, UnknownQueueError
from tests.helpers import job_row


def test_update_changes_only_what_is_given_of_a_queued_job(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("q", retention=3600)
    job_id = str(queue.send("q", {"v": 1}, priority=1))
    before = job_row(conn, job_id)
    assert queue.update_job("q", job_id, priority=7)
    row = job_row(conn, job_id)
    assert (row["data"], row["priority"], row["start_after"]) == ({"v": 1}, 7, before["start_after"])
    later = datetime.now(UTC) + timedelta(hours=1)
    assert queue.update_job("q", job_id, data={"v": 2}, start_after=later)
    row = job_row(conn, job_id)
    assert row["data"] == {"v": 2} and abs((row["start_after"] - later).total_seconds()) < 0.01
    assert row["keep_until"] - row["start_after"] == before["keep_until"] - before["start_after"]  # retention kept
    assert queue.update_job("q", job_id, data=None)  # None is data: it clears it
    assert job_row(conn, job_id)["data"] is None


def test_a_started_or_finished_job_is_not_updated(queue: Queue) -> None:
    queue.create_queue("q")
    job_id = str(queue.send("q", {}))
    queue.fetch("q")
    assert not queue.update_job("q", job_id, priority=5)
    queue.create_queue("other")
    assert not queue.update_job("other", job_id, priority=5)  # not that queue's job
    with pytest.raises(UnknownQueueError):
        queue.update_job("nope", job_id, priority=5)


def test_upsert_updates_the_newest_queued_job_of_its_key_or_sends_one(
    queue: Queue, conn: psycopg.Connection[Any]
) -> None:
    queue.create_queue("q")
    first = queue.upsert_job("q", {"v": 1}, "k", priority=2)
    assert first.inserted
    again = queue.upsert_job("q", {"v": 2}, "k", start_after=60)
    assert (again.id, again.inserted) == (first.id, False)
    row = job_row(conn, first.id)
    assert row["data"] == {"v": 2} and row["priority"] == 2 and row["start_after"] > datetime.now(UTC)
    queue.update_job("q", first.id, start_after=0)
    [started] = queue.fetch("q")
    third = queue.upsert_job("q", {"v": 3}, "k")  # the key's job is running: a new one is queued
    assert third.inserted and third.id != started.id
    # On a policy that admits one queued job per key, the race's loser edits the winner's job.
    queue.create_queue("single", policy="singleton")
    one = queue.upsert_job("single", {"v": 1}, "k")
    two = queue.upsert_job("single", {"v": 2}, "k")
    assert two.id == one.id and job_row(conn, one.id)["data"] == {"v": 2}


def test_bulk_deletes_by_state(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("q")
    queue.create_queue("other")
    queue.insert("q", [{"data": n} for n in range(6)])
    queue.send("other", {})
    active = queue.fetch("q", 2)
    queue.complete("q", active[:1])
    conn.execute("UPDATE jobqueue.job SET completed_on = now() - interval '30 days' WHERE state = 'completed'")
    queue.archive()  # one finished job in the archive
    queue.fail("q", queue.fetch("q", 1), "boom", retryable=False)
    assert queue.delete_queued_jobs("q") == 3
    assert queue.delete_stored_jobs("q") == 2  # the failed one and the archived one
    assert queue.delete_all_jobs("q") == 1  # the active one left
    assert queue.queue_size("q", ["created", "retry", "active", "completed", "failed", "cancelled"]) == 0
    assert queue.queue_size("other") == 1  # other queues untouched
    assert queue.complete("q", active[1:]) == []  # a deleted active job's completion finds nothing
    with pytest.raises(UnknownQueueError, match="did you mean 'q'"):
        queue.delete_all_jobs("qq")
