"""The hot statements use the plans they were designed for, whatever the statistics say.

A queue table's statistics are often wrong (a burst of jobs arrives between
two ANALYZE runs), so these plans must not depend on them: fetch walks the
fetch index, complete and fail look jobs up by primary key.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from jobqueue import Queue
from jobqueue.sqlfiles import queries_for
from tests.helpers import function_statement, held_snapshot

Q = queries_for("jobqueue")


def explain(conn: psycopg.Connection[Any], query: str, params: dict[str, Any]) -> str:
    return "\n".join(row[0] for row in conn.execute("EXPLAIN " + query, params))


@pytest.fixture
def backlog(queue: Queue, conn: psycopg.Connection[Any]) -> Queue:
    queue.create_queue("q")
    queue.create_queue("single", policy="singleton")
    for _ in range(4):
        queue.insert("q", [{"data": n} for n in range(5000)])
    queue.insert("single", [{"data": n, "singleton_key": str(n % 50)} for n in range(2000)])
    queue.create_queue("fifo", policy="key_strict_fifo")
    queue.insert("fifo", [{"data": n, "singleton_key": str(n % 50)} for n in range(2000)])
    conn.execute("ANALYZE jobqueue.job")
    return queue


def test_fetch_uses_the_fetch_index(backlog: Queue, conn: psycopg.Connection[Any]) -> None:
    # The fetch runs in the function fetch_jobs, whose plan is the generic one, made once per session.
    with function_statement(conn, "fetch_jobs") as execute:
        plan = explain(conn, f"{execute} ('q', 100, NULL, NULL)", {})
    assert "Index Scan using job_common_fetch" in plan
    assert "Index Scan using job_common_deferred" in plan  # the jobs behind the floor: delayed, retried
    assert "Index Scan using fetch_floor_newest" in plan
    assert "Tid Scan on job_common" in plan  # the claimed rows by their ctid, whatever the statistics say
    assert "Seq Scan on job_" not in plan and "Seq Scan on fetch_floor" not in plan


def test_fetch_one_per_key_uses_indexes(backlog: Queue, conn: psycopg.Connection[Any]) -> None:
    with function_statement(conn, "lock_keys") as execute:
        plan = explain(conn, f"{execute} ('single', 100, NULL)", {})
    assert "Index Scan using job_common_fetch" in plan
    assert "job_common_policy" in plan  # the active-key check is an index lookup
    assert "Seq Scan on job_" not in plan


def test_fetch_of_a_strict_fifo_queue_walks_its_index(backlog: Queue, conn: psycopg.Connection[Any]) -> None:
    params = {"name": "fifo", "limit": 100, "deadline": None, "now": None}
    plan = explain(conn, Q["lock_fifo_heads"], params)
    assert "job_common_fifo" in plan  # the heads, key by key, in order
    assert "job_common_strict_fifo" in plan  # the blocked-key check is an index lookup
    assert "Seq Scan" not in plan


def test_complete_and_fail_look_up_by_primary_key_even_when_stats_say_nothing_is_active(
    backlog: Queue, conn: psycopg.Connection[Any]
) -> None:
    jobs = backlog.fetch("q", 500)  # statistics were taken before any job was active
    ids = [j.id for j in jobs]
    complete = explain(conn, Q["complete"], {"name": "q", "ids": ids, "started": None, "output": None, "now": None})
    assert "Index Scan using job_common_pkey" in complete
    fail = explain(
        conn, Q["fail"], {"name": "q", "ids": ids, "started": None, "errors": None, "retryable": None, "now": None}
    )
    assert "job_common_expire" not in fail
    assert "Seq Scan on job_" not in fail


def test_complete_each_looks_up_by_primary_key(backlog: Queue, conn: psycopg.Connection[Any]) -> None:
    ids = [j.id for j in backlog.fetch("q", 500)]
    params = {"name": "q", "ids": ids, "started": None, "outputs": ["1"] * len(ids), "now": None}
    plan = explain(conn, Q["complete_each"], params)
    assert "Index Scan using job_common_pkey" in plan
    assert "Seq Scan on job_" not in plan


def test_completing_and_failing_find_dependent_jobs_by_primary_key_under_a_held_snapshot(
    queue: Queue, conn: psycopg.Connection[Any], dsn: str
) -> None:
    """Completing a batch resolves the jobs that depend on it, failing one cancels them: by primary
    key, whatever the statistics say. A partial index whose predicate the statement implies looks
    cheap to the planner when few jobs are queued, but under a held snapshot it keeps an entry for
    every job claimed since: walking it made every complete grow with the finished jobs."""
    queue.create_queue("q")

    def finish(count: int) -> None:
        for _ in range(count // 50):
            queue.insert("q", [{"data": n} for n in range(50)])
            queue.complete("q", queue.fetch("q", 50))

    finish(10_000)
    conn.execute("VACUUM ANALYZE jobqueue.job")
    with held_snapshot(dsn):
        finish(20_000)
        conn.execute("ANALYZE jobqueue.job")  # as autovacuum does: few queued jobs, by the statistics
        queue.insert("q", [{"data": n} for n in range(50)])
        jobs = queue.fetch("q", 50)
        started = sorted({j.started_on for j in jobs})
        common = {"name": "q", "ids": [j.id for j in jobs], "started": started, "now": None}
        for name, params in (("complete", {"output": None}), ("fail", {"errors": None, "retryable": None})):
            plan = explain(conn, Q[name], {**common, **params})
            # The queue's walking indexes never (a key check may use job_policy: one probe per key).
            assert "job_common_fetch" not in plan and "job_common_deferred" not in plan, (name, plan)
            assert "Seq Scan on job_" not in plan, (name, plan)


def test_a_partitioned_queues_fetch_and_complete_touch_its_table_only(
    queue: Queue, conn: psycopg.Connection[Any]
) -> None:
    """The fetch's plan is generic (made once per session for every queue): the queue's partition is
    chosen when it starts (runtime pruning). Complete names the queue: its plan has the one table."""
    queue.create_queue("big", partition=True)
    queue.create_queue("small")
    queue.insert("big", [{"data": n} for n in range(2000)])
    queue.insert("small", [{"data": n} for n in range(2000)])
    conn.execute("ANALYZE jobqueue.job")
    part = conn.execute("SELECT jobqueue.job_partition('big')").fetchone()[0]  # type: ignore[index]
    with function_statement(conn, "fetch_jobs") as execute:
        plan = explain(conn, f"{execute} ('big', 100, NULL, NULL)", {})
    assert f"Index Scan using {part}_fetch" in plan and f"Tid Scan on {part}" in plan
    # job_common is among the UPDATE's possible tables, but no scan of it or its indexes runs.
    assert "Scan on job_common" not in plan and "using job_common" not in plan
    assert plan.count("Subplans Removed: 1") == 5  # the four walks and the claim
    ids = [j.id for j in queue.fetch("big", 100)]
    complete = explain(conn, Q["complete"], {"name": "big", "ids": ids, "started": None, "output": None, "now": None})
    # The jobs completed, by the partition's key (the jobs waiting on them may be in any queue).
    assert f"Index Scan using {part}_pkey on {part} job" in complete
    assert "job_common job" not in complete


def test_fetch_plans_do_not_depend_on_statistics_taken_while_the_table_was_empty(
    queue: Queue, conn: psycopg.Connection[Any]
) -> None:
    """A session's fetch plan is made once, from the statistics of that moment: analyzed while empty,
    the table looked cheaper to scan whole than through an index, and every fetch then scanned it."""
    queue.create_queue("q")
    queue.create_queue("single", policy="singleton")
    conn.execute("VACUUM ANALYZE jobqueue.job")  # statistics say: no job at all
    queue.insert("q", [{"data": n} for n in range(5000)])
    queue.insert("single", [{"data": n, "singleton_key": str(n % 50)} for n in range(1000)])
    for function, call in (("fetch_jobs", "('q', 100, NULL, NULL)"), ("lock_keys", "('single', 100, NULL)")):
        with function_statement(conn, function) as execute:
            plan = explain(conn, f"{execute} {call}", {})
        assert "Index Scan using job_common_fetch" in plan, plan
        assert "Seq Scan" not in plan and "Bitmap" not in plan, plan
    with function_statement(conn, "fetch_jobs") as execute:
        assert "Tid Scan on job_common" in explain(conn, f"{execute} ('q', 100, NULL, NULL)", {})
