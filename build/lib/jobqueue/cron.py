"""Cron arithmetic, pure: every function takes the times it works on.

Fire times are computed on the wall clock of the schedule's time zone and then
mapped to instants, which gives the behaviour people expect of cron across
daylight saving time: a fire time in the skipped hour runs once when the clock
jumps, and a fire time in the repeated hour runs once, not twice.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from jobqueue.errors import InvalidCronError, InvalidTimezoneError

# A DST shift is at most two hours (Antarctica/Troll); iterating this far past
# `until` on the wall clock is enough to see every instant up to `until`.
_DST_SLACK = timedelta(hours=3)


def validate_cron(expression: object) -> str:
    if not isinstance(expression, str) or not expression.strip():
        raise InvalidCronError(f"invalid cron expression {expression!r}: expected 5 fields like '*/5 * * * *'")
    expression = " ".join(expression.split())
    if not expression.startswith("@") and len(expression.split(" ")) != 5:
        raise InvalidCronError(
            f"invalid cron expression {expression!r}: expected 5 fields (minute hour day month weekday), "
            f"got {len(expression.split(' '))}"
        )
    if not croniter.is_valid(expression):
        raise InvalidCronError(f"invalid cron expression {expression!r}")
    return expression


def zone(name: object) -> ZoneInfo:
    if not isinstance(name, str) or not name:
        raise InvalidTimezoneError(f"invalid time zone {name!r}: use an IANA name like 'Europe/Berlin' or 'UTC'")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidTimezoneError(
            f"unknown time zone {name!r}: use an IANA name like 'Europe/Berlin' or 'UTC'"
        ) from None


def due_fire_times(cron: str, tz: str, since: datetime, until: datetime, *, limit: int = 10_000) -> list[datetime]:
    """Fire times in (since, until], as UTC instants, oldest first, at most `limit` (the newest)."""
    expression = validate_cron(cron)
    local = zone(tz)
    if since.tzinfo is None or until.tzinfo is None:
        raise ValueError("since and until must be timezone-aware")
    if until <= since:
        return []
    wall_start = since.astimezone(local).replace(tzinfo=None) - _DST_SLACK
    wall_stop = until.astimezone(local).replace(tzinfo=None) + _DST_SLACK
    found: set[datetime] = set()
    iterator = croniter(expression, wall_start)
    while True:
        wall = iterator.get_next(datetime)
        if wall > wall_stop:
            break
        # fold=0 puts a repeated wall time at its first occurrence and a
        # skipped one just after the jump.
        instant = wall.replace(tzinfo=local).astimezone(UTC)
        if since < instant <= until:
            found.add(instant)
    return sorted(found)[-limit:]


def next_fire_times(cron: str, tz: str, after: datetime, count: int = 1) -> list[datetime]:
    """The next `count` fire times after `after` (for display).

    Searches windows that double in length from an hour, so that a schedule
    firing every minute costs an hour's worth of times and a yearly one a few
    windows. due_fire_times keeps the latest times of a window; the earliest
    are wanted here, so no limit is passed down.
    """
    times: list[datetime] = []
    window = timedelta(hours=1)
    since = after
    while len(times) < count and window <= timedelta(days=366 * 16):
        found = due_fire_times(cron, tz, since, since + window, limit=100_000)
        times += found[: count - len(times)]
        since = since + window
        window *= 2
    return times
