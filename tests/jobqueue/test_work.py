"""fetch, complete, fail, retries, dead letters, and the job operations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from jobqueue import InvalidOptionError, JobError, Queue
from tests.helpers import job_row, make_ready


@pytest.fixture
def work(queue: Queue) -> Queue:
    queue.create_queue("dead")
    queue.create_queue("work", retry_limit=2, retry_delay=60, dead_letter="dead")
    return queue


def test_fetch_orders_by_priority_then_creation(work: Queue) -> None:
    low = work.send("work", "low", priority=-1)
    first = work.send("work", "first")
    high = work.send("work", "high", priority=10)
    second = work.send("work", "second")
    assert [j.id for j in work.fetch("work", 10)] == [high, first, second, low]


def test_fetch_respects_batch_size_and_claims_each_job_once(work: Queue) -> None:
    work.insert("work", [{"data": n} for n in range(25)])
    first = work.fetch("work", 10)
    second = work.fetch("work", 10)
    third = work.fetch("work", 10)
    assert (len(first), len(second), len(third)) == (10, 10, 5)
    assert len({j.id for j in first + second + third}) == 25
    assert work.fetch("work", 10) == []


def test_fetched_job_is_active_with_a_deadline(work: Queue, conn: psycopg.Connection[Any]) -> None:
    work.send("work", {"podId": "p"}, expire_in=300)
    [job] = work.fetch("work")
    assert job.state == "active" and job.attempt == 1 and job.data == {"podId": "p"}
    assert job.started_on is not None and job.expire_at is not None
    assert job.expire_at - job.started_on == timedelta(seconds=300)
    assert job_row(conn, job.id)["state"] == "active"


def test_caller_deadline_caps_expiry(work: Queue) -> None:
    work.send("work", {}, expire_in=3600)
    deadline = datetime.now(UTC) + timedelta(seconds=90)
    [job] = work.fetch("work", deadline=deadline)
    assert job.expire_at == deadline


def test_complete_batch_with_outputs(work: Queue, conn: psycopg.Connection[Any]) -> None:
    work.insert("work", [{"data": n} for n in range(3)])
    jobs = work.fetch("work", 3)
    done = work.complete("work", jobs, outputs=[{"n": j.data} for j in jobs])
    assert sorted(done) == sorted(j.id for j in jobs)
    for job in jobs:
        row = job_row(conn, job.id)
        assert row["state"] == "completed" and row["output"] == {"n": job.data}
        assert row["completed_on"] is not None
    assert work.complete("work", jobs) == []  # already completed: nothing happens


def test_complete_by_bare_id_and_with_one_output(work: Queue) -> None:
    job_id = work.send("work", {})
    work.fetch("work")
    assert work.complete("work", str(job_id), output="ok") == [job_id]
    job = work.get_job(str(job_id))
    assert job is not None and job.output == "ok"


def test_complete_only_touches_active_jobs_of_that_queue(work: Queue) -> None:
    queued = work.send("work", {})
    other = work.send("dead", {})
    work.fetch("dead")
    assert work.complete("work", [str(queued), str(other)]) == []


def test_fail_with_attempts_left_goes_to_retry_after_delay(work: Queue, conn: psycopg.Connection[Any]) -> None:
    job_id = work.send("work", {})
    [job] = work.fetch("work")
    result = work.fail("work", [job], ValueError("host said 500"))
    assert result.retried == [job_id] and result.failed == []
    row = job_row(conn, str(job_id))
    assert row["state"] == "retry" and row["retry_count"] == 0  # retries started, as in pg-boss: none yet
    assert row["output"] == {"message": "host said 500", "type": "ValueError"}
    assert timedelta(seconds=59) < row["start_after"] - datetime.now(UTC) <= timedelta(seconds=60)
    assert work.fetch("work") == []  # not before its delay
    make_ready(conn, str(job_id))
    [again] = work.fetch("work")
    assert again.id == job_id and again.attempt == 2


def test_retries_run_out_then_failed_and_dead_lettered(work: Queue, conn: psycopg.Connection[Any]) -> None:
    job_id = str(work.send("work", {"podId": "p1"}))
    for _ in range(2):
        [job] = work.fetch("work")
        assert work.fail("work", [job], "boom").retried == [job_id]
        make_ready(conn, job_id)
    [job] = work.fetch("work")
    assert job.attempt == 3
    result = work.fail("work", [job], "boom for good")
    assert result.failed == [job_id] and result.dead_lettered == 1
    assert job_row(conn, job_id)["state"] == "failed"
    [dead] = work.fetch("dead")
    assert dead.data == {"podId": "p1"}
    assert dead.origin == {"dead_letter_of": {"queue": "work", "id": job_id, "error": {"message": "boom for good"}}}


def test_non_retryable_error_fails_at_once(work: Queue) -> None:
    job_id = work.send("work", {})
    [job] = work.fetch("work")
    error = JobError("validation: podId missing", should_retry=False)
    result = work.fail("work", [job], error, retryable=error.should_retry)
    assert result.failed == [job_id] and result.dead_lettered == 1


def test_fail_batch_with_per_job_errors_and_flags(work: Queue, conn: psycopg.Connection[Any]) -> None:
    work.insert("work", [{"data": n} for n in range(3)])
    jobs = work.fetch("work", 3)
    result = work.fail("work", jobs, errors=["a", "b", "c"], retryable=[True, False, True])
    assert sorted(result.retried) == sorted([jobs[0].id, jobs[2].id])
    assert result.failed == [jobs[1].id]
    assert job_row(conn, jobs[2].id)["output"] == {"message": "c"}
    with pytest.raises(InvalidOptionError, match="errors has 1 items for 3 jobs"):
        work.fail("work", jobs, errors=["x"])


def test_failure_of_one_job_leaves_the_others_alone(work: Queue, conn: psycopg.Connection[Any]) -> None:
    work.insert("work", [{"data": n} for n in range(4)])
    jobs = work.fetch("work", 4)
    work.fail("work", [jobs[0]], "poison", retryable=False)
    assert sorted(work.complete("work", jobs[1:])) == sorted(j.id for j in jobs[1:])
    states = dict(conn.execute("SELECT data::int, state::text FROM jobqueue.job WHERE name = 'work'").fetchall())
    assert sorted(states.values()) == ["completed", "completed", "completed", "failed"]


def test_exponential_backoff_with_jitter_and_cap(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("backoff", retry_limit=10, retry_delay=10, retry_backoff=True, retry_delay_max=100)
    job_id = str(queue.send("backoff", {}))
    delays = []
    for _ in range(6):
        [job] = queue.fetch("backoff")
        now = datetime.now(UTC)
        queue.fail("backoff", [job], "again", now=now)
        delays.append((job_row(conn, job_id)["start_after"] - now).total_seconds())
        make_ready(conn, job_id)
    # As pg-boss: retry n+1 waits between 1x and 2x of 10 * 2^n, the cap applied after the jitter.
    for n, delay in enumerate(delays):
        base = 10 * 2**n
        assert min(100, base) <= delay <= min(100, 2 * base), (n, delay)
    assert delays[-1] <= 100


def test_late_completion_cannot_overwrite_a_retry(work: Queue, conn: psycopg.Connection[Any]) -> None:
    job_id = str(work.send("work", {}, expire_in=5))
    [first_run] = work.fetch("work")
    assert work.expire(now=datetime.now(UTC) + timedelta(seconds=10)) == (1, 0)
    make_ready(conn, job_id)
    [second_run] = work.fetch("work")
    assert second_run.attempt == 2
    assert work.complete("work", [first_run]) == []  # the first run is fenced off
    assert work.fail("work", [first_run], "late").retried == []
    assert job_row(conn, job_id)["state"] == "active"
    assert work.complete("work", [second_run]) == [job_id]


def test_cancel_resume_and_delete(work: Queue, conn: psycopg.Connection[Any]) -> None:
    queued = str(work.send("work", {}))
    active = str(work.send("work", {}))
    conn.execute("UPDATE jobqueue.job SET priority = 5 WHERE id = %s", (active,))
    [job] = work.fetch("work")
    assert job.id == active
    assert sorted(work.cancel("work", [queued, active])) == sorted([queued, active])
    assert work.complete("work", [job]) == []  # cancelled while running: the result is ignored
    assert work.cancel("work", [queued]) == []
    assert job_row(conn, queued)["state"] == "cancelled"
    assert work.resume("work", [queued]) == [queued]
    row = job_row(conn, queued)
    assert row["state"] == "created" and row["completed_on"] is None
    assert sorted(work.delete_job("work", [queued, active])) == sorted([queued, active])
    assert work.get_job(queued) is None


def test_retry_a_failed_job_gives_fresh_attempts(work: Queue, conn: psycopg.Connection[Any]) -> None:
    job_id = str(work.send("work", {}, retry_limit=0))
    [job] = work.fetch("work")
    work.fail("work", [job], "boom")
    assert work.retry("work", [job_id]) == [job_id]
    row = job_row(conn, job_id)
    assert (row["state"], row["retry_count"], row["started_on"]) == ("created", 0, None)
    assert work.retry("work", [job_id]) == []  # not failed any more
    [again] = work.fetch("work")
    assert again.id == job_id


def test_retry_and_resume_reach_into_the_archive(work: Queue) -> None:
    failed = str(work.send("work", {}, retry_limit=0))
    cancelled = str(work.send("work", {}))
    [job] = work.fetch("work")
    work.fail("work", [job], "boom")
    work.cancel("work", [cancelled])
    assert work.archive(now=datetime.now(UTC) + timedelta(days=1)) == 2
    archived = work.get_job(failed)
    assert archived is not None and archived.archived and archived.state == "failed"
    assert work.retry("work", [failed]) == [failed]
    assert work.resume("work", [cancelled]) == [cancelled]
    for job_id in (failed, cancelled):
        restored = work.get_job(job_id)
        assert restored is not None and not restored.archived and restored.state == "created"


def test_get_job_and_find_jobs(work: Queue) -> None:
    a = str(work.send("work", {"podId": "a", "tier": "small"}, singleton_key="a"))
    b = str(work.send("work", {"podId": "b", "tier": "large"}))
    [job] = work.fetch("work")
    work.complete("work", [job])
    got = work.get_job(a, name="work")
    assert got is not None and got.data["podId"] == "a"
    assert work.get_job(a, name="dead") is None
    assert [j.id for j in work.find_jobs("work", data={"tier": "large"})] == [b]
    assert [j.id for j in work.find_jobs("work", key="a")] == [a]
    assert [j.id for j in work.find_jobs("work", state="created")] == [b]
    assert len(work.find_jobs("work", state=["created", "completed"])) == 2
    with pytest.raises(InvalidOptionError, match="unknown job state 'done'"):
        work.find_jobs("work", state="done")
    with pytest.raises(InvalidOptionError, match="job id must be a UUID"):
        work.get_job("42")


def test_failed_jobs_lists_hot_and_archived(work: Queue) -> None:
    ids = work.insert("work", [{"data": n, "retry_limit": 0} for n in range(3)])
    work.fail("work", work.fetch("work", 3), "boom")
    work.archive(now=datetime.now(UTC) + timedelta(days=1))
    work.send("work", {}, retry_limit=0)
    work.fail("work", work.fetch("work"), "boom")
    failed = work.failed_jobs(limit=10, name="work")
    assert len(failed) == 4
    assert {j.id for j in failed if j.archived} == set(ids)
    assert len(work.failed_jobs(limit=2)) == 2


def test_release_hands_back_unstarted_jobs_without_counting_an_attempt(queue: Queue) -> None:
    queue.create_queue("work", retry_limit=0)
    queue.insert("work", [{"data": n} for n in range(3)])
    jobs = queue.fetch("work", 3)
    released = queue.release("work", jobs[:2])
    assert sorted(released) == sorted(j.id for j in jobs[:2])
    assert queue.release("work", jobs[:2]) == []  # only the attempt that was fetched
    queue.complete("work", jobs[2:])
    assert queue.release("work", jobs[2:]) == []  # a finished job stays finished
    again = queue.fetch("work", 3)
    assert sorted(j.id for j in again) == sorted(released)
    assert all(j.retry_count == 0 for j in again)  # no attempt spent, though retry_limit is 0
    with pytest.raises(InvalidOptionError, match="Job objects"):
        queue.release("work", [again[0].id])  # type: ignore[list-item]
