"""A running job's steps (stored once, returned on later attempts), its progress, and waiting for a job."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobqueue import InvalidOptionError, Job, JobError, JobState, Queue

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def _fetch_one(queue: Queue, name: str = "q", **more: Any) -> Job:
    [job] = queue.fetch(name, 1, **more)
    job.context = queue.context_for(name)
    return job


def test_a_step_runs_once_and_later_attempts_get_its_result(queue: Queue) -> None:
    queue.create_queue("q", retry_limit=3)
    queue.send("q", {})
    calls: list[str] = []

    def handler(job: Job, fail_at: str | None) -> str:
        first = job.step("reserve", lambda: calls.append("reserve") or {"slot": 7})
        second = job.step("create", lambda: calls.append("create") or f"pod on slot {first['slot']}")
        if fail_at == "after-create":
            raise RuntimeError("host went away")
        third = job.step("register", lambda: calls.append("register") or "registered")
        return f"{second}, {third}"

    job = _fetch_one(queue)
    with pytest.raises(RuntimeError):
        handler(job, "after-create")
    queue.fail("q", [job], "host went away")
    again = _fetch_one(queue)
    assert again.attempt == 2
    assert handler(again, None) == "pod on slot 7, registered"
    assert calls == ["reserve", "create", "register"]  # each ran once across both attempts
    queue.complete("q", [again])
    stored = queue.get_job(again.id)
    assert stored is not None and [s["name"] for s in stored.steps or []] == ["reserve", "create", "register"]
    assert [s["attempt"] for s in stored.steps or []] == [1, 1, 2]
    assert all(s["ms"] >= 0 and datetime.fromisoformat(s["at"]) for s in stored.steps or [])


def test_a_step_of_an_attempt_that_expired_meanwhile_is_not_stored(queue: Queue) -> None:
    """Fenced to the attempt: a run that outlived its expiry cannot write into the retry's steps."""
    queue.create_queue("q", retry_limit=2, expire_in=1)
    queue.send("q", {})
    stale = _fetch_one(queue, now=T0)
    queue.expire(now=T0 + timedelta(seconds=5))  # expired: back to retry
    fresh = _fetch_one(queue, now=T0 + timedelta(seconds=6))
    assert fresh.attempt == 2
    stale.step("late", lambda: "from the expired attempt")
    assert fresh.step("late", lambda: "from the retry") == "from the retry"
    stored = queue.get_job(fresh.id)
    assert stored is not None and [(s["name"], s["result"]) for s in stored.steps or []] == [("late", "from the retry")]


def test_a_step_result_that_is_not_json_fails_the_job_for_good(queue: Queue) -> None:
    queue.create_queue("q")
    queue.send("q", {})
    job = _fetch_one(queue)
    with pytest.raises(JobError, match="step 'odd' returned a result that cannot be stored") as info:
        job.step("odd", object)
    assert info.value.should_retry is False
    with pytest.raises(ValueError, match="a step's name must be a string"):
        job.step("", lambda: 1)


def test_outside_a_worker_a_step_just_runs() -> None:
    job = Job("00000000-0000-0000-0000-000000000001", "q", {})
    assert job.step("s", lambda: 42) == 42
    job.set_progress({"done": 1})  # nowhere to store it: nothing happens


def test_progress_is_written_at_most_once_a_second_and_flushed_at_the_end(queue: Queue) -> None:
    queue.create_queue("q")
    queue.send("q", {})
    job = _fetch_one(queue)
    context = job.context
    for done in range(1, 101):
        job.set_progress({"done": done, "total": 100})
    stored = queue.get_job(job.id)
    assert stored is not None and stored.progress == {"done": 1, "total": 100}  # the first write only
    context.flush()  # type: ignore[union-attr]
    stored = queue.get_job(job.id)
    assert stored is not None and stored.progress == {"done": 100, "total": 100}
    queue.complete("q", [job])
    queue.maintain(now=datetime.now(UTC) + timedelta(days=1))  # archived: kept there too
    archived = queue.get_job(job.id)
    assert archived is not None and archived.archived and archived.progress == {"done": 100, "total": 100}


def test_progress_that_is_not_json_is_refused_where_it_is_set(queue: Queue) -> None:
    queue.create_queue("q")
    queue.send("q", {})
    job = _fetch_one(queue)
    with pytest.raises(Exception, match="progress"):
        job.set_progress({"at": object()})


def test_wait_returns_the_job_once_it_finishes(queue: Queue, dsn: str) -> None:
    queue.create_queue("q")
    job_id = queue.send("q", {"n": 1})
    assert job_id is not None
    finished = threading.Event()

    def work() -> None:
        with Queue(dsn) as worker:
            jobs: list[Job] = []
            while not jobs:
                jobs = worker.fetch("q", 1)
            worker.complete("q", jobs, {"answer": 42})
            finished.set()

    thread = threading.Thread(target=work)
    thread.start()
    waited = queue.wait("q", job_id, timeout=30)
    thread.join()
    assert finished.is_set()
    assert waited is not None and waited.state is JobState.COMPLETED and waited.output == {"answer": 42}


def test_wait_gives_up_after_its_timeout_and_knows_no_stranger(queue: Queue) -> None:
    queue.create_queue("q")
    job_id = queue.send("q", {})
    assert job_id is not None
    waited = queue.wait("q", job_id, timeout=0)
    assert waited is not None and waited.state is JobState.CREATED
    assert queue.wait("q", "00000000-0000-0000-0000-000000000000", timeout=5) is None
    with pytest.raises(InvalidOptionError, match="wait timeout must be between 0 and 3600 seconds"):
        queue.wait("q", job_id, timeout=-1)
