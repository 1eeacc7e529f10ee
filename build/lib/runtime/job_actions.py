"""What an operator may do to one job (retry, cancel, resume) or queue (pause, resume), for every front end alike.

The API, the dashboard and the `jobs` CLI call `apply`: look the job up, check
that its state allows the action (the states come from the queue core's
transitions), do it, and say exactly why when it cannot be done.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any, Final

from jobqueue import CANCELLABLE, RESUMABLE, RETRYABLE, InvalidOptionError, Job, JobQueueError, JobState, Queue
from jobqueue.options import job_id


class Action(StrEnum):
    RETRY = "retry"  # failed -> created, with a fresh set of attempts
    CANCEL = "cancel"  # created, retry or active -> cancelled
    RESUME = "resume"  # cancelled -> created


ALLOWED: Final[Mapping[Action, frozenset[JobState]]] = {
    Action.RETRY: RETRYABLE,
    Action.CANCEL: CANCELLABLE,
    Action.RESUME: RESUMABLE,
}
DONE: Final[Mapping[Action, str]] = {
    Action.RETRY: "Job {id} is queued again with a fresh set of attempts.",
    Action.CANCEL: "Job {id} is cancelled.",
    Action.RESUME: "Job {id} is queued again.",
}
_OPERATIONS: Final[Mapping[Action, Callable[[Queue, Job], list[str]]]] = {
    Action.RETRY: lambda queue, job: queue.retry(job.name, [job.id]),
    Action.CANCEL: lambda queue, job: queue.cancel(job.name, [job.id]),
    Action.RESUME: lambda queue, job: queue.resume(job.name, [job.id]),
}


class ActionRefused(JobQueueError):
    """The action cannot be applied; `status` is the HTTP status that says why."""

    status = 409


class JobNotFound(ActionRefused):
    status = 404


class UnknownAction(ActionRefused):
    status = 404


class RefusedByPolicy(ActionRefused):
    """A send added no job: the queue's policy refused it (see refused_by_policy)."""


def refused_by_policy(queue_name: str) -> str:
    """Why a send added no job, in the same words on the API and the CLI."""
    return f"the policy of queue {queue_name!r} refused the job: one with its key is already queued or active"


def action(name: str) -> Action:
    try:
        return Action(name)
    except ValueError:
        raise UnknownAction(f"unknown action {name!r}; known: {', '.join(Action)}") from None


def allowed_states(chosen: Action) -> str:
    return " or ".join(state for state in JobState if state in ALLOWED[chosen])


def apply(queue: Queue, chosen: Action, id: str) -> Job:
    """Apply `chosen` to the job `id`; return the job as it is now. Raises ActionRefused (or PolicyConflictError)."""
    job = queue.get_job(job_id(id))
    if job is None:
        raise JobNotFound(f"no job {id}")
    if job.state not in ALLOWED[chosen]:
        raise ActionRefused(
            f"job {job.id} is {job.state}: cannot {chosen} it; to {chosen} a job it must be {allowed_states(chosen)}"
        )
    if not _OPERATIONS[chosen](queue, job):
        raise ActionRefused(f"job {job.id} changed meanwhile or its queue's policy refused it; reload and try again")
    return queue.get_job(job.id) or job


class QueueAction(StrEnum):
    PAUSE = "pause"  # fetches claim nothing; sends and schedules go on
    RESUME = "resume"
    REDRIVE = "redrive"  # a dead letter queue's jobs back to the queues they came from


QUEUE_DONE: Final[Mapping[QueueAction, str]] = {
    QueueAction.PAUSE: "paused",
    QueueAction.RESUME: "resumed",
    QueueAction.REDRIVE: "redriven",
}


def queue_action(name: str) -> QueueAction:
    try:
        return QueueAction(name)
    except ValueError:
        raise UnknownAction(f"unknown queue action {name!r}; known: {', '.join(QueueAction)}") from None


def apply_to_queue(queue: Queue, chosen: QueueAction, name: str, ids: list[str] | None = None) -> dict[str, Any]:
    """Apply `chosen` to the queue `name` (UnknownQueueError if there is none); what it did.

    pause, resume: {"paused": whether it is paused now}. redrive (a dead letter queue's jobs, all
    or `ids`, back to their source queues): {"moved": {dead letter: job}, "skipped": {dead letter: why}}.
    """
    if chosen is QueueAction.REDRIVE:
        result = queue.redrive(name, ids)
        return {"moved": result.moved, "skipped": result.skipped}
    queue.require_queue(name)
    if chosen is QueueAction.PAUSE:
        queue.pause_queue(name)
    else:
        queue.resume_queue(name)
    return {"paused": chosen is QueueAction.PAUSE}


BULK_LIMIT: Final = 1000  # jobs one bulk action takes at most
_BULK: Final[Mapping[str, Callable[[Queue, str, list[str]], list[str]]]] = {
    "retry": lambda queue, name, ids: queue.retry(name, ids),
    "cancel": lambda queue, name, ids: queue.cancel(name, ids),
    "delete": lambda queue, name, ids: queue.delete_job(name, ids),
}


def filters(state: str | None, key: str | None, data: str | None) -> dict[str, Any]:
    """A job list's filters (the dashboard's query string) as find_jobs arguments; bad JSON is refused."""
    found: dict[str, Any] = {"state": state or None, "key": key or None, "data": None}
    if data:
        try:
            value = json.loads(data)
        except json.JSONDecodeError as exc:
            raise InvalidOptionError(f"data filter is not JSON: {exc.msg} at position {exc.pos}") from None
        if not isinstance(value, dict):
            raise InvalidOptionError("data filter must be a JSON object (jobs whose data contains it)")
        found["data"] = value
    return found


def bulk(queue: Queue, name: str, chosen: str, matching: Mapping[str, Any]) -> int:
    """retry, cancel or delete the jobs of `name` that match the filters (at most BULK_LIMIT); returns how many."""
    if chosen not in _BULK:
        raise UnknownAction(f"unknown bulk action {chosen!r}; known: {', '.join(_BULK)}")
    queue.require_queue(name)
    allowed = {"retry": RETRYABLE, "cancel": CANCELLABLE}.get(chosen)
    jobs = queue.find_jobs(name, limit=BULK_LIMIT, **matching)
    ids = [job.id for job in jobs if allowed is None or job.state in allowed]
    return len(_BULK[chosen](queue, name, ids)) if ids else 0
