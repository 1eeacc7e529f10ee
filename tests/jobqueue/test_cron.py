from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobqueue import InvalidCronError, InvalidTimezoneError, due_fire_times, next_fire_times, validate_cron


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_since_is_exclusive_and_until_inclusive() -> None:
    assert due_fire_times("*/5 * * * *", "UTC", utc(2026, 1, 1, 12, 0), utc(2026, 1, 1, 12, 10)) == [
        utc(2026, 1, 1, 12, 5),
        utc(2026, 1, 1, 12, 10),
    ]
    assert due_fire_times("*/5 * * * *", "UTC", utc(2026, 1, 1, 12, 10), utc(2026, 1, 1, 12, 10)) == []


def test_seed_schedules() -> None:
    day = (utc(2026, 6, 1), utc(2026, 6, 2))
    assert len(due_fire_times("*/5 * * * *", "UTC", *day)) == 288
    assert due_fire_times("0 2 * * *", "UTC", *day) == [utc(2026, 6, 1, 2)]
    assert len(due_fire_times("0 * * * *", "UTC", *day)) == 24


def test_time_zone_is_applied() -> None:
    # 02:00 in New York in summer is 06:00 UTC.
    assert due_fire_times("0 2 * * *", "America/New_York", utc(2026, 6, 1), utc(2026, 6, 2)) == [utc(2026, 6, 1, 6)]


def test_spring_forward_runs_the_skipped_time_once_at_the_jump() -> None:
    # New York, 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00 UTC).
    times = due_fire_times("30 2 * * *", "America/New_York", utc(2026, 3, 7, 12), utc(2026, 3, 9, 12))
    assert times == [utc(2026, 3, 8, 7, 30), utc(2026, 3, 9, 6, 30)]
    hourly = due_fire_times("0 * * * *", "America/New_York", utc(2026, 3, 8, 5), utc(2026, 3, 8, 9))
    assert hourly == [utc(2026, 3, 8, 6), utc(2026, 3, 8, 7), utc(2026, 3, 8, 8), utc(2026, 3, 8, 9)]
    assert len(hourly) == len(set(hourly))


def test_fall_back_runs_the_repeated_time_once() -> None:
    # New York, 2026-11-01: 02:00 EDT falls back to 01:00 EST; 01:30 happens twice.
    times = due_fire_times("30 1 * * *", "America/New_York", utc(2026, 10, 31, 12), utc(2026, 11, 2, 12))
    assert times == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]


def test_every_minute_across_fall_back_has_no_duplicates_or_gaps_in_order() -> None:
    times = due_fire_times("* * * * *", "Europe/Berlin", utc(2026, 10, 25, 0), utc(2026, 10, 25, 2))
    assert times == sorted(set(times))
    assert times[0] == utc(2026, 10, 25, 0, 1) and times[-1] == utc(2026, 10, 25, 2)


def test_limit_keeps_the_newest() -> None:
    times = due_fire_times("* * * * *", "UTC", utc(2026, 1, 1), utc(2026, 1, 2), limit=3)
    assert times == [utc(2026, 1, 1, 23, 58), utc(2026, 1, 1, 23, 59), utc(2026, 1, 2)]


def test_next_fire_times() -> None:
    assert next_fire_times("0 2 * * *", "UTC", utc(2026, 1, 1, 3), count=2) == [utc(2026, 1, 2, 2), utc(2026, 1, 3, 2)]
    assert next_fire_times("0 0 29 2 *", "UTC", utc(2026, 1, 1)) == [utc(2028, 2, 29)]


def test_next_fire_times_of_a_frequent_schedule_are_the_earliest() -> None:
    after = datetime(2026, 11, 28, 12, 0, 30, tzinfo=UTC)
    assert next_fire_times("* * * * *", "UTC", after, count=3) == [
        utc(2026, 11, 28, 12, 1),
        utc(2026, 11, 28, 12, 2),
        utc(2026, 11, 28, 12, 3),
    ]
    assert next_fire_times("*/5 * * * *", "Europe/Berlin", after, count=1) == [utc(2026, 11, 28, 12, 5)]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "invalid cron"),
        ("* * * *", "expected 5 fields"),
        ("* * * * * *", "expected 5 fields"),
        ("60 * * * *", "invalid cron expression"),
        ("* 25 * * *", "invalid cron expression"),
        ("every minute", "expected 5 fields"),
        (None, "invalid cron"),
    ],
)
def test_invalid_cron(expression: object, message: str) -> None:
    with pytest.raises(InvalidCronError, match=message):
        validate_cron(expression)


def test_valid_cron_is_normalised() -> None:
    assert validate_cron("  */5   * * * * ") == "*/5 * * * *"
    assert validate_cron("@hourly") == "@hourly"


@pytest.mark.parametrize("tz", ["Mars/Olympus", "", "../etc/passwd", "UTC+5"])
def test_invalid_time_zone(tz: str) -> None:
    with pytest.raises(InvalidTimezoneError, match="time zone"):
        due_fire_times("* * * * *", tz, utc(2026, 1, 1), utc(2026, 1, 1) + timedelta(minutes=1))
