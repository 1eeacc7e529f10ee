"""Round-robin queues (fairness): the groups of a queue take turns in every fetch."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from jobqueue import InvalidOptionError, Queue

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def _groups(jobs: list[Any]) -> list[str]:
    return [job.data["g"] for job in jobs]


def _send(queue: Queue, name: str, group: str | None, count: int, **options: Any) -> None:
    grouping = {"group": {"id": group, **({"tier": options.pop("tier")} if "tier" in options else {})}} if group else {}
    queue.insert(name, [{"data": {"g": group or "-"}, **grouping, **options} for _ in range(count)])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("fair", 'fairness must be "fifo", "round_robin" or {"tiers": {tier: weight}}'),
        ({"tiers": {"paid": 0}}, "fairness weight of tier 'paid' must be between 1 and 1000, got 0"),
        ({"weights": {}}, "fairness must be"),
    ],
)
def test_a_bad_fairness_is_refused_with_what_is_wrong(queue: Queue, value: Any, message: str) -> None:
    with pytest.raises(InvalidOptionError, match=message.replace("(", r"\(").replace("{", r"\{")):
        queue.create_queue("q", fairness=value)


def test_round_robin_needs_a_policy_that_takes_jobs_in_order(queue: Queue) -> None:
    for policy in ("singleton", "stately"):
        with pytest.raises(InvalidOptionError, match=r"fairness round_robin .* use standard, short, exclusive or key"):
            queue.create_queue(f"pods-{policy}", policy=policy, fairness="round_robin")
    queue.create_queue("pods", policy="singleton")
    with pytest.raises(InvalidOptionError, match="fairness round_robin"):
        queue.update_queue("pods", fairness="round_robin")
    info = queue.get_queue("pods")
    assert info is not None and info.fairness == "fifo"


def _send_keyed(queue: Queue, user: str, pods: int, actions: int = 1, **options: Any) -> None:
    """`actions` jobs for each of `pods` pods of `user`, a pod's in the order sent."""
    queue.insert(
        "pods",
        [
            {
                "data": {"g": user, "pod": f"{user}-{pod}", "n": n},
                "singleton_key": f"{user}-{pod}",
                "group": {"id": user},
                **options,
            }
            for n in range(actions)
            for pod in range(pods)
        ],
    )


def test_on_a_key_strict_fifo_queue_users_take_turns_and_each_key_keeps_its_order(queue: Queue) -> None:
    """A user with 500 pods waiting and one with a single pod alternate; a fetch takes one job of a
    key at a time, the key's first, and none of a key whose job is active."""
    queue.create_queue("pods", policy="key_strict_fifo", fairness="round_robin")
    _send_keyed(queue, "big", 500, actions=2)
    _send_keyed(queue, "small", 1, actions=3)
    first = queue.fetch("pods", 10)
    assert Counter(_groups(first)) == {"big": 9, "small": 1}
    assert all(job.data["n"] == 0 for job in first)
    assert len({job.singleton_key for job in first}) == 10
    # small's pod has its first job active: its next waits, whatever the turns say.
    second = queue.fetch("pods", 10)
    assert _groups(second) == ["big"] * 10 and all(job.data["n"] == 0 for job in second)
    [small] = [job for job in first if job.data["g"] == "small"]
    queue.complete("pods", small)
    third = queue.fetch("pods", 2)
    assert Counter((job.data["g"], job.data["n"]) for job in third) == {("small", 1): 1, ("big", 0): 1}


def test_on_a_key_strict_fifo_queue_a_retry_and_a_failure_hold_their_key(queue: Queue) -> None:
    queue.create_queue("pods", policy="key_strict_fifo", fairness="round_robin", retry_limit=1)
    _send_keyed(queue, "a", 2, actions=2)
    first = queue.fetch("pods", 10)
    assert sorted((job.data["pod"], job.data["n"]) for job in first) == [("a-0", 0), ("a-1", 0)]
    queue.fail("pods", first)  # both wait for their retry (retry_delay 0: at once)
    again = queue.fetch("pods", 10)
    assert sorted((job.data["pod"], job.data["n"]) for job in again) == [("a-0", 0), ("a-1", 0)]
    queue.fail("pods", [job for job in again if job.data["pod"] == "a-0"])  # failed for good: a-0 is blocked
    queue.complete("pods", [job for job in again if job.data["pod"] == "a-1"])
    assert [(job.data["pod"], job.data["n"]) for job in queue.fetch("pods", 10)] == [("a-1", 1)]


def test_on_a_key_strict_fifo_queue_concurrent_fetchers_run_a_key_one_job_at_a_time(dsn: str) -> None:
    """8 fetchers (batches 1-9) drain 12 users x 5 pods x 6 actions: every action once, a pod's in
    the order sent, never two of a pod active at once."""
    with Queue(dsn) as setup:
        setup.create_queue("pods", policy="key_strict_fifo", fairness="round_robin")
        for user in range(12):
            _send_keyed(setup, f"u{user}", 5, actions=6)
    done: dict[str, list[int]] = {}
    active: set[str] = set()
    lock = threading.Lock()
    errors: list[str] = []

    def fetch(batch: int) -> None:
        with Queue(dsn) as fetcher:
            while jobs := fetcher.fetch("pods", batch):
                with lock:
                    for job in jobs:
                        if job.singleton_key in active:
                            errors.append(f"{job.singleton_key} twice active")
                        active.add(job.singleton_key)
                        done.setdefault(job.data["pod"], []).append(job.data["n"])
                with lock:  # finished before the complete commits: its key's next may start at once
                    active.difference_update(job.singleton_key for job in jobs)
                fetcher.complete("pods", jobs)

    threads = [threading.Thread(target=fetch, args=(1 + n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len(done) == 60 and all(order == list(range(6)) for order in done.values())


def test_a_backlog_and_a_small_group_take_alternate_places(queue: Queue) -> None:
    queue.create_queue("q", fairness="round_robin")
    _send(queue, "q", "big", 1000)
    _send(queue, "q", "small", 10)
    first = _groups(queue.fetch("q", 20))
    assert Counter(first) == {"big": 10, "small": 10}
    # Then only the backlog is left: it takes every place.
    assert _groups(queue.fetch("q", 20)) == ["big"] * 20


def test_a_group_that_sends_behind_a_backlog_starts_in_the_next_fetch(queue: Queue) -> None:
    queue.create_queue("q", fairness="round_robin")
    _send(queue, "q", "tenant-a", 5000)
    assert _groups(queue.fetch("q", 10)) == ["tenant-a"] * 10
    _send(queue, "q", "tenant-b", 1)
    assert "tenant-b" in _groups(queue.fetch("q", 2))


def test_turns_go_on_from_one_fetch_to_the_next(queue: Queue) -> None:
    """A batch of 1 at a time still visits every group in turn: the next fetch starts after the
    group whose turn came last."""
    queue.create_queue("q", fairness="round_robin")
    for group in "abc":
        _send(queue, "q", group, 10)
    taken = [job for _ in range(9) for job in queue.fetch("q", 1)]
    assert _groups(taken) == list("abcabcabc")


def test_tier_weights_give_a_group_more_jobs_a_turn(queue: Queue) -> None:
    queue.create_queue("q", fairness={"tiers": {"paid": 3}})
    info = queue.get_queue("q")
    assert info is not None and info.fairness == {"tiers": {"paid": 3}}
    _send(queue, "q", "free-user", 100, tier="free")
    _send(queue, "q", "paid-user", 100, tier="paid")
    assert Counter(_groups(queue.fetch("q", 8))) == {"paid-user": 6, "free-user": 2}


def test_priority_comes_first(queue: Queue) -> None:
    queue.create_queue("q", fairness="round_robin")
    _send(queue, "q", "a", 10)
    _send(queue, "q", "b", 3, priority=5)
    assert _groups(queue.fetch("q", 4)) == ["b", "b", "b", "a"]


def test_jobs_without_a_group_run_once_the_groups_have_none_to_give(queue: Queue) -> None:
    queue.create_queue("q", fairness="round_robin")
    _send(queue, "q", None, 5)
    _send(queue, "q", "a", 3)
    assert Counter(_groups(queue.fetch("q", 4))) == {"a": 3, "-": 1}


def test_delayed_jobs_wait_and_paused_queues_give_nothing(queue: Queue) -> None:
    queue.create_queue("q", fairness="round_robin")
    _send(queue, "q", "a", 2, start_after=T0 + timedelta(days=3650))
    _send(queue, "q", "b", 2)
    assert _groups(queue.fetch("q", 10)) == ["b", "b"]
    queue.pause_queue("q")
    assert queue.fetch("q", 10, now=T0 + timedelta(days=3651)) == []
    queue.resume_queue("q")
    assert _groups(queue.fetch("q", 10, now=T0 + timedelta(days=3651))) == ["a", "a"]


def test_group_limits_hold_on_a_round_robin_queue(queue: Queue) -> None:
    queue.create_queue("q", fairness="round_robin", group_rate_limit={"limit": 2, "period": 60})
    for group in "ab":
        _send(queue, "q", group, 10)
    first = queue.fetch("q", 10, now=T0)
    assert Counter(_groups(first)) == {"a": 2, "b": 2}
    assert queue.fetch("q", 10, now=T0) == []
    queue.complete("q", [job for job in first if job.data["g"] == "a"])  # b's stay active
    later = queue.fetch("q", 10, group_concurrency=1, now=T0 + timedelta(seconds=60))
    assert _groups(later) == ["a"]


def test_fairness_can_be_changed_on_a_queue_with_jobs_waiting(queue: Queue) -> None:
    queue.create_queue("q")
    _send(queue, "q", "a", 10)
    _send(queue, "q", "b", 10)
    assert _groups(queue.fetch("q", 4)) == ["a"] * 4
    queue.update_queue("q", fairness="round_robin")
    assert Counter(_groups(queue.fetch("q", 4))) == {"a": 2, "b": 2}


def test_concurrent_fetchers_never_claim_a_job_twice(dsn: str, conn: psycopg.Connection[Any]) -> None:
    with Queue(dsn) as setup:
        setup.create_queue("q", fairness="round_robin")
        for group in range(20):
            _send(setup, "q", f"g{group}", 50)
    claimed: list[str] = []
    lock = threading.Lock()

    def fetch() -> None:
        with Queue(dsn) as fetcher:
            while jobs := fetcher.fetch("q", 7):
                with lock:
                    claimed.extend(job.id for job in jobs)

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(claimed) == len(set(claimed)) == 1000


def test_under_concurrent_fetchers_a_late_group_does_not_wait_for_the_backlog(
    dsn: str, conn: psycopg.Connection[Any]
) -> None:
    """8 fetchers (batches of 50) drain a backlog of 30,000 jobs of one group while a producer sends
    a job of a new group every 20 ms: each of those starts before more than two batches per
    fetcher of the backlog's jobs start after it was sent (first in first out, it would wait for
    every backlog job sent before it)."""
    fetchers, batch, late = 8, 50, 20
    with Queue(dsn) as setup:
        setup.create_queue("q", fairness="round_robin")
        for _ in range(6):
            _send(setup, "q", "backlog", 5000)
    stop = threading.Event()
    errors: list[BaseException] = []

    def fetch() -> None:
        try:
            with Queue(dsn) as fetcher:
                while not stop.is_set():
                    if jobs := fetcher.fetch("q", batch):
                        fetcher.complete("q", jobs)
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(fetchers)]
    for thread in threads:
        thread.start()
    try:
        with Queue(dsn) as producer:
            for number in range(late):
                producer.send("q", {"g": f"late-{number}"}, group={"id": f"late-{number}"})
                stop.wait(0.02)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not errors:
            waiting = conn.execute(
                "SELECT count(*) FROM jobqueue.job WHERE name = 'q' AND group_id LIKE 'late-%%' AND state < 'active'"
            ).fetchone()[0]  # type: ignore[index]
            if not waiting:
                break
            stop.wait(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not errors, errors
    rows = conn.execute(
        "SELECT l.group_id, (SELECT count(*) FROM jobqueue.job b WHERE b.name = 'q' AND b.group_id = 'backlog'"
        "   AND b.started_on > l.created_on AND b.started_on < l.started_on)"
        " FROM jobqueue.job l WHERE l.name = 'q' AND l.group_id LIKE 'late-%%'"
    ).fetchall()
    assert len(rows) == late
    backlog_left = conn.execute(
        "SELECT count(*) FROM jobqueue.job WHERE name = 'q' AND group_id = 'backlog' AND state < 'active'"
    ).fetchone()[0]  # type: ignore[index]
    assert backlog_left > 0, "the backlog ran out: the test proves nothing"
    assert max(overtaken for _, overtaken in rows) <= 2 * fetchers * batch, rows
