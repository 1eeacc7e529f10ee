"""The exclusive and key_strict_fifo policies (pg-boss 11-12) on their own; tests/conformance compares them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from jobqueue import InvalidOptionError, Queue
from tests.helpers import job_row, make_ready


def test_exclusive_admits_one_job_per_key_queued_or_active(queue: Queue) -> None:
    queue.create_queue("excl", policy="exclusive", retry_limit=1)
    first = queue.send("excl", {}, singleton_key="k")
    assert first is not None
    assert queue.send("excl", {}, singleton_key="k") is None  # one queued
    assert queue.send("excl", {}, singleton_key="other") is not None
    [job] = queue.fetch("excl")
    assert queue.send("excl", {}, singleton_key="k") is None  # one active
    queue.fail("excl", [job], "again")
    assert queue.send("excl", {}, singleton_key="k") is None  # one waiting for its retry
    queue.cancel("excl", first)
    second = queue.send("excl", {}, singleton_key="k")
    assert second is not None
    assert queue.resume("excl", first) == []  # the key has its job again: left cancelled


def test_key_strict_fifo_needs_a_key(queue: Queue) -> None:
    queue.create_queue("fifo", policy="key_strict_fifo")
    for send in (lambda: queue.send("fifo", {}), lambda: queue.send("fifo", {}, priority=1)):
        with pytest.raises(InvalidOptionError, match="key_strict_fifo: every job needs a singleton_key"):
            send()
    with pytest.raises(InvalidOptionError, match="singleton_key"):
        queue.insert("fifo", [{"data": {}, "singleton_key": "k"}, {"data": {}}])
    assert queue.queue_size("fifo") == 0  # all or nothing


def test_key_strict_fifo_runs_each_key_in_order(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("fifo", policy="key_strict_fifo", retry_limit=1, retry_delay=60)
    sent = {n: queue.send("fifo", {"n": n}, singleton_key=key, priority=n) for n, key in enumerate("aabab")}
    first = queue.fetch("fifo", 10)
    assert {job.data["n"] for job in first} == {0, 2}  # each key's first job, whatever the priorities
    assert queue.fetch("fifo", 10) == []  # both keys busy
    a0 = next(job for job in first if job.data["n"] == 0)
    queue.complete("fifo", [job for job in first if job is not a0])
    queue.fail("fifo", [a0], "boom")  # key a waits for its retry; b goes on
    assert [job.data["n"] for job in queue.fetch("fifo", 10)] == [4]
    make_ready(conn, str(sent[0]))
    [retried] = queue.fetch("fifo", 10)
    assert retried.data["n"] == 0  # the retry before the jobs sent after it
    queue.fail("fifo", [retried], "boom again")  # no attempt left: the key is blocked
    assert queue.get_blocked_keys("fifo") == ["a"]
    assert [job.data["n"] for job in queue.fetch("fifo", 10)] == []
    queue.retry("fifo", str(sent[0]))
    assert queue.get_blocked_keys("fifo") == []
    assert [job.data["n"] for job in queue.fetch("fifo", 10)] == [0]


def test_deleting_the_failed_job_unblocks_its_key(queue: Queue) -> None:
    queue.create_queue("fifo", policy="key_strict_fifo", retry_limit=0)
    failing = queue.send("fifo", {"n": 0}, singleton_key="k")
    queue.send("fifo", {"n": 1}, singleton_key="k")
    queue.fail("fifo", queue.fetch("fifo"), "boom")
    assert queue.get_blocked_keys("fifo") == ["k"] and queue.fetch("fifo") == []
    assert failing is not None
    queue.delete_job("fifo", failing)
    assert [job.data["n"] for job in queue.fetch("fifo")] == [1]


def test_a_blocked_key_stays_blocked_when_maintenance_archives(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("fifo", policy="key_strict_fifo", retry_limit=0, archive_after=0, delete_after=3600)
    queue.send("fifo", {"n": 0}, singleton_key="k")
    queue.send("fifo", {"n": 1}, singleton_key="k")
    queue.fail("fifo", queue.fetch("fifo"), "boom")
    queue.maintain(now=datetime.now(UTC) + timedelta(minutes=30))
    assert queue.get_blocked_keys("fifo") == ["k"] and queue.fetch("fifo") == []
    # Past delete_after the failed job goes (archived and deleted, as pg-boss deletes it): the key runs again.
    queue.maintain(now=datetime.now(UTC) + timedelta(hours=2))
    assert queue.get_blocked_keys("fifo") == []
    assert [job.data["n"] for job in queue.fetch("fifo")] == [1]


def test_a_strict_fifo_job_past_its_retention_is_cancelled_not_blocking(
    queue: Queue, conn: psycopg.Connection[Any]
) -> None:
    queue.create_queue("fifo", policy="key_strict_fifo", retention=60)
    late = queue.send("fifo", {}, singleton_key="k")
    assert late is not None
    queue.maintain(now=datetime.now(UTC) + timedelta(minutes=5))
    row = job_row(conn, late)
    assert row["state"] == "cancelled" and row["output"]["type"] == "RetentionExpired"
    assert queue.get_blocked_keys("fifo") == []


def test_key_strict_fifo_finds_free_keys_beyond_a_busy_keys_backlog(queue: Queue) -> None:
    """The fetch looks for keys' next jobs among the first ready jobs first; when a busy key's
    backlog fills that window it visits every key instead, so a free key is never starved."""
    from jobqueue.working import FIFO_WINDOW_MIN

    queue.create_queue("fifo", policy="key_strict_fifo")
    queue.insert("fifo", [{"data": n, "singleton_key": "busy"} for n in range(FIFO_WINDOW_MIN + 50)])
    later = [queue.send("fifo", {"n": n}, singleton_key=f"free-{n}") for n in range(3)]
    [busy] = queue.fetch("fifo")  # one at a time per key: the busy key's first job
    assert busy.singleton_key == "busy"
    taken = queue.fetch("fifo", 10)
    assert sorted(j.id for j in taken) == sorted(later)  # past the busy key's 1,049 queued jobs
    queue.complete("fifo", [busy, *taken])
    # With few jobs per key the first ready jobs hold enough keys' next jobs, in fetch order.
    assert [j.singleton_key for j in queue.fetch("fifo", 2)] == ["busy"]
