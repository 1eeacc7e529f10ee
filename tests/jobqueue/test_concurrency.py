"""Concurrent workers: every job is claimed and completed exactly once."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import psycopg
import pytest

from jobqueue import Queue

JOBS = 20_000
WORKERS = 4


def test_four_workers_drain_twenty_thousand_jobs_exactly_once(
    queue: Queue, dsn: str, conn: psycopg.Connection[Any]
) -> None:
    queue.create_queue("drain")
    for start in range(0, JOBS, 5000):
        queue.insert("drain", [{"data": n} for n in range(start, start + 5000)])
    fetched: list[list[str]] = [[] for _ in range(WORKERS)]
    completed: list[list[str]] = [[] for _ in range(WORKERS)]
    barrier = threading.Barrier(WORKERS)

    def worker(index: int) -> None:
        with Queue(dsn) as q:
            barrier.wait()
            while jobs := q.fetch("drain", 100):
                fetched[index] += [j.id for j in jobs]
                completed[index] += q.complete("drain", jobs)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    all_fetched = [i for ids in fetched for i in ids]
    all_completed = [i for ids in completed for i in ids]
    assert len(all_fetched) == JOBS and len(set(all_fetched)) == JOBS
    assert Counter(all_completed) == Counter(all_fetched)
    assert all(ids for ids in fetched), "every worker got a share"
    states = conn.execute("SELECT state::text, count(*) FROM jobqueue.job GROUP BY 1").fetchall()
    assert states == [("completed", JOBS)]


@pytest.mark.parametrize("policy", ["singleton", "stately", "key_strict_fifo"])
def test_eight_fetchers_on_shared_keys_never_raise_nor_break_the_policy(
    queue: Queue, dsn: str, conn: psycopg.Connection[Any], policy: str
) -> None:
    """Fetchers racing for the same keys skip each other's keys instead of waiting on them.

    A producer sends jobs for a dozen keys while eight fetchers (batch sizes 1 to 100) drain:
    under stately a key admits one waiting job at a time, so sends and fetches interleave.
    """
    queue.create_queue("keyed", policy=policy, retry_limit=5, retry_delay=0)
    keys, rounds = 12, 40
    accepted: list[str] = []
    # Several jobs of every key wait from the start: under singleton any number; under stately one
    # in retry (sent, fetched and failed) and one created.
    if policy in ("singleton", "key_strict_fifo"):
        accepted += queue.insert("keyed", [{"data": {}, "singleton_key": f"key-{k % keys}"} for k in range(keys * 25)])
    else:
        first = queue.insert("keyed", [{"data": {}, "singleton_key": f"key-{k}"} for k in range(keys)])
        queue.fail("keyed", queue.fetch("keyed", keys), "again")
        accepted += first + queue.insert("keyed", [{"data": {}, "singleton_key": f"key-{k}"} for k in range(keys)])
    completed: list[str] = []
    errors: list[BaseException] = []
    overlap: list[int] = []
    barrier = threading.Barrier(10)
    producing = threading.Event()
    producing.set()
    done = threading.Event()
    lock = threading.Lock()

    def producer() -> None:
        with Queue(dsn) as q:
            barrier.wait()
            try:
                for n in range(rounds):
                    for k in range(keys):
                        sent = q.send("keyed", {"k": k, "n": n}, singleton_key=f"key-{k}")
                        if sent is not None:
                            accepted.append(sent)
            finally:
                producing.clear()

    def fetcher(index: int) -> None:
        size = [1, 5, 10, 50, 100, 3, 20, 7][index]
        with Queue(dsn) as q:
            barrier.wait()
            deadline = time.monotonic() + 60  # a failure (a key left active by a crash) must not hang the test
            try:
                while time.monotonic() < deadline:
                    jobs = q.fetch("keyed", size)
                    if not jobs:
                        if not producing.is_set() and q.queue_size("keyed") == 0:
                            break
                        continue  # every waiting key is active elsewhere for now
                    assert len({j.singleton_key for j in jobs}) == len(jobs)  # one per key per fetch
                    try:
                        ids = q.complete("keyed", jobs)
                    except Exception as exc:
                        raise RuntimeError(f"complete: {exc}") from exc
                    with lock:
                        completed.extend(ids)
            except BaseException as exc:
                errors.append(exc)

    def watch() -> None:
        with psycopg.connect(dsn, autocommit=True) as watcher:
            barrier.wait()
            while not done.is_set():
                row = watcher.execute(
                    "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM jobqueue.job "
                    "WHERE name = 'keyed' AND state = 'active' GROUP BY singleton_key) per_key"
                ).fetchone()
                overlap.append(int(row[0]) if row else 0)

    deadlocks_before = deadlocks(conn)
    fetchers = [threading.Thread(target=fetcher, args=(i,)) for i in range(8)]
    others = [threading.Thread(target=producer), threading.Thread(target=watch)]
    for thread in [*fetchers, *others]:
        thread.start()
    for thread in fetchers:
        thread.join()
    done.set()
    for thread in others:
        thread.join()
    assert errors == []
    assert len(accepted) >= keys * 2
    assert sorted(completed) == sorted(accepted)  # each accepted job completed exactly once
    assert max(overlap) <= 1  # never two active jobs of one key
    if policy == "key_strict_fifo":  # and each key's jobs ran in the order they were sent
        out_of_order = conn.execute(
            "SELECT count(*) FROM (SELECT started_on, lag(started_on) OVER (PARTITION BY singleton_key"
            " ORDER BY created_on, id) AS before FROM jobqueue.job WHERE name = 'keyed') s"
            " WHERE started_on < before"
        ).fetchone()
        assert out_of_order == (0,)
    assert deadlocks(conn, after_backends_exit=True) == deadlocks_before  # none broken by a retry either


def deadlocks(conn: psycopg.Connection[Any], *, after_backends_exit: bool = False) -> int:
    """Deadlocks Postgres detected in this database, as its statistics count them.

    A backend reports its counts when it exits: wait (with a deadline) until
    this connection is the database's only client before reading.
    """
    deadline = time.monotonic() + 10
    while after_backends_exit and time.monotonic() < deadline:
        others = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
        if others and others[0] == 0:
            break
    conn.execute("SELECT pg_stat_clear_snapshot()")
    row = conn.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()").fetchone()
    return int(row[0]) if row else 0
