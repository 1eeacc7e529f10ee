"""Turning send options into query parameters (validated, defaults left to the queue)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from jobqueue import options
from jobqueue.errors import InvalidOptionError

SEND_OPTIONS: Final = frozenset(
    {
        "priority",
        "start_after",
        "retry_limit",
        "retry_delay",
        "retry_backoff",
        "retry_delay_max",
        "expire_in",
        "singleton_key",
        "singleton_seconds",
        "singleton_next_slot",
        "retention",
        "delete_after",
        "dead_letter",
        "id",
    }
)
_INTEGER_OPTIONS: Final = (
    "priority",
    "retry_limit",
    "retry_delay",
    "retry_delay_max",
    "expire_in",
    "singleton_seconds",
    "retention",
    "delete_after",
)


def job_params(values: Mapping[str, Any]) -> dict[str, Any]:
    """Validate send options; None means "use the queue's setting"."""
    unknown = set(values) - SEND_OPTIONS
    if unknown:
        raise InvalidOptionError(
            f"unknown send option(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(SEND_OPTIONS))}"
        )
    params: dict[str, Any] = {name: options.optional_integer(name, values.get(name)) for name in _INTEGER_OPTIONS}
    backoff = values.get("retry_backoff")
    params["retry_backoff"] = None if backoff is None else options.boolean("retry_backoff", backoff)
    params["start_after"], params["start_in"] = options.start_after(values.get("start_after"))
    params["singleton_key"] = options.singleton_key(values.get("singleton_key"))
    dead_letter = values.get("dead_letter")
    params["dead_letter"] = None if dead_letter is None else options.queue_name(dead_letter, "dead letter queue")
    params["id"] = None if values.get("id") is None else options.job_id(values["id"])
    next_slot = values.get("singleton_next_slot", False)
    params["singleton_next_slot"] = options.boolean("singleton_next_slot", next_slot)
    if params["singleton_next_slot"] and params["singleton_seconds"] is None:
        raise InvalidOptionError("singleton_next_slot needs singleton_seconds (the length of a slot)")
    return params


def data_only_batch(jobs: list[Mapping[str, Any]], max_payload_bytes: int) -> str | None:
    """The batch as one JSON array of data, if no job has options; else None.

    One json.dumps for the whole batch is several times faster than one per
    job. If the whole array fits the per-job limit, every job does; only a
    larger batch is measured job by job.
    """
    if not all(isinstance(job, Mapping) and job.keys() == {"data"} for job in jobs):
        return None
    datas = [job["data"] for job in jobs]
    encoded = options.to_json(datas, "data", max_bytes=sys.maxsize)
    if len(encoded) > max_payload_bytes:
        for data in datas:
            options.to_json(data, "data", max_payload_bytes)
    return encoded


def batch_record(job: Mapping[str, Any], max_payload_bytes: int) -> str:
    """One job of `insert` as a JSON object for json_to_recordset."""
    if not isinstance(job, Mapping):
        raise InvalidOptionError(f"each job given to insert must be a mapping, got {job!r}")
    opts = {k: v for k, v in job.items() if k != "data"}
    params = job_params(opts)
    if params.pop("singleton_next_slot"):
        raise InvalidOptionError("singleton_next_slot is not supported by insert; use send_debounced")
    record: dict[str, Any] = {k: v for k, v in params.items() if v is not None}
    if isinstance(record.get("start_after"), datetime):
        record["start_after"] = record["start_after"].isoformat()
    data = options.to_json(job.get("data"), "data", max_payload_bytes)
    rest = options.to_json(record, "job options")
    return '{"data":' + data + ("," + rest[1:] if rest != "{}" else "}")
