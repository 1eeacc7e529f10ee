"""What a send or an insert writes, worked out before any statement runs.

`Queue` (jobqueue.sending) and `AsyncQueue` (jobqueue.asyncqueue) run the same plans with their
own connection, one blocking and one async: the options are checked, the rows rendered and the
statement chosen here, once for both, so that the two differ only in how they wait.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jobqueue import options, tracing
from jobqueue.errors import InvalidOptionError
from jobqueue.ids import new_id, new_ids
from jobqueue.rows import (
    BatchJob,
    checked_jobs,
    copy_data_rows,
    copy_rows,
    copyable,
    copyable_data,
    data_only,
    in_batch,
    job_params,
    record_rest,
)
from jobqueue.settings import POLICIES_THAT_REFUSE_SENDS, BatchSpec, SendOptions


def origin() -> str | None:
    """The origin a job sent now carries: the current span's trace context (jobqueue.tracing)."""
    trace = tracing.current()
    return None if trace is None else options.to_json({tracing.TRACE_KEY: trace}, "origin")


def send_params(name: str, data: str, send_options: SendOptions, trace: str | None) -> tuple[dict[str, Any], bool]:
    """The `send` statement's parameters for one job (its id made here), and whether a refused
    throttled send takes the next slot (singleton_next_slot)."""
    params = job_params(send_options)
    next_slot = bool(params.pop("singleton_next_slot"))
    job_id = str(params["id"]) if params["id"] is not None else new_id()
    params.update(id=job_id, name=name, data=data, origin=trace, singleton_offset=None)
    return params, next_slot


def throttled(send_options: SendOptions, seconds: int, key: str | None, *, next_slot: bool) -> SendOptions:
    """send_throttled's options (at most one job per slot and key), and send_debounced's (next_slot:
    a send that finds its slot taken goes into the next one)."""
    options_: SendOptions = {**send_options, "singleton_seconds": seconds, "singleton_key": key}
    if next_slot:
        options_["singleton_next_slot"] = True
    return options_


def publish_params(event: str, data: str, send_options: SendOptions) -> dict[str, Any]:
    """The `publish` statement's parameters: send's, but no id (each subscribed queue's job has its own)."""
    if send_options.get("id") is not None:
        raise InvalidOptionError("publish sends one job per subscribed queue: it takes no id")
    params = job_params(send_options)
    params.pop("singleton_next_slot")
    params.update(event=options.event_name(event), data=data, origin=origin(), singleton_offset=None)
    return params


def on_finish_refusal(name: str, policy: str) -> InvalidOptionError | None:
    """Why a batch's on_finish queue of this policy is refused, if it is."""
    if policy in POLICIES_THAT_REFUSE_SENDS:
        return InvalidOptionError(
            f"batch on_finish queue {name!r} is {policy}: its policy could refuse the job a batch sends; "
            "use a standard or singleton queue"
        )
    return None


@dataclass(slots=True)
class InsertPlan:
    """An insert's jobs, checked: as data alone (JSON) when no job gives an option, else one by one."""

    name: str
    count: int
    datas: list[str] | None  # every job's data as JSON, when the jobs give data alone
    checked: list[BatchJob]  # else the jobs with their options
    origin: str | None
    batch_id: str | None = None
    on_finish: str | None = None  # the batch's on_finish queue
    on_finish_job: str | None = None  # {"name", "data"} as JSON, for make_batch

    def dead_letters(self) -> set[str]:
        """The dead letter queues the jobs name, which must exist (the insert statement's path)."""
        return {str(job.params["dead_letter"]) for job in self.checked if job.params["dead_letter"] is not None}

    def batch_row(self, ids: list[str]) -> dict[str, Any]:
        """make_batch's parameters, once the jobs are in."""
        if not ids:
            raise InvalidOptionError(f"batch {self.batch_id!r}: the queue's policy refused every job of it")
        return {"id": self.batch_id, "name": self.name, "total": len(ids), "on_finish": self.on_finish_job}


def plan_insert(
    name: str, jobs: Iterable[Mapping[str, Any]], batch: BatchSpec | None, max_payload_bytes: int, to_json: Any
) -> InsertPlan | None:
    """The insert's plan, or None when there is nothing to insert (and no batch to refuse)."""
    options.queue_name(name)
    spec = None if batch is None else options.batch_spec(batch, max_payload_bytes)
    batch_jobs: list[Mapping[str, Any]] = list(jobs)  # checked below, key by key: callers may pass any mapping
    if not batch_jobs:
        if spec is not None:
            raise InvalidOptionError(f"batch {spec[0]!r} has no job: a batch needs at least one")
        return None
    # Jobs given as data alone, the common case, skip the per-job bookkeeping of options.
    alone = all(data_only(job) for job in batch_jobs)
    plan = InsertPlan(
        name=name,
        count=len(batch_jobs),
        datas=[to_json(job["data"], "data") for job in batch_jobs] if alone else None,
        checked=[] if alone else checked_jobs(batch_jobs, max_payload_bytes),
        origin=origin(),
    )
    if spec is not None:
        plan.batch_id, plan.on_finish, plan.on_finish_job = spec
    return plan


@dataclass(slots=True, frozen=True)
class InsertStatement:
    """The statement that writes a planned insert: rows returning ids, or a COPY of rows whose ids
    were made here."""

    query: str
    params: dict[str, Any] | None = None
    copy_text: str | None = None
    ids: list[str] | None = None


def insert_statement(plan: InsertPlan, queue: Mapping[str, Any]) -> InsertStatement:
    """By COPY, unless a job needs what only the INSERT statement does (a policy that may refuse it,
    its own id, a throttle slot, a dead letter queue: jobqueue/rows.py); `queue` is copy_queue's row."""
    policy = queue["policy"]
    if plan.datas is not None and not copyable_data(policy):
        array = "[" + ",".join(plan.datas) + "]"
        params = {"name": plan.name, "data": array, "batch_id": plan.batch_id, "origin": plan.origin}
        return InsertStatement("insert_data", params)
    if plan.datas is None and not copyable(plan.checked, policy):
        return InsertStatement("insert", insert_records(plan))
    ids = new_ids(plan.count)
    if plan.datas is not None:
        text = copy_data_rows(plan.datas, ids, queue, queue["now"], plan.origin)
    else:
        text = copy_rows(plan.checked, ids, queue, queue["now"], plan.origin)
    if plan.batch_id is None:
        return InsertStatement("copy_jobs", copy_text=text, ids=ids)
    return InsertStatement("copy_batch_jobs", copy_text=in_batch(text, plan.batch_id), ids=ids)


def insert_records(plan: InsertPlan) -> dict[str, Any]:
    """The insert statement's parameters: the jobs as one JSON array of records."""
    rests: dict[int, str] = {}
    ids = iter(new_ids(plan.count))  # made here, as for a send: the database's uuid_v7() costs more
    records = []
    for job in plan.checked:
        rest = rests.get(id(job.params))
        if rest is None:
            rest = rests[id(job.params)] = record_rest(job.params)
        head = '{"data":' if job.params["id"] is not None else '{"id":"' + next(ids) + '","data":'
        key = "" if job.key is None else ',"singleton_key":' + options.to_json(job.key, "singleton_key")
        records.append(head + job.data + key + rest)
    return {"name": plan.name, "jobs": "[" + ",".join(records) + "]", "batch_id": plan.batch_id, "origin": plan.origin}
