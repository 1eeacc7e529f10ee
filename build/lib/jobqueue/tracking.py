"""A running job's record of itself: the steps its handler ran (`Job.step`), each stored once, and
how far it got (`Job.set_progress`).

A step's result is stored with the job when its function returns; a later attempt of the job (after
a failure, an expiry, a killed invocation, a snooze) finds it there and is handed the result
instead of running the function again. Progress is a JSON value the handler sets as often as it
likes; whoever runs the job writes it at most once a second (the runtime's worker: one statement
for all its running jobs). Both are fenced to the attempt that ran: a job that expired and was
fetched again meanwhile keeps what its new attempt writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from psycopg.rows import tuple_row

from jobqueue import options
from jobqueue.client import Client, Conn
from jobqueue.errors import InvalidOptionError, JobError
from jobqueue.models import Job, JobContext

T = TypeVar("T")
# A job's progress is written at most this often by whoever runs it.
PROGRESS_EVERY_S: Final = 1.0


def stored_step(steps: Sequence[dict[str, Any]] | None, name: str) -> dict[str, Any] | None:
    """The step `name` of a job's stored steps, if it ran."""
    return next((entry for entry in steps or () if entry.get("name") == name), None)


def run_step(job: Job, name: str, fn: Callable[[], T], store: Callable[[dict[str, Any]], None]) -> T:
    """Run `fn` as the step `name` of `job` and hand its record to `store` (which makes it durable
    before the step counts as done); a result that is not JSON fails the job for good."""
    started = time.perf_counter()
    result = fn()
    try:
        options.to_json(result, f"step {name!r} result")
    except Exception as exc:  # PayloadError, or whatever an odd object's serialisation raised
        raise JobError(f"step {name!r} returned a result that cannot be stored: {exc}", should_retry=False) from None
    store(
        {
            "name": name,
            "result": result,
            "at": datetime.now(UTC).isoformat(),
            "ms": round((time.perf_counter() - started) * 1000, 3),
            "attempt": job.attempt,
        }
    )
    return result


def stepped(
    job: Job, name: str, fn: Callable[[], T], steps: list[dict[str, Any]], record: Callable[[dict[str, Any]], bool]
) -> T:
    """Step `name` of `job`: its result among the job's stored `steps`, else `fn` run and its record
    handed to `record`, which stores it and says whether it did (not when the attempt is over: the
    job's completion fails the same way); a stored record joins `steps`."""
    if (done := stored_step(steps, name)) is not None:
        result: T = done["result"]
        return result

    def store(entry: dict[str, Any]) -> None:
        if record(entry):
            steps.append(entry)

    return run_step(job, name, fn, store)


class Tracking(Client):
    def job_steps(self, name: str, job: Job, conn: Conn = None) -> list[dict[str, Any]]:
        """The steps `job`'s handler ran so far, in any attempt."""
        params = {"id": options.job_id(job.id), "name": options.queue_name(name)}
        steps = self.db.scalar("job_steps", params, conn)
        return list(steps or [])

    def record_step(self, name: str, job: Job, step: dict[str, Any], conn: Conn = None) -> bool:
        """Store a step `job`'s handler finished (run_step's record); False when the attempt is no
        longer active (the job expired and was fetched again, was cancelled or deleted)."""
        if job.started_on is None:
            raise InvalidOptionError("record_step takes a Job that fetch returned")
        params = {
            "id": options.job_id(job.id),
            "name": options.queue_name(name),
            "started": job.started_on,
            "step": self._json(step, "step"),
        }
        return bool(self.db.rows("record_step", params, conn, tuple_row))

    def record_progress(self, name: str, progress: Sequence[tuple[Job, Any]], conn: Conn = None) -> list[str]:
        """Store how far running jobs got, one statement for all; returns the ids written (a job
        whose attempt is no longer active is left alone)."""
        running = [(job, value) for job, value in progress if job.started_on is not None]
        if not running:
            return []
        params = {
            "name": options.queue_name(name),
            "ids": [job.id for job, _ in running],
            "started": [job.started_on for job, _ in running],
            "values": [self._json(value, "progress") for _, value in running],
        }
        return [row[0] for row in self.db.rows("record_progress", params, conn, tuple_row)]

    def context_for(self, name: str, conn: Conn = None) -> JobContext:
        """A JobContext that writes at once through this Queue: for a loop of your own that fetches
        and runs jobs on one thread (the runtime's worker has its own, for its handler threads)."""
        return DirectContext(self, name, conn)


class DirectContext:
    """Steps stored as they finish, progress at most once a second per job, through one Queue.

    Call `flush()` before completing the jobs: it writes each job's last progress not yet written.
    """

    def __init__(self, queue: Tracking, name: str, conn: Conn) -> None:
        self._queue, self._name, self._conn = queue, name, conn
        self._steps: dict[str, list[dict[str, Any]]] = {}
        self._progress_at: dict[str, float] = {}
        self._pending: dict[str, tuple[Job, Any]] = {}

    def step(self, job: Job, name: str, fn: Callable[[], Any]) -> Any:
        steps = self._steps.get(job.id)
        if steps is None:
            steps = self._steps[job.id] = self._queue.job_steps(self._name, job, self._conn)
        return stepped(job, name, fn, steps, lambda entry: self._queue.record_step(self._name, job, entry, self._conn))

    def set_progress(self, job: Job, value: Any) -> None:
        options.to_json(value, "progress")  # refused here, in the handler, not when written
        now = time.monotonic()
        if now - self._progress_at.get(job.id, -PROGRESS_EVERY_S) < PROGRESS_EVERY_S:
            self._pending[job.id] = (job, value)
            return
        self._progress_at[job.id] = now
        self._pending.pop(job.id, None)
        self._queue.record_progress(self._name, [(job, value)], self._conn)

    def flush(self) -> None:
        """Write the progress set since the last write, for every job."""
        pending, self._pending = list(self._pending.values()), {}
        self._queue.record_progress(self._name, pending, self._conn)
