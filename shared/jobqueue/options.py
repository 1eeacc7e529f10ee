"""Validation of everything a caller passes in: names, options and payloads.

Checks happen in Python before any SQL runs, so a bad call fails with an error
that names the option and the value, and changes nothing. The documented
bounds are here, in one place (the README's configuration reference lists them).
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from jobqueue.errors import InvalidNameError, InvalidOptionError, PayloadError

QUEUE_NAME: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/]{0,127}$")
POLICIES: Final = ("standard", "short", "singleton", "stately")

DAY: Final = 86_400
# (lowest, highest) accepted value of each integer option. Durations are seconds.
BOUNDS: Final[dict[str, tuple[int, int]]] = {
    "priority": (-1_000_000, 1_000_000),
    "retry_limit": (0, 1_000),
    "retry_delay": (0, 7 * DAY),
    "retry_delay_max": (1, 30 * DAY),
    "expire_in": (1, 7 * DAY),
    "retention": (1, 365 * DAY),
    "archive_after": (0, 30 * DAY),
    "delete_after": (0, 365 * DAY),
    "singleton_seconds": (1, 365 * DAY),
    "batch_size": (1, 10_000),
    "limit": (1, 100_000),
    "bucket_seconds": (1, DAY),
}
MAX_START_IN: Final = 366 * DAY
MAX_SINGLETON_KEY: Final = 255
DEFAULT_MAX_PAYLOAD_BYTES: Final = 1_048_576  # 1 MiB of JSON per job

DURATION_OPTIONS: Final = frozenset(
    {"retry_delay", "retry_delay_max", "expire_in", "retention", "archive_after", "delete_after", "singleton_seconds"}
)


def queue_name(name: object, role: str = "queue") -> str:
    if not isinstance(name, str) or not QUEUE_NAME.match(name):
        raise InvalidNameError(
            f"invalid {role} name {name!r}: use 1-128 characters from letters, digits, '_', '.', '-' and '/', "
            "not starting with '.', '-' or '/'"
        )
    return name


def integer(option: str, value: object) -> int:
    """An integer option within its documented bounds; durations also take a timedelta."""
    if option in DURATION_OPTIONS and isinstance(value, timedelta):
        seconds = value.total_seconds()
        if seconds != int(seconds):
            raise InvalidOptionError(f"{option} must be a whole number of seconds, got {value!r}")
        value = int(seconds)
    # bool is an int subclass; retry_limit=True is a bug, not a 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidOptionError(f"{option} must be an integer, got {value!r}")
    low, high = BOUNDS[option]
    if not low <= value <= high:
        raise InvalidOptionError(f"{option} must be between {low} and {high}, got {value}")
    return value


def optional_integer(option: str, value: object) -> int | None:
    return None if value is None else integer(option, value)


def boolean(option: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidOptionError(f"{option} must be true or false, got {value!r}")
    return value


def policy(value: object) -> str:
    if value not in POLICIES:
        raise InvalidOptionError(f"policy must be one of {', '.join(POLICIES)}, got {value!r}")
    return str(value)


def singleton_key(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_SINGLETON_KEY:
        raise InvalidOptionError(f"singleton_key must be a string of 1-{MAX_SINGLETON_KEY} characters, got {value!r}")
    return value


def job_id(value: object) -> str:
    try:
        return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))
    except (ValueError, TypeError, AttributeError):
        raise InvalidOptionError(f"job id must be a UUID, got {value!r}") from None


def job_ids(values: object) -> list[str]:
    if isinstance(values, str | uuid.UUID):
        return [job_id(values)]
    if not isinstance(values, list | tuple | set | frozenset):
        raise InvalidOptionError(f"ids must be a list of job ids, got {values!r}")
    return [job_id(v) for v in values]


def aware(option: str, moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidOptionError(f"{option} must carry a time zone, got the naive datetime {moment.isoformat()}")
    return moment


def start_after(value: object) -> tuple[datetime | None, float | None]:
    """`start_after` as (absolute time, seconds from now): one of them is set.

    Accepts seconds (int or float), a timedelta, an aware datetime, or an ISO
    8601 string with a time zone ("2026-01-01T09:00:00Z").
    """
    if value is None:
        return None, None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool):
        raise InvalidOptionError(f"start_after must be seconds, a datetime or an ISO 8601 string, got {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or not 0 <= value <= MAX_START_IN:
            raise InvalidOptionError(f"start_after in seconds must be between 0 and {MAX_START_IN}, got {value!r}")
        return None, float(value)
    if isinstance(value, datetime):
        return aware("start_after", value), None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidOptionError(
                f"start_after {value!r} is not an ISO 8601 date-time (e.g. '2026-01-01T09:00:00Z')"
            ) from None
        return aware("start_after", parsed), None
    raise InvalidOptionError(f"start_after must be seconds, a datetime or an ISO 8601 string, got {value!r}")


def now_or_none(now: datetime | None) -> datetime | None:
    return None if now is None else aware("now", now)


def deadline(value: datetime | None) -> datetime | None:
    return None if value is None else aware("deadline", value)


def to_json(value: Any, what: str = "data", max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> str:
    """Encode a payload, refusing what JSON cannot carry or what is too big."""
    try:
        encoded = json.dumps(value, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"{what} is not JSON-serialisable: {exc}") from None
    # JSON has no NUL in strings that Postgres' jsonb accepts.
    if "\\u0000" in encoded:
        raise PayloadError(f"{what} contains a NUL character (\\u0000), which Postgres cannot store")
    size = len(encoded.encode()) if not encoded.isascii() else len(encoded)
    if size > max_bytes:
        raise PayloadError(f"{what} is {size} bytes of JSON, over the limit of {max_bytes} bytes")
    return encoded


def error_payload(error: object) -> dict[str, Any]:
    """The JSON stored as a failed job's output: message and exception type."""
    if isinstance(error, BaseException):
        return {"message": str(error) or type(error).__name__, "type": type(error).__name__}
    if isinstance(error, Mapping):
        return dict(error)
    return {"message": str(error)}


def utcnow() -> datetime:
    """The one clock of the Python side (tests pass `now` instead of patching it)."""
    return datetime.now(UTC)
