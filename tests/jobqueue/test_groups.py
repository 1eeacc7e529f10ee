"""Group concurrency: a fetch's cap on each group's active jobs holds for every fetcher, always."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import psycopg
import pytest

from jobqueue import InvalidOptionError, Queue


def active_per_group(conn: psycopg.Connection[Any], name: str) -> dict[str, int]:
    rows = conn.execute(
        "SELECT group_id, count(*) FROM jobqueue.job WHERE name = %s AND state = 'active' GROUP BY 1", (name,)
    ).fetchall()
    return dict(rows)


def test_a_group_limit_caps_active_jobs_per_group(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("g")
    queue.insert("g", [{"data": {"n": n}, "group": {"id": "a" if n < 6 else "b"}} for n in range(8)])
    queue.send("g", {"n": 8})  # no group: not limited
    first = queue.fetch("g", 10, group_concurrency=2)
    assert len(first) == 5 and {6, 7, 8} <= {job.data["n"] for job in first}  # two of a, both of b, the ungrouped
    assert active_per_group(conn, "g") == {"a": 2, "b": 2, None: 1}
    assert queue.fetch("g", 10, group_concurrency=2) == []  # both groups at their limit
    queue.complete("g", [job for job in first if job.data["n"] < 6][:1])
    [next_one] = queue.fetch("g", 10, group_concurrency=2)
    assert next_one.data["n"] < 6  # group a had room for one more


def test_a_group_another_fetcher_is_claiming_is_passed_over(queue: Queue, dsn: str) -> None:
    """No fetcher counts a group's active jobs while another may be adding to them: it takes other groups."""
    queue.create_queue("g")
    queue.insert("g", [{"data": {"group": g}, "group": {"id": g}} for g in ("a", "b")])
    with psycopg.connect(dsn) as other:  # a fetcher in the middle of its claim: it holds group a
        # The lock lock_groups takes (its key names the quoted schema): held here until this block ends,
        # so a fetch that waited for it would never return.
        other.execute("""SELECT pg_advisory_xact_lock(hashtextextended('"jobqueue".group:g:a', 0))""")
        claimed = queue.fetch("g", 10, group_concurrency=1)
        assert [job.data["group"] for job in claimed] == ["b"]
    assert [job.data["group"] for job in queue.fetch("g", 10, group_concurrency=1)] == ["a"]


@pytest.mark.parametrize("policy", ["singleton", "stately", "key_strict_fifo"])
def test_a_group_limit_on_a_keyed_queue_holds_with_the_policy(
    queue: Queue, conn: psycopg.Connection[Any], policy: str
) -> None:
    """Pods (keys) on hosts (groups): one job per pod at a time, at most two per host."""
    queue.create_queue("keyed", policy=policy)
    sent = queue.insert(
        "keyed",
        [{"data": {"pod": p}, "singleton_key": f"pod-{p}", "group": {"id": f"host-{p % 2}"}} for p in range(6)]
        + [{"data": {"pod": 0}, "singleton_key": "pod-0", "group": {"id": "host-0"}}],  # a second job of pod 0
    )
    host_0 = 3 + (len(sent) == 7)  # stately admits one created job per key: refuses pod 0's second
    first = queue.fetch("keyed", 10, group_concurrency=2)
    assert active_per_group(conn, "keyed") == {"host-0": 2, "host-1": 2}
    assert len({job.singleton_key for job in first}) == len(first) == 4
    assert queue.fetch("keyed", 10, group_concurrency=2) == []
    queue.complete("keyed", first)
    # Jobs of one batch insert tie on created_on, so which of host-0's pods ran first varies: what is
    # left of host-0 may be two jobs of pod 0, of which the policy lets one run.
    keys_left = conn.execute(
        "SELECT count(DISTINCT singleton_key) FROM jobqueue.job WHERE name = 'keyed' AND state = 'created'"
        " AND group_id = 'host-0'"
    ).fetchone()
    assert keys_left is not None
    second = queue.fetch("keyed", 10, group_concurrency=2)
    assert active_per_group(conn, "keyed") == {"host-0": min(2, keys_left[0]), "host-1": 1}
    assert len({job.singleton_key for job in second}) == len(second) == min(2, keys_left[0]) + 1
    assert host_0 - 2 >= keys_left[0]


def test_tiers_have_their_own_limits(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("g")
    queue.insert(
        "g",
        [{"data": {}, "group": {"id": "big-host", "tier": "large"}} for _ in range(5)]
        + [{"data": {}, "group": {"id": "small-host", "tier": "small"}} for _ in range(5)]
        + [{"data": {}, "group": {"id": "plain"}} for _ in range(5)],
    )
    queue.fetch("g", 100, group_concurrency={"default": 2, "tiers": {"large": 3, "small": 1}})
    assert active_per_group(conn, "g") == {"big-host": 3, "small-host": 1, "plain": 2}


def test_send_and_fetch_options_are_checked(queue: Queue) -> None:
    queue.create_queue("g")
    for group in ({"tier": "x"}, {"id": ""}, {"id": "a", "other": 1}, "a"):
        with pytest.raises(InvalidOptionError, match="group"):
            queue.send("g", {}, group=group)  # type: ignore[typeddict-item]
    for limit in (0, {"tiers": {"a": 1}}, {"default": 1, "tiers": {"a": 0}}, True):
        with pytest.raises(InvalidOptionError, match="group_concurrency"):
            queue.fetch("g", group_concurrency=limit)  # type: ignore[arg-type]


def test_a_group_survives_archive_and_retry(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("g", retry_limit=0, archive_after=0)
    job_id = queue.send("g", {}, group={"id": "a", "tier": "t"})
    assert job_id is not None
    queue.fail("g", queue.fetch("g", group_concurrency=1), "boom")
    queue.archive()
    queue.retry("g", job_id)
    row = conn.execute("SELECT group_id, group_tier, state::text FROM jobqueue.job WHERE id = %s", (job_id,))
    assert row.fetchone() == ("a", "t", "created")


@pytest.mark.parametrize(("tiers", "policy"), [(False, "standard"), (True, "standard"), (True, "key_strict_fifo")])
def test_eight_fetchers_never_exceed_a_group_limit(
    queue: Queue, dsn: str, conn: psycopg.Connection[Any], tiers: bool, policy: str
) -> None:
    """Eight fetchers (batch sizes 1-100) drain 40 groups while a watcher samples the table.

    Under key_strict_fifo the jobs also have 120 keys (across groups): one job per key at a time too.
    """
    queue.create_queue("g", policy=policy)
    groups = 40
    limit_of = {"default": 2, "tiers": {"wide": 3}} if tiers else 2
    tier_of = {g: ("wide" if tiers and g % 2 else None) for g in range(groups)}
    jobs = [
        {"data": {"g": g}, "group": {"id": f"g{g}", "tier": tier_of[g]}, "singleton_key": f"k{(g + n) % 120}"}
        for n in range(25)
        for g in range(groups)
    ]
    sent = queue.insert("g", jobs)
    completed: list[str] = []
    errors: list[BaseException] = []
    worst: Counter[str] = Counter()
    worst_key = 0
    lock = threading.Lock()
    barrier = threading.Barrier(9)
    done = threading.Event()

    def fetcher(size: int) -> None:
        try:
            with Queue(dsn) as q:
                barrier.wait()
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    claimed = q.fetch("g", size, group_concurrency=limit_of)
                    if not claimed:
                        if q.queue_size("g") == 0:
                            return
                        continue  # every waiting group is at its limit for now
                    ids = q.complete("g", claimed)
                    with lock:
                        completed.extend(ids)
        except BaseException as exc:
            errors.append(exc)

    def watch() -> None:
        nonlocal worst_key
        with psycopg.connect(dsn, autocommit=True) as watcher:
            barrier.wait()
            while not done.is_set():
                for group, count in active_per_group(watcher, "g").items():
                    worst[group] = max(worst[group], count)
                per_key = watcher.execute(
                    "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM jobqueue.job"
                    " WHERE name = 'g' AND state = 'active' GROUP BY singleton_key) k"
                ).fetchone()
                worst_key = max(worst_key, per_key[0] if per_key else 0)

    threads = [threading.Thread(target=fetcher, args=(size,)) for size in (1, 5, 10, 50, 100, 3, 20, 7)]
    watcher = threading.Thread(target=watch)
    for thread in [*threads, watcher]:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    watcher.join()
    assert errors == []
    assert sorted(completed) == sorted(sent)  # each job completed once
    for g in range(groups):
        allowed = 3 if tier_of[g] == "wide" else 2
        assert worst[f"g{g}"] <= allowed, (g, worst[f"g{g}"])
    assert max(worst.values()) >= 2  # the limit was reached, not merely respected by luck
    if policy == "key_strict_fifo":
        assert worst_key == 1
