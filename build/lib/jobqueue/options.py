"""Validation of everything a caller passes in: names, options, payloads and times.

Checks happen in Python before any SQL runs, so a bad call fails with an error
that names the option and the value, and changes nothing. The options
themselves, with their bounds and defaults, are declared in jobqueue.settings;
the few limits here belong to calls, not to queues or jobs.
"""

from __future__ import annotations

import json
import re
import traceback
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from jobqueue.errors import InvalidOptionError, PayloadError
from jobqueue.settings import (
    MAX_SINGLETON_KEY,
    QUEUE_SETTINGS,
    SEND_OPTIONS,
    Boolean,
    Integer,
    SingletonKey,
    StartAfter,
    aware,
    job_id,
    queue_name,
)

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "MAX_SINGLETON_KEY",
    "aware",
    "integer",
    "job_id",
    "queue_name",
]

# Arguments of calls (not options of queues or jobs), with their bounds.
CALL_LIMITS: Final = {
    "batch_size": Integer(1, 10_000),
    "limit": Integer(1, 100_000),
    "bucket_seconds": Integer(1, 86_400),
    "max_snoozes": Integer(0, 1_000_000),
}
GROUP_LIMIT: Final = Integer(1, 1_000_000)  # active jobs of one group
DEFAULT_MAX_PAYLOAD_BYTES: Final = 1_048_576  # 1 MiB of JSON per job


def integer(option: str, value: object) -> int:
    """An integer argument or option within its declared bounds (durations also take a timedelta)."""
    declared = SEND_OPTIONS.get(option) or QUEUE_SETTINGS.get(option)
    check = declared.check if declared is not None else CALL_LIMITS[option]
    return int(check.check(option, value))


def boolean(option: str, value: object) -> bool:
    return Boolean().check(option, value)


def start_after(value: object) -> tuple[datetime | None, float | None]:
    """`start_after` as (absolute time, seconds from now): one of them is set, or neither for None."""
    if value is None:
        return None, None
    result: tuple[datetime | None, float | None] = StartAfter().check("start_after", value)
    return result


def now_or_none(now: datetime | None) -> datetime | None:
    return None if now is None else aware("now", now)


def deadline(value: datetime | None) -> datetime | None:
    return None if value is None else aware("deadline", value)


# A NUL in a JSON string is written \u0000; an odd number of backslashes before "u0000" is one,
# an even number is escaped backslashes followed by the text "u0000", which Postgres stores.
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


# One encoder for every payload: json.dumps with options builds a new one per call.
_encode = json.JSONEncoder(allow_nan=False, separators=(",", ":"), ensure_ascii=False).encode


def to_json(value: Any, what: str = "data", max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> str:
    """Encode a payload, refusing what JSON cannot carry, what Postgres cannot store, or what is too big."""
    try:
        encoded = _encode(value)
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"{what} is not JSON-serialisable: {exc}") from None
    except RecursionError:
        raise PayloadError(f"{what} is nested too deeply to encode as JSON") from None
    if "\\u0000" in encoded and _NUL_ESCAPE.search(encoded):
        raise PayloadError(f"{what} contains a NUL character (\\u0000), which Postgres cannot store")
    try:
        size = len(encoded) if encoded.isascii() else len(encoded.encode())
    except UnicodeEncodeError as exc:
        raise PayloadError(
            f"{what} contains a lone surrogate ({encoded[exc.start : exc.end]!r}), which is not valid Unicode"
        ) from None
    if size > max_bytes:
        raise PayloadError(f"{what} is {size} bytes of JSON, over the limit of {max_bytes} bytes")
    return encoded


MAX_TRACEBACK_CHARS: Final = 4000  # of an error's traceback kept with the job (its innermost frames)


MAX_ERROR_MESSAGE_CHARS: Final = 4000  # of an error's message kept with the job


def describe(error: BaseException) -> str:
    """An exception's message, whatever its __str__ does (raises, returns something else, is
    empty): a readable text Postgres can store (no NUL, no lone surrogate), of bounded size."""
    name = _type_name(error)
    try:
        text = str(error)
    except Exception:  # a handler's exception may do anything in __str__
        try:
            text = f"{name} (its message cannot be printed: {object.__repr__(error)})"
        except Exception:
            text = f"{name} (its message cannot be printed)"
    return storable_text(text or name, MAX_ERROR_MESSAGE_CHARS)


def storable_text(text: str, limit: int) -> str:
    """`text` as Postgres stores it in JSON: NUL shown as \\0, lone surrogates escaped, at most `limit` chars."""
    if "\x00" in text:
        text = text.replace("\x00", "\\0")
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _type_name(error: BaseException) -> str:
    try:
        return storable_text(type(error).__qualname__, 200)
    except Exception:
        return "Exception"


def error_payload(error: object) -> dict[str, Any]:
    """The JSON stored as a failed job's output: message, exception type and (bounded) traceback.

    For an exception it never fails and is always storable, whatever the exception does: a
    handler's failure must be recorded, not lost to a second failure while describing it."""
    if isinstance(error, BaseException):
        payload = {"message": describe(error), "type": _type_name(error)}
        if error.__traceback__ is not None:
            try:
                trace = "".join(traceback.format_exception(error))
            except Exception:  # a traceback that cannot be formatted is left out, not the failure
                trace = ""
            if trace:
                payload["traceback"] = storable_text(trace[-MAX_TRACEBACK_CHARS:], MAX_TRACEBACK_CHARS)
        return payload
    if isinstance(error, Mapping):
        return dict(error)
    return {"message": str(error)}


def group_limits(value: object) -> dict[str, Any]:
    """A fetch's group_concurrency as query parameters: the default limit and the tiers' (JSON)."""

    def limit(what: str, raw: object) -> int:
        return GROUP_LIMIT.check(what, raw)

    if isinstance(value, Mapping):
        unknown = set(value) - {"default", "tiers"}
        tiers = value.get("tiers") or {}
        if unknown or "default" not in value or not isinstance(tiers, Mapping):
            raise InvalidOptionError(
                f'group_concurrency must be a number or {{"default": n, "tiers": {{tier: n}}}}, got {value!r}'
            )
        checked = {str(tier): limit(f"group_concurrency tier {tier!r}", n) for tier, n in tiers.items()}
        return {"group_limit": limit("group_concurrency default", value["default"]), "tiers": json.dumps(checked)}
    return {"group_limit": limit("group_concurrency", value), "tiers": "{}"}


def batch_spec(value: object, max_payload_bytes: int) -> tuple[str, str | None, str | None]:
    """Queue.insert's `batch`, checked: its id, its on_finish queue (or None) and that job's data as JSON."""
    if not isinstance(value, Mapping) or "id" not in value or not set(value) <= {"id", "on_finish"}:
        raise InvalidOptionError(
            f'batch must be {{"id": ..., "on_finish": {{"name": queue, "data": ...}}}}, got {value!r}'
        )
    batch_id = SingletonKey().check("batch id", value["id"])
    on_finish = value.get("on_finish")
    if on_finish is None:
        return batch_id, None, None
    if not isinstance(on_finish, Mapping) or "name" not in on_finish or not set(on_finish) <= {"name", "data"}:
        raise InvalidOptionError(f'batch on_finish must be {{"name": queue, "data": ...}}, got {on_finish!r}')
    finish_queue = queue_name(on_finish["name"])
    return (
        batch_id,
        finish_queue,
        to_json({"name": finish_queue, "data": on_finish.get("data")}, "on_finish", max_payload_bytes),
    )


def event_name(value: object) -> str:
    """A publish/subscribe event's name: a string of 1-255 characters Postgres can store."""
    return SingletonKey().check("event", value)
