"""Cron schedules turned into jobs exactly once per fire time."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from jobqueue import InvalidCronError, InvalidOptionError, InvalidTimezoneError, Queue, UnknownQueueError

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def cron(queue: Queue) -> Queue:
    queue.create_queue("health-check-all")
    queue.create_queue("cleanup-old")
    queue.create_queue("calculate-usage")
    return queue


def test_each_fire_time_becomes_one_job(cron: Queue) -> None:
    cron.schedule("health-check-all", "*/5 * * * *", {"all": True}, now=T0)
    assert cron.run_schedules(now=T0 + timedelta(minutes=4)) == []
    created = cron.run_schedules(now=T0 + timedelta(minutes=5))
    assert len(created) == 1
    job = cron.get_job(created[0])
    assert job is not None and job.data == {"all": True}
    assert job.origin == {"schedule": "health-check-all", "key": "", "fire_time": "2026-03-02T12:05:00+00:00"}
    # The same tick again, and a tick within the same minute, add nothing.
    assert cron.run_schedules(now=T0 + timedelta(minutes=5)) == []
    assert cron.run_schedules(now=T0 + timedelta(minutes=5, seconds=30)) == []
    assert len(cron.run_schedules(now=T0 + timedelta(minutes=10))) == 1


def test_missed_fire_times_are_caught_up_within_the_window(cron: Queue) -> None:
    cron.schedule("health-check-all", "*/5 * * * *", now=T0)
    # The default window is one hour: 12 five-minute fire times, not 36.
    assert len(cron.run_schedules(now=T0 + timedelta(hours=3))) == 12
    cron.schedule("calculate-usage", "0 * * * *", now=T0)
    assert len(cron.run_schedules(now=T0 + timedelta(hours=3, minutes=1), catch_up=timedelta(hours=4))) == 3
    cron.schedule("cleanup-old", "*/5 * * * *", now=T0)
    # Down for a day: only the last hour's fire times (the catch-up window) run.
    created = cron.run_schedules(now=T0 + timedelta(days=1), catch_up=timedelta(hours=1))
    cleanup = [j for j in (cron.get_job(i) for i in created) if j and j.name == "cleanup-old"]
    assert len(cleanup) == 12


def test_concurrent_ticks_create_one_job_per_fire_time(cron: Queue, dsn: str) -> None:
    cron.schedule("health-check-all", "* * * * *", now=T0)
    cron.schedule("calculate-usage", "* * * * *", now=T0)
    results: list[list[str]] = []
    barrier = threading.Barrier(4)

    def tick() -> None:
        with Queue(dsn) as q:
            barrier.wait()
            results.append(q.run_schedules(now=T0 + timedelta(minutes=30)))

    threads = [threading.Thread(target=tick) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(len(r) for r in results) == 60
    assert cron.queue_size("health-check-all") == 30


def test_schedule_in_a_time_zone_across_dst(cron: Queue) -> None:
    # 02:00 Europe/Berlin every day; on 2026-03-29 clocks jump from 02:00 to 03:00.
    start = datetime(2026, 3, 27, 12, tzinfo=UTC)
    cron.schedule("cleanup-old", "0 2 * * *", tz="Europe/Berlin", now=start)
    created = cron.run_schedules(now=start + timedelta(days=3), catch_up=timedelta(days=4))
    fire_times = sorted(j.origin["fire_time"] for j in (cron.get_job(i) for i in created) if j and j.origin)
    assert fire_times == [
        "2026-03-28T01:00:00+00:00",  # 02:00 CET
        "2026-03-29T01:00:00+00:00",  # 02:00 does not exist: runs at the jump, 03:00 CEST
        "2026-03-30T00:00:00+00:00",  # 02:00 CEST
    ]


def test_replacing_a_schedule_and_keys(cron: Queue) -> None:
    cron.schedule("calculate-usage", "0 * * * *", now=T0)
    cron.schedule("calculate-usage", "30 * * * *", {"region": "eu"}, key="eu", now=T0)
    assert [(s.key, s.cron) for s in cron.get_schedules("calculate-usage")] == [("", "0 * * * *"), ("eu", "30 * * * *")]
    cron.schedule("calculate-usage", "15 * * * *", now=T0 + timedelta(hours=1))  # restarts from its own now
    assert len(cron.run_schedules(now=T0 + timedelta(hours=1, minutes=16))) == 2  # 13:15 (new cron) + 12:30 (eu)
    assert cron.unschedule("calculate-usage", key="eu") == 1
    assert cron.unschedule("calculate-usage", key=None) == 1
    assert cron.get_schedules() == []


def test_schedule_send_options_apply_to_each_job(cron: Queue) -> None:
    cron.schedule("cleanup-old", "0 2 * * *", priority=7, retry_limit=0, now=T0)
    [job_id] = cron.run_schedules(now=T0 + timedelta(days=1), catch_up=timedelta(days=1))
    job = cron.get_job(job_id)
    assert job is not None and job.priority == 7 and job.retry_limit == 0


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        (("cleanup-old", "61 * * * *"), {}, InvalidCronError, "invalid cron expression '61 \\* \\* \\* \\*'"),
        (("cleanup-old", "* * * *"), {}, InvalidCronError, "expected 5 fields"),
        (("cleanup-old", "0 0 * * * *"), {}, InvalidCronError, "expected 5 fields"),
        (("cleanup-old", ""), {}, InvalidCronError, "invalid cron"),
        (
            ("cleanup-old", "0 2 * * *"),
            {"tz": "Mars/Olympus"},
            InvalidTimezoneError,
            "unknown time zone 'Mars/Olympus'",
        ),
        (("cleanup-old", "0 2 * * *"), {"priority": "x"}, InvalidOptionError, "priority must be an integer"),
        (("cleanup-old", "0 2 * * *"), {"id": "6f1d6f2e-2a9a-4a7e-9d5a-1f0f4f1f7e11"}, InvalidOptionError, "job id"),
        (("nope", "0 2 * * *"), {}, UnknownQueueError, "unknown queue 'nope'"),
    ],
)
def test_bad_schedules_are_refused(
    cron: Queue, args: tuple[str, str], kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        cron.schedule(*args, **kwargs)  # type: ignore[arg-type]
    assert cron.get_schedules() == []
