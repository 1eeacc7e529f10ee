"""The queue core through PgBouncer in transaction mode, with its default settings.

Through transaction pooling each transaction of a client may run on a
different server connection, so anything a client leaves in its session
(prepared statements, session locks, SET) breaks or leaks. These tests use
more clients than the pool has server connections.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from jobqueue import ConfigurationError, Queue
from tests.helpers import held_snapshot
from tests.pooling.conftest import POOL_SIZE

CLIENTS = 6
assert CLIENTS > POOL_SIZE


def server_leftovers(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    """Advisory locks held on the server, and maintenance leases not given up (the retention
    sweep's lease is kept on purpose: it spaces the sweeps)."""
    locks = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()
    leases = conn.execute("SELECT count(*) FROM jobqueue.lease WHERE name <> 'retention sweep'").fetchone()
    return (locks[0] if locks else -1), (leases[0] if leases else -1)


@pytest.mark.parametrize("policy", ["standard", "singleton"])
def test_clients_sharing_a_pool_complete_every_job_once(
    pooled_dsn: str, conn: psycopg.Connection[Any], policy: str
) -> None:
    with Queue(pooled_dsn) as setup:
        setup.create_queue("pooled", policy=policy)
        sent = setup.insert("pooled", [{"data": n, "singleton_key": f"k{n % 20}"} for n in range(3000)])
    completed: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(CLIENTS)

    def client(size: int) -> None:
        try:
            with Queue(pooled_dsn) as q:
                barrier.wait()
                idle = 0
                while idle < 50:  # keyed queues: every waiting key may be active elsewhere for a moment
                    jobs = q.fetch("pooled", size)
                    if not jobs:
                        idle += 1
                        continue
                    idle = 0
                    done = q.complete("pooled", jobs)
                    with lock:
                        completed.extend(done)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(size,)) for size in (1, 5, 10, 25, 50, 100)[:CLIENTS]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert Counter(completed) == Counter(sent)  # each job completed exactly once
    assert server_leftovers(conn) == (0, 0)


def test_maintenance_runs_every_time_while_other_clients_work(pooled_dsn: str, conn: psycopg.Connection[Any]) -> None:
    """One maintainer calling maintain() again and again, other clients busy on the same pool."""
    with Queue(pooled_dsn) as setup:
        setup.create_queue("busy")
        setup.create_queue("stale", retry_limit=0)
        setup.insert("stale", [{"data": n} for n in range(100)])
        assert len(setup.fetch("stale", 100)) == 100
    conn.execute("UPDATE jobqueue.job SET expire_at = now() - interval '1 minute' WHERE state = 'active'")
    stop = threading.Event()
    errors: list[BaseException] = []

    def busy() -> None:
        try:
            with Queue(pooled_dsn) as q:
                while not stop.is_set():
                    q.send("busy", {})
                    q.complete("busy", q.fetch("busy", 1))
        except BaseException as exc:
            errors.append(exc)

    others = [threading.Thread(target=busy) for _ in range(CLIENTS - 1)]
    for thread in others:
        thread.start()
    try:
        with Queue(pooled_dsn) as maintainer:
            results = [maintainer.maintain() for _ in range(6)]
    finally:
        stop.set()
        for thread in others:
            thread.join()
    assert errors == []
    assert [r.skipped for r in results] == [False] * 6
    assert sum(r.expired_failed for r in results) == 100
    assert server_leftovers(conn) == (0, 0)


def test_maintainers_at_once_share_the_work_and_leave_nothing_behind(
    pooled_dsn: str, conn: psycopg.Connection[Any]
) -> None:
    with Queue(pooled_dsn) as setup:
        setup.create_queue("stale", retry_limit=3)
        setup.insert("stale", [{"data": n} for n in range(2000)])
        while setup.fetch("stale", 500):
            pass
    later = datetime.now(UTC) + timedelta(days=1)  # every claimed job is past its deadline then
    results: list[Any] = []
    barrier = threading.Barrier(4)

    def maintain() -> None:
        with Queue(pooled_dsn) as q:
            barrier.wait()
            results.append(q.maintain(batch_size=100, now=later))

    threads = [threading.Thread(target=maintain) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert any(not r.skipped for r in results)
    assert sum(r.expired_retried for r in results) == 2000  # each job expired once
    assert server_leftovers(conn) == (0, 0)
    with Queue(pooled_dsn) as q:
        assert not q.maintain().skipped  # and the next run is not kept out


def test_a_statement_timeout_sent_at_connect_is_refused_with_advice(pooled_dsn: str) -> None:
    with (
        Queue(pooled_dsn, statement_timeout_ms=30_000) as queue,
        pytest.raises(ConfigurationError, match=r"ALTER ROLE .* SET statement_timeout"),
    ):
        queue.create_queue("q")


def test_a_timeout_set_on_the_role_reaches_pooled_clients(pooled_dsn: str, conn: psycopg.Connection[Any]) -> None:
    """The advice above works: server connections log in with the role's settings."""
    role, database = conn.info.user, conn.info.dbname  # names from the test's own fixtures
    conn.execute(f'ALTER ROLE "{role}" IN DATABASE "{database}" SET statement_timeout = \'1234ms\'')
    try:
        with Queue(pooled_dsn) as queue:  # the pool's first server connection to this database
            assert queue.db.connection().execute("SHOW statement_timeout").fetchone() == ("1234ms",)
    finally:
        conn.execute(f'ALTER ROLE "{role}" IN DATABASE "{database}" RESET statement_timeout')


def test_the_horizon_and_the_fetch_floor_work_through_the_pool(
    pooled_dsn: str, dsn: str, conn: psycopg.Connection[Any]
) -> None:
    """Who holds the horizon is read, and floors are written and used, transaction by transaction."""
    with held_snapshot(dsn), Queue(pooled_dsn) as q:
        names = [h.details.get("application_name") for h in q.horizon().holders]
        assert "monthly-report" in names
        q.create_queue("floored")
        q.insert("floored", [{"data": n} for n in range(200)])
        taken = [job.data for _ in range(10) for job in q.fetch("floored", 20)]
        assert taken == list(range(200))  # in order, each once, from the floor each fetch read
    assert conn.execute("SELECT count(*) FROM jobqueue.fetch_floor WHERE name = 'floored'").fetchone()[0] >= 1  # type: ignore[index]
    assert server_leftovers(conn) == (0, 0)


def test_wait_for_a_job_through_the_pool(pooled_dsn: str) -> None:
    """Queue.wait polls (no LISTEN): through PgBouncer in transaction mode it sees the job finish."""
    with Queue(pooled_dsn) as waiter, Queue(pooled_dsn) as worker:
        waiter.create_queue("waited")
        job_id = waiter.send("waited", {"n": 1})
        assert job_id is not None

        def finish() -> None:
            while not (jobs := worker.fetch("waited")):
                pass
            worker.complete("waited", jobs, {"done": True})

        thread = threading.Thread(target=finish)
        thread.start()
        finished = waiter.wait("waited", job_id, timeout=30)
        thread.join()
    assert finished is not None and finished.state == "completed" and finished.output == {"done": True}
