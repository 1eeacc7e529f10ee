"""The fetch floor: a fetch walks a queue from where the claimed jobs end, and finds every job anyway.

Under a snapshot held open by another session, the index entries of claimed and finished jobs
stay; a fetch that walked them all would slow down with every job finished since. The floor
keeps the walk short (measured in buffers, which a fast machine cannot hide), and whatever
queues a job behind it (a retry, a delay, a release, a new priority, a rollback, a transaction
still open when the floor moved on) must not hide that job.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from jobqueue import Queue
from jobqueue.sqlfiles import queries_for
from tests.helpers import function_statement, make_ready
from tests.helpers import held_snapshot as holding

Q = queries_for("jobqueue")

NIL = "00000000-0000-0000-0000-000000000000"


def floor(conn: psycopg.Connection[Any], name: str) -> tuple[int, Any, str] | None:
    row = conn.execute(
        "SELECT priority, created_on, id::text FROM jobqueue.fetch_floor WHERE name = %s ORDER BY at DESC LIMIT 1",
        (name,),
    ).fetchone()
    return None if row is None else (row[0], row[1], row[2])


def put_floor(conn: psycopg.Connection[Any], name: str, priority: int = 0) -> None:
    """A floor past every job there is now, as fetches write once the jobs are claimed."""
    conn.execute(
        "INSERT INTO jobqueue.fetch_floor (name, priority, created_on, id) VALUES (%s, %s, clock_timestamp(), %s)",
        (name, priority, NIL),
    )


def floor_passes(
    queue: Queue, conn: psycopg.Connection[Any], name: str, created_on: Any, deadline_s: float = 10
) -> None:
    """Fetch (a queue holding nothing ready) until a fetch has written a floor past `created_on`.

    Floors are written at most every quarter second and trail real time by as much: this polls
    with a deadline, it does not sleep for a fixed time.
    """
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        assert queue.fetch(name, 10) == []
        current = floor(conn, name)
        if current is not None and current[1] > created_on:
            return
        time.sleep(0.02)
    raise AssertionError(f"no floor past {created_on} within {deadline_s} s: {floor(conn, name)}")


def test_a_fetch_writes_a_floor_no_further_than_the_first_job_still_queued(
    queue: Queue, conn: psycopg.Connection[Any]
) -> None:
    queue.create_queue("q")
    queue.insert("q", [{"data": n} for n in range(100)])
    first = queue.fetch("q", 10)
    assert [j.data for j in first] == list(range(10))
    written = floor(conn, "q")
    assert written is not None and written[0] == 0
    # No further than the first job this fetch's snapshot saw queued (the ones it claimed included).
    (oldest,) = conn.execute("SELECT min(created_on) FROM jobqueue.job WHERE name = 'q'").fetchone()  # type: ignore[misc]
    assert written[1] <= oldest
    assert [j.data for j in queue.fetch("q", 10)] == list(range(10, 20))


def test_a_fetch_given_now_writes_no_floor(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("q")
    queue.send("q", 1)
    assert queue.fetch("q", now=time_now(conn))
    assert floor(conn, "q") is None


def time_now(conn: psycopg.Connection[Any]) -> Any:
    return conn.execute("SELECT now() + interval '1 second'").fetchone()[0]  # type: ignore[index]


def test_jobs_queued_behind_the_floor_are_still_fetched(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    """A retry, a release, a snooze, a requeue and a delayed job all sit at their old place."""
    queue.create_queue("q", retry_limit=3, retry_delay=0)
    ids = [str(queue.send("q", n)) for n in range(5)]
    delayed = str(queue.send("q", "later", start_after=3600))
    jobs = queue.fetch("q", 5)
    assert sorted(j.id for j in jobs) == sorted(ids)
    queue.fail("q", jobs[0], "boom")  # to retry
    queue.release("q", [jobs[1]])
    queue.snooze("q", [jobs[2]], 1)
    queue.complete("q", jobs[3:4])
    queue.fail("q", jobs[4], "no", retryable=False)
    queue.retry("q", [jobs[4].id])  # requeued: failed -> created, its created_on kept
    put_floor(conn, "q")
    make_ready(conn, jobs[0].id, jobs[2].id, delayed)
    again = {j.id for j in queue.fetch("q", 10)}
    assert again == {jobs[0].id, jobs[1].id, jobs[2].id, jobs[4].id, delayed}


def test_a_higher_and_a_lower_priority_job_sent_after_the_floor_moved(
    queue: Queue, conn: psycopg.Connection[Any]
) -> None:
    queue.create_queue("q")
    queue.send("q", "old")
    put_floor(conn, "q", priority=0)
    queue.send("q", "low", priority=-5)
    queue.send("q", "high", priority=5)
    queue.send("q", "plain")
    assert [j.data for j in queue.fetch("q", 10)] == ["high", "plain", "low"]  # "old" lies before the floor


def test_a_job_given_a_new_priority_or_start_takes_the_floor_back(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("q")
    moved = str(queue.send("q", "moved", priority=3))
    delayed = str(queue.send("q", "delayed", start_after=3600))
    put_floor(conn, "q", priority=0)
    assert queue.update_job("q", moved, priority=0)
    assert queue.update_job("q", delayed, start_after=time_now(conn) - timedelta(hours=2))
    assert {j.data for j in queue.fetch("q", 10)} == {"moved", "delayed"}


def test_a_job_sent_in_a_transaction_open_while_the_floor_moves_is_fetched(
    queue: Queue, dsn: str, conn: psycopg.Connection[Any]
) -> None:
    """A writer's open transaction holds the floor at its start: it may still send a job."""
    queue.create_queue("q")
    with psycopg.connect(dsn) as writer:
        writer.execute("SELECT txid_current()")  # it has written (an xid), as a handler's transaction has
        sent = Queue(writer).send("q", "in a long transaction", conn=writer)
        queue.send("q", "first")
        assert [j.data for j in queue.fetch("q", 10)] == ["first"]
        (after,) = conn.execute("SELECT clock_timestamp()").fetchone()  # type: ignore[misc]
        with pytest.raises(AssertionError, match="no floor past"):
            floor_passes(queue, conn, "q", after, deadline_s=1.5)  # held at the writer's start
        writer.commit()
    assert [j.id for j in queue.fetch("q", 10)] == [sent]


def test_a_claim_that_rolls_back_is_fetched_again(queue: Queue, dsn: str, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("q")
    queue.insert("q", [{"data": n} for n in range(3)])
    with psycopg.connect(dsn) as claimer:
        held = Queue(claimer).fetch("q", 1, conn=claimer)  # locked, not committed
        assert [j.data for j in held] == [0]
        assert [j.data for j in queue.fetch("q", 10)] == [1, 2]
        (after,) = conn.execute("SELECT clock_timestamp()").fetchone()  # type: ignore[misc]
        claimer.rollback()
    queue.send("q", 3)
    assert [j.data for j in queue.fetch("q", 10)] == [0, 3]
    # And a floor written meanwhile stopped at the job that was only locked.
    current = floor(conn, "q")
    assert current is None or current[1] <= after


def test_a_queue_made_again_under_its_name_starts_without_a_floor(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("q")
    put_floor(conn, "q")
    queue.delete_queue("q")
    assert floor(conn, "q") is None


def test_maintenance_puts_a_floor_back_before_a_stray_job(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("q")
    stray = str(queue.send("q", "stray"))
    put_floor(conn, "q")  # as if a floor had passed it (a transaction that outlived the margins)
    assert queue.fetch("q", 10) == []
    assert queue.check_fetch_floors() == 1
    assert [j.id for j in queue.fetch("q", 10)] == [stray]
    assert queue.check_fetch_floors() == 0


@pytest.fixture
def held_snapshot(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """Another session in REPEATABLE READ, its snapshot taken: vacuum cannot remove what is finished after it."""
    with holding(dsn) as holder:
        yield holder


# A fetch's first statement per policy, a function of schema.sql: its name, the CTE where it walks
# the queue, its arguments after the queue's name (a batch of 50, not given a time).
CHOICES: dict[str, tuple[str, str, str]] = {
    "standard": ("fetch_jobs", "CTE next", "50, NULL, NULL"),
    "singleton": ("lock_keys", "CTE candidates", "50, NULL"),
    "key_strict_fifo": ("lock_fifo_window", "CTE ready", "50, 1000, NULL"),
    "grouped": ("lock_groups", "CTE next", "50, NULL, NULL, 1000, NULL, NULL"),
}


def fetch_buffers(conn: psycopg.Connection[Any], name: str, kind: str = "standard") -> int:
    """Shared buffers one fetch touches to choose its jobs (EXPLAIN ANALYZE of the function's statement
    as it plans it, rolled back: it claims nothing, and its advisory locks go with the transaction):
    the CTE where it walks the queue, where dead entries would show; the claim's writes are the same
    whatever the snapshot."""
    function, cte, arguments = CHOICES[kind]
    # Prepared inside the transaction: psycopg deallocates every prepared statement at a rollback.
    with conn.transaction(force_rollback=True), function_statement(conn, function) as execute:
        # The arguments written out: a utility statement (EXPLAIN EXECUTE) takes no bound parameter.
        query = sql.SQL(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {execute} ({{}}, {arguments})").format(name)
        plan = conn.execute(query).fetchone()[0]  # type: ignore[index]
    (choice,) = (node for node in _nodes(plan[0]["Plan"]) if node.get("Subplan Name") == cte)
    return int(choice.get("Shared Hit Blocks", 0)) + int(choice.get("Shared Read Blocks", 0))


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def walk_buffers(conn: psycopg.Connection[Any], name: str) -> int:
    """The same for a walk from the head of the queue's index, as a fetch without a floor would do."""
    with conn.transaction(force_rollback=True):
        plan = conn.execute(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT id FROM jobqueue.job WHERE name = %s AND state < 'active'"
            " ORDER BY priority DESC, created_on, id LIMIT 50 FOR UPDATE SKIP LOCKED",
            (name,),
        ).fetchone()[0]  # type: ignore[index]
    top = plan[0]["Plan"]
    return int(top.get("Shared Hit Blocks", 0)) + int(top.get("Shared Read Blocks", 0))


def finish(queue: Queue, name: str, count: int, kind: str = "standard") -> Any:
    """Send, claim and complete `count` jobs as workers do; the created_on of the last one."""
    keyed = kind in ("singleton", "key_strict_fifo")
    limits = {"group_concurrency": 1000} if kind == "grouped" else {}
    for start in range(0, count, 1000):
        numbers = range(start, min(count, start + 1000))
        queue.insert(name, [{"data": n, **({"singleton_key": f"k{n}"} if keyed else {})} for n in numbers])
        while jobs := queue.fetch(name, 500, **limits):  # type: ignore[arg-type]
            queue.complete(name, jobs)
    return (
        queue.db.connection().execute("SELECT max(created_on) FROM jobqueue.job WHERE name = %s", (name,)).fetchone()[0]
    )  # type: ignore[index]


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(CHOICES))
def test_under_a_held_snapshot_a_fetch_walks_no_more_as_finished_jobs_pile_up(
    queue: Queue, conn: psycopg.Connection[Any], held_snapshot: psycopg.Connection[Any], kind: str
) -> None:
    policy = kind if kind in ("singleton", "key_strict_fifo") else "standard"
    queue.create_queue("q", policy=policy)
    measured: dict[int, tuple[int, int]] = {}
    done = 0
    for finished in (1_000, 20_000):
        last = finish(queue, "q", finished - done, kind)
        done = finished
        floor_passes(queue, conn, "q", last)  # the fetches have moved the floor past what they claimed
        keyed = kind in ("singleton", "key_strict_fifo")
        queue.insert("q", [{"data": n, **({"singleton_key": f"fresh{n}"} if keyed else {})} for n in range(50)])
        measured[finished] = (fetch_buffers(conn, "q", kind), walk_buffers(conn, "q"))
        finish(queue, "q", 0, kind)
        while jobs := queue.fetch("q", 500, **({"group_concurrency": 1000} if kind == "grouped" else {})):  # type: ignore[arg-type]
            queue.complete("q", jobs)
    (ours_1k, walk_1k), (ours_20k, walk_20k) = measured[1_000], measured[20_000]
    # The snapshot is held: a walk from the head visits every dead entry, twenty times as many.
    assert walk_20k > 5 * walk_1k, measured
    # The fetch does not: the same order of buffers with twenty times the finished jobs behind it.
    assert ours_20k <= 1.5 * ours_1k + 10, measured
