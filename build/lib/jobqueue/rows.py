"""Jobs as rows: send options checked into query parameters (send, insert, schedules), and the
jobs of one `insert` checked once and rendered for the statement that takes them.

A batch goes into the job table by COPY when nothing in it needs what only the
INSERT statement can do: the queue's policy cannot refuse a job (standard,
singleton; key_strict_fifo when every job has its key), and no job gives its
own id (a duplicate is skipped, not an error), a throttle slot
(singleton_seconds) or a dead letter queue (which must exist). Every other
batch goes through json_to_recordset under ON CONFLICT DO NOTHING.

For COPY the row's values are computed here, exactly as the insert statement
computes them in SQL: an option given, else the queue's setting; start_after
from the batch transaction's now(); keep_until = start_after + retention.
tests/jobqueue/test_write_path.py checks that both give the same rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from jobqueue import options
from jobqueue.errors import InvalidOptionError
from jobqueue.settings import POLICIES_THAT_REFUSE_SENDS, SEND_OPTIONS, Policy, check_all

# The columns of copy_jobs (sql/queries/sending.sql) after id and data, in order.
COPY_COLUMNS = (
    "name",
    "policy",
    "priority",
    "retry_limit",
    "retry_delay",
    "retry_backoff",
    "retry_delay_max",
    "expire_in",
    "start_after",
    "keep_until",
    "delete_after",
    "dead_letter",
    "group_id",
    "group_tier",
    "singleton_key",  # last: the one column that mostly differs from job to job
)
# Options a copied job may not give (see the module's docstring).
_NOT_COPIED = ("id", "singleton_seconds", "dead_letter")
_PER_JOB = frozenset({"data", "singleton_key"})  # checked job by job, not with the job's other options
_FROM_QUEUE = ("retry_limit", "retry_delay", "retry_backoff", "retry_delay_max", "expire_in", "delete_after")


def job_params(values: Mapping[str, Any]) -> dict[str, Any]:
    """Send options as query parameters, checked; None means "use the queue's setting"."""
    params = check_all(SEND_OPTIONS, values, "send option")
    params["start_after"], params["start_in"] = params["start_after"] or (None, None)
    group = params.pop("group") or {}
    params["group_id"], params["group_tier"] = group.get("id"), group.get("tier")
    params["singleton_next_slot"] = bool(params["singleton_next_slot"])
    if params["singleton_next_slot"] and params["singleton_seconds"] is None:
        raise InvalidOptionError("singleton_next_slot needs singleton_seconds (the length of a slot)")
    return params


class BatchJob(NamedTuple):  # a tuple: made once per job, cheaper than a frozen dataclass
    data: str  # the payload as JSON
    params: dict[str, Any]  # its checked options but the key (one dict shared by every job giving the same)
    key: str | None  # its singleton_key, checked: usually one of its own per job


def checked_jobs(batch: list[Mapping[str, Any]], max_payload_bytes: int) -> list[BatchJob]:
    """Every job checked: payload encoded, options validated once per distinct set.

    Jobs of a batch mostly share their options (a priority, a retry limit);
    checking each set once was two thirds of such a batch's time. Sets that
    cannot be a dictionary key (a group, given as a mapping) are checked job
    by job.
    """
    seen: dict[tuple[tuple[str, Any], ...], dict[str, Any]] = {}
    check_key = SEND_OPTIONS["singleton_key"].validate
    jobs = []
    for job in batch:
        if not isinstance(job, Mapping):
            raise InvalidOptionError(f"each job given to insert must be a mapping, got {job!r}")
        given = {k: v for k, v in job.items() if k not in _PER_JOB}
        key = tuple(sorted(given.items()))
        try:
            params = seen.get(key)
        except TypeError:  # an unhashable value
            params = _params(given)
        else:
            if params is None:
                params = seen[key] = _params(given)
        data = options.to_json(job.get("data"), "data", max_payload_bytes)
        jobs.append(BatchJob(data, params, check_key(job.get("singleton_key"))))
    return jobs


def _params(given: Mapping[str, Any]) -> dict[str, Any]:
    params = job_params(given)
    if params.pop("singleton_next_slot"):
        raise InvalidOptionError("singleton_next_slot is not supported by insert; use send_debounced")
    return params


def data_only(job: object) -> bool:
    """Whether a job of a batch is given as data alone."""
    return isinstance(job, Mapping) and len(job) == 1 and "data" in job


def copyable_data(policy: str) -> bool:
    """Whether jobs given as data alone can go in by COPY: none has a key, which key_strict_fifo needs."""
    return policy not in POLICIES_THAT_REFUSE_SENDS and policy != Policy.KEY_STRICT_FIFO


def copy_data_rows(
    datas: list[str], ids: list[str], queue: Mapping[str, Any], now: datetime, origin: str | None = None
) -> str:
    """Jobs given as data alone (JSON) in COPY's text format: one tail for all of them (no key; the
    origin, JSON, or none)."""
    tail = _head(_params({}), queue, now) + NULL + "\t" + _origin_field(origin) + "\n"
    return "".join([f"{job_id}\t{_json_field(data)}{tail}" for job_id, data in zip(ids, datas, strict=True)])


def in_batch(text: str, batch_id: str) -> str:
    """COPY rows (copy_jobs' columns) with the batch's id added at the end of each (copy_batch_jobs').
    A row ends at its newline: COPY's text format escapes any within a field."""
    return text.replace("\n", "\t" + _field(batch_id) + "\n")


def copyable(jobs: list[BatchJob], policy: str) -> bool:
    """Whether the batch can go in by COPY (see the module's docstring)."""
    if policy in POLICIES_THAT_REFUSE_SENDS:
        return False
    distinct = {id(job.params): job.params for job in jobs}.values()
    if policy == Policy.KEY_STRICT_FIFO and any(job.key is None for job in jobs):
        return False  # the table's check refuses it: the statement says so as it always has
    return not any(p[name] is not None for p in distinct for name in _NOT_COPIED)


def copy_rows(
    jobs: list[BatchJob], ids: list[str], queue: Mapping[str, Any], now: datetime, origin: str | None = None
) -> str:
    """The batch in COPY's text format, in copy_jobs' columns; what precedes the key rendered once per
    distinct set of options, the origin (JSON, or none) once for the batch."""
    heads: dict[int, str] = {}
    end = "\t" + _origin_field(origin) + "\n"
    rows = []
    for job_id, job in zip(ids, jobs, strict=True):
        head = heads.get(id(job.params))
        if head is None:
            head = heads[id(job.params)] = _head(job.params, queue, now)
        rows.append(f"{job_id}\t{_json_field(job.data)}{head}{NULL if job.key is None else _field(job.key)}{end}")
    return "".join(rows)


def _origin_field(origin: str | None) -> str:
    return NULL if origin is None else _json_field(origin)


def _head(params: Mapping[str, Any], queue: Mapping[str, Any], now: datetime) -> str:
    """A row's columns from name to just before the key, in COPY's text format, between tabs."""
    return "\t" + "\t".join(map(_field, _values(params, queue, now))) + "\t"


def _values(params: Mapping[str, Any], queue: Mapping[str, Any], now: datetime) -> list[Any]:
    """A job's columns after id and data, as the insert statement computes them."""
    own = {name: queue[name] if params[name] is None else params[name] for name in _FROM_QUEUE}
    if params["start_after"] is not None:
        start_after = params["start_after"]
    else:
        start_after = now + timedelta(seconds=params["start_in"] or 0)
    retention = queue["retention"] if params["retention"] is None else params["retention"]
    values = {
        "name": queue["name"],
        "policy": queue["policy"],
        "priority": 0 if params["priority"] is None else params["priority"],
        **own,
        "start_after": start_after,
        "keep_until": start_after + timedelta(seconds=retention),
        "dead_letter": queue["dead_letter"],
        "group_id": params["group_id"],
        "group_tier": params["group_tier"],
    }
    return [values[name] for name in COPY_COLUMNS[:-1]]  # all but the key, which is the job's own


NULL = "\\N"  # COPY's text format


def _json_field(json_text: str) -> str:
    """JSON as a field of COPY's text format: backslashes doubled (JSON text has no raw tab or newline)."""
    return json_text.replace("\\", "\\\\") if "\\" in json_text else json_text


def _field(value: Any) -> str:
    """A value in COPY's text format."""
    if value is None:
        return NULL
    if value is True or value is False:
        return "t" if value else "f"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()  # aware: read the same whatever the session's DateStyle and TimeZone
    text = str(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text


def record_rest(params: Mapping[str, Any]) -> str:
    """A job's options (but its key) as the members after "data" of its json_to_recordset object."""
    record: dict[str, Any] = {k: v for k, v in params.items() if v is not None}
    if isinstance(record.get("start_after"), datetime):
        record["start_after"] = record["start_after"].isoformat()
    rest = options.to_json(record, "job options")
    return "," + rest[1:] if rest != "{}" else "}"
