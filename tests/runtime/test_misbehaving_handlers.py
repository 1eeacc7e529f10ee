"""Handlers may misbehave in any way Python allows; the worker records each failure, readably.

Generated batches mix well-behaved handlers with exceptions that cannot be printed, messages
Postgres cannot store, BaseExceptions, invalid snoozes, outputs that cannot be stored and jobs
changed under the worker. After one drain every job is completed or failed (none left active),
every failure carries a readable message, and the drain itself raised nothing.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobqueue import Job, JobError, Queue, Snooze
from runtime.config import WorkerSettings
from runtime.worker import drain

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": f"{ROOT / 'shared'}{os.pathsep}{ROOT}", "POWERTOOLS_TRACE_DISABLED": "true"}


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ itself fails")


class NotAString(Exception):
    def __str__(self) -> Any:
        return 5  # noqa: PLE0307 - the point: str() raises TypeError


class Unanswerable:
    def __bool__(self) -> bool:
        raise RuntimeError("should_retry cannot say")


def odd_job_error() -> JobError:
    error = JobError("odd", should_retry=False)
    error.should_retry = Unanswerable()  # type: ignore[assignment]
    return error


def bad_snooze() -> Snooze:
    snooze = Snooze(5)
    snooze.seconds = math.nan
    return snooze


def deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def raising(error: Callable[[], BaseException]) -> Callable[[Job], Any]:
    def handler(job: Job) -> Any:
        raise error()

    return handler


def mutating(job: Job) -> Any:
    job.id = "not-a-job"
    job.started_on = None
    return {"changed": True}


# name -> (handler, whether the job ends completed)
BEHAVIOURS: dict[str, tuple[Callable[[Job], Any], bool]] = {
    "returns": (lambda job: {"ok": 1}, True),
    "returns nothing": (lambda job: None, True),
    "changes its job": (mutating, True),
    "unprintable exception": (raising(Unprintable), False),
    "__str__ returns no string": (raising(NotAString), False),
    "NUL in its message": (raising(lambda: ValueError("bad\x00byte")), False),
    "lone surrogate in its message": (raising(lambda: ValueError("bad \ud800")), False),
    "SystemExit": (raising(lambda: SystemExit(3)), False),
    "KeyboardInterrupt": (raising(KeyboardInterrupt), False),
    "GeneratorExit": (raising(GeneratorExit), False),
    "bare BaseException": (raising(lambda: BaseException("base")), False),
    "JobError whose should_retry cannot be read": (raising(odd_job_error), False),
    "Snooze with an invalid delay": (raising(bad_snooze), False),
    "output with NUL": (lambda job: {"s": "a\x00"}, False),
    "output that is a set": (lambda job: {1, 2}, False),
    "output nested too deeply": (lambda job: deep(100_000), False),
    "output that is an object": (lambda job: object(), False),
    "output too big": (lambda job: "x" * 2_000_000, False),
}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(sorted(BEHAVIOURS)), min_size=1, max_size=15))
def test_every_misbehaving_handler_is_recorded_and_the_rest_are_unaffected(
    queue: Queue, conn: psycopg.Connection[Any], behaviours: list[str]
) -> None:
    conn.execute("DELETE FROM jobqueue.job")
    queue.create_queue("odd", retry_limit=0)
    ids = queue.insert("odd", [{"data": n} for n in range(len(behaviours))])

    def handler(job: Job) -> Any:
        return BEHAVIOURS[behaviours[job.data]][0](job)

    worker = WorkerSettings(
        queue="odd", batch_size=5, team_size=3, max_jobs=100, safety_margin_ms=0, expiry_margin_s=60, max_concurrency=1
    )
    result = drain(queue, worker, handler, lambda: 60_000)
    assert result.stopped == "empty"
    for number, job_id in enumerate(ids):
        job = queue.get_job(job_id)
        assert job is not None
        expected = "completed" if BEHAVIOURS[behaviours[number]][1] else "failed"
        assert job.state == expected, (behaviours[number], job.state, job.output)
        if expected == "failed":
            assert isinstance(job.output, dict) and isinstance(job.output.get("message"), str)
            assert job.output["message"].strip(), behaviours[number]


@pytest.mark.parametrize("behaviour", sorted(BEHAVIOURS))
def test_each_misbehaviour_alone(queue: Queue, behaviour: str) -> None:
    queue.create_queue("odd", retry_limit=0)
    [job_id] = queue.insert("odd", [{"data": 0}])
    worker = WorkerSettings(
        queue="odd", batch_size=5, team_size=1, max_jobs=10, safety_margin_ms=0, expiry_margin_s=60, max_concurrency=1
    )
    drain(queue, worker, BEHAVIOURS[behaviour][0], lambda: 60_000)
    job = queue.get_job(job_id)
    assert job is not None and job.state == ("completed" if BEHAVIOURS[behaviour][1] else "failed")


EXITS = """
import os, sys
from jobqueue import Queue
from runtime.config import WorkerSettings
from runtime.worker import drain

def handler(job):
    if job.data == 3:
        os._exit(7)  # the process ends here: no finally, no atexit, nothing reported after it
    return {"done": job.data}

settings = WorkerSettings(
    queue="odd", batch_size=10, team_size=1, max_jobs=100, safety_margin_ms=0, expiry_margin_s=60, max_concurrency=1
)
with Queue(sys.argv[1]) as queue:
    drain(queue, settings, handler, lambda: 60_000)
"""


def test_a_handler_that_exits_the_process_loses_no_job(queue: Queue, dsn: str) -> None:
    """A handler may end the whole process (os._exit, a segfault, the OOM killer): what it held stays
    active until its expiry, then goes back to the queue with a reason that says what may have happened."""
    queue.create_queue("odd", retry_limit=1)
    ids = queue.insert("odd", [{"data": n} for n in range(8)])
    command = [sys.executable, "-c", EXITS, dsn]
    exited = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, timeout=60, check=False)
    assert exited.returncode == 7, exited.stderr.decode()[-2000:]
    states = {job_id: queue.get_job(job_id).state for job_id in ids}  # type: ignore[union-attr]
    stranded = [job_id for job_id, state in states.items() if state == "active"]
    assert ids[3] in stranded and set(states.values()) <= {"completed", "active", "created"}
    # Nothing moves them before their expiry (the invocation's end + its margin) ...
    assert queue.expire() == (0, 0)
    # ... and at it, each is retried, with the reason on the job.
    assert queue.expire(now=datetime.now(UTC) + timedelta(seconds=180)) == (len(stranded), 0)
    job = queue.get_job(ids[3])
    assert job is not None and job.state == "retry" and job.errors
    assert "worker running it ended" in job.errors[-1]["message"]
