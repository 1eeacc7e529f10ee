"""Each queue policy's guarantee, including under concurrent senders and fetchers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from jobqueue import PolicyConflictError, Queue
from tests.helpers import make_ready


def _concurrently(dsn: str, count: int, action: Any) -> list[Any]:
    """Run `action(queue)` from `count` threads, each with its own connection."""
    queues = [Queue(dsn) for _ in range(count)]
    try:
        with ThreadPoolExecutor(count) as pool:
            return list(pool.map(action, queues))
    finally:
        for q in queues:
            q.close()


def test_standard_has_no_limit(queue: Queue) -> None:
    queue.create_queue("std")
    assert all(queue.send("std", {}, singleton_key="k") for _ in range(3))
    assert len(queue.fetch("std", 10)) == 3


def test_short_allows_one_queued_job_per_key(queue: Queue) -> None:
    queue.create_queue("short", policy="short")
    first = queue.send("short", {}, singleton_key="k")
    assert first is not None
    assert queue.send("short", {}, singleton_key="k") is None
    assert queue.send("short", {}, singleton_key="other") is not None
    # Once the first is running, a new one may queue behind it.
    queue.fetch("short", 10)
    assert queue.send("short", {}, singleton_key="k") is not None


def test_short_under_concurrent_senders(queue: Queue, dsn: str) -> None:
    queue.create_queue("short", policy="short")
    results = _concurrently(dsn, 8, lambda q: q.send("short", {}, singleton_key="pod-1"))
    assert sum(r is not None for r in results) == 1
    assert queue.queue_size("short") == 1


def test_singleton_allows_one_active_job_per_key(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("single", policy="singleton")
    ids = [queue.send("single", {"n": n}, singleton_key="k") for n in range(3)]
    other = queue.send("single", {}, singleton_key="other")
    assert all(ids) and other
    batch = queue.fetch("single", 10)
    assert sorted(j.id for j in batch) == sorted([ids[0], other])  # one per key
    assert queue.fetch("single", 10) == []  # k is busy
    queue.complete("single", batch)
    assert [j.id for j in queue.fetch("single", 10)] == [ids[1]]


def test_singleton_under_concurrent_fetchers(queue: Queue, dsn: str, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("single", policy="singleton")
    queue.insert("single", [{"data": n, "singleton_key": "k"} for n in range(20)])
    results = _concurrently(dsn, 8, lambda q: q.fetch("single", 5))
    assert sum(len(r) for r in results) == 1
    active = conn.execute("SELECT count(*) FROM jobqueue.job WHERE state = 'active'").fetchone()
    assert active == (1,)


def test_stately_allows_one_job_per_state_per_key(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("stately", policy="stately", retry_limit=3, retry_delay=60)
    first = queue.send("stately", {}, singleton_key="k")
    assert queue.send("stately", {}, singleton_key="k") is None  # one created
    [running] = queue.fetch("stately")
    assert running.id == first
    second = queue.send("stately", {}, singleton_key="k")  # the created slot is free again
    assert second is not None
    assert queue.fetch("stately") == []  # k already has an active job
    # The active one fails into retry: created, retry and active can each hold one.
    assert queue.fail("stately", [running], "boom").retried == [first]
    # first waits in retry (not yet due); second, created, runs next.
    [next_run] = queue.fetch("stately")
    assert next_run.id == second
    third = queue.send("stately", {}, singleton_key="k")
    assert third is not None  # created is free again; retry holds first, active holds second
    assert queue.send("stately", {}, singleton_key="k") is None
    # second fails while first already waits in retry: the policy allows one, so second fails.
    assert queue.fail("stately", [next_run], "boom").failed == [second]
    make_ready(conn, str(first))
    assert [j.id for j in queue.fetch("stately")] == [first]


def test_stately_under_concurrent_senders(queue: Queue, dsn: str) -> None:
    queue.create_queue("stately", policy="stately")
    results = _concurrently(dsn, 8, lambda q: q.send("stately", {}, singleton_key="k"))
    assert sum(r is not None for r in results) == 1


def test_requeue_respects_the_policy(queue: Queue) -> None:
    queue.create_queue("short", policy="short", retry_limit=0)
    first = str(queue.send("short", {}, singleton_key="k"))
    queue.fail("short", queue.fetch("short"), "boom")
    waiting = queue.send("short", {}, singleton_key="k")
    assert waiting is not None
    assert queue.retry("short", [first]) == []  # a job of k is already queued
    queue.delete_job("short", [waiting])
    assert queue.retry("short", [first]) == [first]


def test_requeue_of_two_jobs_with_one_key_is_a_clear_error(queue: Queue) -> None:
    queue.create_queue("short", policy="short", retry_limit=0)
    a = str(queue.send("short", {}, singleton_key="k"))
    queue.fail("short", queue.fetch("short"), "boom")
    b = str(queue.send("short", {}, singleton_key="k"))
    queue.fail("short", queue.fetch("short"), "boom")
    with pytest.raises(PolicyConflictError, match="one queued job per key"):
        queue.retry("short", [a, b])
    assert queue.queue_size("short") == 0


def test_a_policy_change_reaches_a_client_that_cached_the_old_one(queue: Queue) -> None:
    queue.create_queue("q")
    assert queue.send("q", {}) is not None  # the client now knows q as standard
    assert len(queue.fetch("q")) == 1
    queue.update_queue("q", policy="short")
    assert queue.send("q", {}) is not None
    assert queue.send("q", {}) is None  # refused at once, not after the cache expires
    queue.update_queue("q", policy="singleton")
    queue.delete_job("q", [j.id for j in queue.find_jobs("q")])
    assert queue.send("q", {}) and queue.send("q", {})
    assert len(queue.fetch("q", 10)) == 1  # one active per key, though the client thought "short"
