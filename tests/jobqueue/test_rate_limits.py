"""Rate-limited queues: never more than `limit` jobs started in any `period` seconds."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from jobqueue import InvalidOptionError, Job, Queue
from jobqueue.sqlfiles import queries_for

T0 = datetime(2030, 1, 1, tzinfo=UTC)
Q = queries_for("jobqueue")


def _starts(conn: psycopg.Connection[Any], name: str) -> int:
    return int(conn.execute("SELECT count(*) FROM jobqueue.job_start WHERE name = %s", (name,)).fetchone()[0])  # type: ignore[index]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"limit": 5}, 'rate_limit must be {"limit": n, "period": seconds}'),
        ({"limit": 0, "period": 1}, "rate_limit limit must be between 1 and 1000000, got 0"),
        ({"limit": 5, "period": 0}, "rate_limit period must be between 1 and 86400, got 0"),
        ({"limit": 5, "period": 2 * 86400}, "rate_limit period must be between"),
        ({"limit": "5", "period": 1}, "rate_limit limit must be an integer"),
        (14, 'rate_limit must be {"limit": n, "period": seconds}'),
    ],
)
def test_a_bad_rate_limit_is_refused_with_what_is_wrong(queue: Queue, value: Any, message: str) -> None:
    with pytest.raises(InvalidOptionError, match=message.replace("(", r"\(")):
        queue.create_queue("q", rate_limit=value)
    assert queue.get_queue("q") is None


def test_a_fetch_claims_no_more_than_the_window_leaves(queue: Queue) -> None:
    queue.create_queue("email", rate_limit={"limit": 5, "period": 60})
    info = queue.get_queue("email")
    assert info is not None and info.rate_limit == {"limit": 5, "period": 60}
    queue.insert("email", [{"data": n} for n in range(20)])
    assert len(queue.fetch("email", 3, now=T0)) == 3
    assert len(queue.fetch("email", 10, now=T0 + timedelta(seconds=10))) == 2  # what the window leaves
    assert queue.fetch("email", 10, now=T0 + timedelta(seconds=30)) == []
    window = queue.rate_window("email", now=T0 + timedelta(seconds=30))
    assert window is not None and (window.started, window.room) == (5, 0)
    assert window.frees_in == pytest.approx(30)  # the first 3 leave the window at T0 + 60 s
    assert queue.rate_wait("email", now=T0 + timedelta(seconds=30)) == pytest.approx(30)
    # At T0 + 60 s the first three have left (the window is the last 60 s, its start excluded).
    assert len(queue.fetch("email", 10, now=T0 + timedelta(seconds=60))) == 3
    assert queue.fetch("email", 10, now=T0 + timedelta(seconds=69)) == []
    assert len(queue.fetch("email", 10, now=T0 + timedelta(seconds=70))) == 2


def test_a_start_counts_though_its_job_is_retried_or_deleted(queue: Queue) -> None:
    """The window is kept apart from the jobs: a retry overwrites started_on, a delete takes it along."""
    queue.create_queue("email", rate_limit={"limit": 2, "period": 60}, retry_limit=3)
    queue.insert("email", [{"data": n} for n in range(4)])
    first, second = queue.fetch("email", 2, now=T0)
    queue.fail("email", [first], "boom", now=T0)  # back to retry at once (no delay)
    queue.delete_job("email", [second])
    assert queue.fetch("email", 5, now=T0 + timedelta(seconds=1)) == []
    assert len(queue.fetch("email", 5, now=T0 + timedelta(seconds=61))) == 2


def test_rate_wait_is_none_unless_a_job_waits_and_zero_while_the_window_has_room(queue: Queue) -> None:
    queue.create_queue("plain")
    queue.send("plain", {})
    assert queue.rate_wait("plain") is None and queue.rate_window("plain") is None
    queue.create_queue("email", rate_limit={"limit": 1, "period": 60})
    queue.send("email", {})
    assert len(queue.fetch("email", 5, now=T0)) == 1
    assert queue.rate_wait("email", now=T0 + timedelta(seconds=1)) is None  # full, but nothing waits
    queue.send("email", {}, start_after=T0 + timedelta(seconds=30))
    assert queue.rate_wait("email", now=T0 + timedelta(seconds=1)) is None  # the job is not ready yet
    assert queue.rate_wait("email", now=T0 + timedelta(seconds=40)) == pytest.approx(20)
    # Once the start has left the window, a ready job can start now: 0 (a worker fetches again).
    assert queue.rate_wait("email", now=T0 + timedelta(seconds=61)) == 0


def test_a_limit_set_or_removed_by_update_queue_applies_to_this_client_at_once(queue: Queue) -> None:
    queue.create_queue("q")
    queue.insert("q", [{"data": n} for n in range(10)])
    assert len(queue.fetch("q", 2, now=T0)) == 2  # the client now knows q as unlimited
    queue.update_queue("q", rate_limit={"limit": 3, "period": 60})
    assert len(queue.fetch("q", 5, now=T0)) == 3
    assert queue.fetch("q", 5, now=T0) == []
    queue.update_queue("q", rate_limit=None)
    assert len(queue.fetch("q", 5, now=T0)) == 5


def test_keyed_and_grouped_fetches_keep_to_the_limit(queue: Queue) -> None:
    queue.create_queue("single", policy="singleton", rate_limit={"limit": 3, "period": 60})
    queue.insert("single", [{"data": n, "singleton_key": str(n)} for n in range(10)])
    assert len(queue.fetch("single", 10, now=T0)) == 3
    queue.create_queue("hosts", rate_limit={"limit": 4, "period": 60})
    queue.insert("hosts", [{"data": n, "group": {"id": str(n % 2)}} for n in range(10)])
    assert len(queue.fetch("hosts", 10, group_concurrency=5, now=T0)) == 4


def test_maintenance_forgets_starts_that_left_their_window(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("email", rate_limit={"limit": 10, "period": 60})
    queue.insert("email", [{"data": n} for n in range(4)])
    queue.fetch("email", 2, now=T0)
    queue.fetch("email", 2, now=T0 + timedelta(seconds=30))
    assert _starts(conn, "email") == 2
    queue.purge(now=T0 + timedelta(seconds=70))
    assert _starts(conn, "email") == 1  # the second is still in its window
    queue.purge(now=T0 + timedelta(seconds=91))
    assert _starts(conn, "email") == 0


def _fetch_concurrently(dsn: str, name: str, batch: list[dict[str, Any]], seconds: float) -> None:
    """8 fetchers with batches of 1 to 100 (completing what they fetch, waiting for the rate limit
    when they find nothing) and a producer inserting `batch` every 50 ms, for `seconds`."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def produce() -> None:
        with Queue(dsn) as producer:
            while not stop.is_set():
                producer.insert(name, batch)
                stop.wait(0.05)

    def fetch(seed: int) -> None:
        rng = random.Random(seed)
        try:
            with Queue(dsn) as fetcher:
                while not stop.is_set():
                    jobs = fetcher.fetch(name, rng.randint(1, 100))
                    if jobs:
                        fetcher.complete(name, jobs)
                    else:
                        stop.wait(min(fetcher.rate_wait(name) or 0.01, 0.2))
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=produce)] + [threading.Thread(target=fetch, args=(n,)) for n in range(8)]
    deadline = time.monotonic() + seconds
    for thread in threads:
        thread.start()
    while time.monotonic() < deadline and not errors:
        stop.wait(0.05)
    stop.set()
    for thread in threads:
        thread.join()
    assert not errors, errors


def _busiest_window(starts: list[float], period: float) -> int:
    """The most starts in any interval of `period` seconds (each start opens one)."""
    starts = sorted(starts)
    return max((sum(1 for t in starts[i:] if t < first + period) for i, first in enumerate(starts)), default=0)


def test_concurrent_fetchers_never_exceed_the_limit_in_any_window(dsn: str, conn: psycopg.Connection[Any]) -> None:
    """8 fetchers with batches of 1 to 100 and a producer, for three periods: every interval of
    `period` seconds holds at most `limit` starts, and while work waits the limit is used."""
    limit, period, periods = 20, 1, 3
    with Queue(dsn) as setup:
        setup.create_queue("email", rate_limit={"limit": limit, "period": period})
        setup.insert("email", [{"data": n} for n in range(100)])
    _fetch_concurrently(dsn, "email", [{"data": 0}] * 20, periods * period + 0.5)
    starts = [
        row[0].timestamp()
        for row in conn.execute("SELECT started_on FROM jobqueue.any_job WHERE started_on IS NOT NULL")
    ]
    assert _busiest_window(starts, period) <= limit
    # Work waited throughout: each period's whole limit was used (the first start opens the first).
    assert len(starts) >= 0.9 * limit * periods, len(starts)


def test_a_fetch_starts_no_more_of_a_group_than_its_window_leaves(queue: Queue) -> None:
    queue.create_queue("github", group_rate_limit={"limit": 2, "period": 60})
    info = queue.get_queue("github")
    assert info is not None and info.group_rate_limit == {"limit": 2, "period": 60}
    queue.insert("github", [{"data": n, "group": {"id": "token-a"}} for n in range(5)])
    queue.insert("github", [{"data": n, "group": {"id": "token-b"}} for n in range(5)])
    queue.insert("github", [{"data": n} for n in range(3)])  # no group: no group's limit
    first = queue.fetch("github", 100, now=T0)
    assert sorted(str(job.data) for job in first).count("0") == 3 and len(first) == 7
    assert queue.fetch("github", 100, now=T0 + timedelta(seconds=30)) == []
    # A completed or failed job's start still counts, until it leaves the window.
    queue.complete("github", first)
    assert queue.fetch("github", 100, now=T0 + timedelta(seconds=59)) == []
    assert len(queue.fetch("github", 100, now=T0 + timedelta(seconds=60))) == 4


def test_a_group_with_a_full_window_does_not_hold_up_the_others(queue: Queue) -> None:
    """The fetch passes over a full group's jobs, however many wait ahead of the others'."""
    queue.create_queue("github", group_rate_limit={"limit": 1, "period": 3600})
    queue.insert("github", [{"data": "a", "group": {"id": "a"}} for _ in range(200)])
    queue.insert("github", [{"data": "b", "group": {"id": "b"}} for _ in range(3)])
    assert [job.data for job in queue.fetch("github", 1, now=T0)] == ["a"]
    assert [job.data for job in queue.fetch("github", 1, now=T0)] == ["b"]
    assert queue.fetch("github", 10, now=T0) == []


def test_group_and_queue_limits_and_group_concurrency_all_hold_together(queue: Queue) -> None:
    queue.create_queue("q", rate_limit={"limit": 5, "period": 60}, group_rate_limit={"limit": 2, "period": 60})
    queue.insert("q", [{"data": g, "group": {"id": g}} for g in "abcd" for _ in range(4)])
    started: list[Job] = []
    for _ in range(5):  # a fetch may take fewer than the room: one group's jobs can fill its candidates
        started += queue.fetch("q", 100, now=T0)
    assert len(started) == 5  # the queue's limit, under the groups' 8
    assert max(Counter(job.data for job in started).values()) == 2
    window = queue.rate_window("q", now=T0)
    assert window is not None and window.started == 5
    queue.update_queue("q", rate_limit=None)
    # Under group_concurrency 1 as well: a job of each group with room in its window and no job
    # active (c's stay active).
    counts = Counter(job.data for job in started)
    queue.complete("q", [job for job in started if job.data != "c"])
    more = queue.fetch("q", 100, group_concurrency=1, now=T0 + timedelta(seconds=1))
    assert sorted(job.data for job in more) == [g for g in "abcd" if counts[g] < 2 and g != "c"]


def test_a_keyed_queue_keeps_to_its_group_rate_limit(queue: Queue) -> None:
    queue.create_queue("pods", policy="key_strict_fifo", group_rate_limit={"limit": 2, "period": 60})
    queue.insert("pods", [{"data": n, "singleton_key": f"pod-{n}", "group": {"id": "host-1"}} for n in range(5)])
    assert len(queue.fetch("pods", 10, now=T0)) == 2
    assert queue.fetch("pods", 10, now=T0 + timedelta(seconds=1)) == []


def test_concurrent_fetchers_never_exceed_a_groups_limit_in_any_window(dsn: str, conn: psycopg.Connection[Any]) -> None:
    limit, period, periods, groups = 5, 1, 3, "abcd"
    with Queue(dsn) as setup:
        setup.create_queue("github", group_rate_limit={"limit": limit, "period": period})
        setup.insert("github", [{"data": 0, "group": {"id": g}} for g in groups for _ in range(20)])
    _fetch_concurrently(dsn, "github", [{"data": 0, "group": {"id": g}} for g in groups for _ in range(3)], periods)
    rows = conn.execute("SELECT group_id, started_on FROM jobqueue.any_job WHERE started_on IS NOT NULL").fetchall()
    for group in groups:
        starts = [started.timestamp() for group_id, started in rows if group_id == group]
        assert _busiest_window(starts, period) <= limit, group
        assert len(starts) >= 0.9 * limit * periods, (group, len(starts))


def test_a_fetch_does_not_wait_long_for_a_turn_held_by_a_stalled_fetcher(
    queue: Queue, conn: psycopg.Connection[Any]
) -> None:
    """A turn lasts milliseconds: one held far longer (its holder's network stalled mid-transaction)
    is given up after RATE_TURN_TIMEOUT, nothing claimed, instead of holding up every fetcher."""
    queue.create_queue("email", rate_limit={"limit": 5, "period": 60})
    queue.send("email", {})
    with conn.transaction():
        conn.execute(Q["lock_rate_window"], {"name": "email", "timeout": "0"})  # the stalled holder
        assert queue.fetch("email", 5) == []
    assert len(queue.fetch("email", 5)) == 1  # the turn is free again


def test_a_fetch_inside_the_callers_transaction_leaves_its_lock_timeout_as_it_was(
    dsn: str, conn: psycopg.Connection[Any]
) -> None:
    with Queue(conn) as queue:
        queue.create_queue("email", rate_limit={"limit": 5, "period": 60})
        queue.send("email", {})
        with conn.transaction():
            conn.execute("SET LOCAL lock_timeout = '7s'")
            assert len(queue.fetch("email", 5, conn=conn)) == 1
            assert conn.execute("SHOW lock_timeout").fetchone()[0] == "7s"  # type: ignore[index]
