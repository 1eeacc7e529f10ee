"""Pause and resume a queue: nothing is fetched while paused, whatever the policy; jobs keep coming."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobqueue import Queue, UnknownQueueError


@pytest.mark.parametrize(
    ("policy", "fetch_options"),
    [
        ("standard", {}),
        ("singleton", {}),
        ("key_strict_fifo", {}),
        ("standard", {"group_concurrency": 2}),
        ("key_strict_fifo", {"group_concurrency": 2}),
    ],
)
def test_a_paused_queue_gives_nothing_until_resumed(queue: Queue, policy: str, fetch_options: dict[str, int]) -> None:
    queue.create_queue("q", policy=policy)
    queue.insert("q", [{"data": n, "singleton_key": f"k{n}", "group": {"id": "g"}} for n in range(3)])
    queue.pause_queue("q")
    assert queue.fetch("q", 10, **fetch_options) == []  # type: ignore[arg-type]
    queue.send("q", {"more": True}, singleton_key="k9")  # sends go on
    info = queue.get_queue("q")
    assert info is not None and info.paused
    [stats] = [s for s in queue.get_queue_stats() if s.name == "q"]
    assert stats.paused and stats.queued == 4
    queue.resume_queue("q")
    assert queue.fetch("q", 10, **fetch_options)  # type: ignore[arg-type]


def test_schedules_fire_into_a_paused_queue(queue: Queue) -> None:
    queue.create_queue("tick")
    start = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    queue.schedule("tick", "* * * * *", {}, now=start)
    queue.pause_queue("tick")
    created = queue.run_schedules(now=start + timedelta(minutes=3))
    assert len(created) == 3 and queue.queue_size("tick") == 3
    assert queue.fetch("tick", 10) == []


def test_pausing_an_unknown_queue_says_so(queue: Queue) -> None:
    queue.create_queue("emails")
    with pytest.raises(UnknownQueueError, match="unknown queue 'emials' \\(did you mean 'emails'\\?\\)"):
        queue.pause_queue("emials")
