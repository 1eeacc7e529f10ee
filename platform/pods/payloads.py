"""Checking job payloads before any work: a bad payload fails at once, without retries."""

from __future__ import annotations

from typing import Any

from jobqueue import JobError


def require(data: Any, field: str, kind: type = str) -> Any:
    if not isinstance(data, dict):
        raise JobError(f"payload must be a JSON object, got {type(data).__name__}", should_retry=False)
    value = data.get(field)
    if value is None:
        raise JobError(f"payload is missing {field!r}", should_retry=False)
    if not isinstance(value, kind) or (kind is str and not value):
        raise JobError(
            f"payload field {field!r} must be a non-empty {kind.__name__}, got {value!r}", should_retry=False
        )
    return value


def optional(data: Any, field: str, kind: type = str) -> Any:
    if not isinstance(data, dict):
        raise JobError(f"payload must be a JSON object, got {type(data).__name__}", should_retry=False)
    if data.get(field) is None:
        return None
    return require(data, field, kind)
