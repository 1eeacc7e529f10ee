"""Snooze: run a job again later without using up an attempt, a bounded number of times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from jobqueue import InvalidOptionError, JobState, Queue, Snooze
from tests.helpers import job_row, make_ready


def test_a_snoozed_job_runs_again_later_on_the_same_attempt(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("boot", retry_limit=1)
    job_id = queue.send("boot", {"pod": "p"})
    [job] = queue.fetch("boot")
    before = datetime.now(UTC)
    result = queue.snooze("boot", [job], 30)
    assert result.snoozed == [job_id] and result.failed == []
    row = job_row(conn, str(job_id))
    assert (row["state"], row["retry_count"], row["snoozes"], row["started_on"]) == ("retry", 0, 1, None)
    assert before + timedelta(seconds=29) < row["start_after"] < before + timedelta(seconds=31)
    assert queue.fetch("boot") == []  # not before its time
    make_ready(conn, str(job_id))
    [again] = queue.fetch("boot")
    assert again.retry_count == 0  # the snoozed run was not an attempt: still its first
    # ... so a failure now still has its one retry left.
    assert queue.fail("boot", [again], "boom").retried == [job_id]


def test_snoozing_too_often_fails_the_job_for_good(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("dead")
    queue.create_queue("boot", retry_limit=5, dead_letter="dead")
    job_id = str(queue.send("boot", {}))
    for _ in range(2):
        assert queue.snooze("boot", queue.fetch("boot"), 1, max_snoozes=2).snoozed == [job_id]
        make_ready(conn, job_id)
    worn = queue.snooze("boot", queue.fetch("boot"), 1, max_snoozes=2)
    assert worn.snoozed == [] and worn.failed == [job_id]
    failed = queue.get_job(job_id)
    assert failed is not None and failed.state == JobState.FAILED
    assert failed.output["message"] == "snoozed 2 times, the most a job may"
    assert queue.queue_size("dead") == 1  # to its dead letter queue, as any failure


def test_only_the_attempt_fetched_is_snoozed(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("boot", retry_limit=2)
    job_id = str(queue.send("boot", {}))
    [stale] = queue.fetch("boot")
    conn.execute("UPDATE jobqueue.job SET expire_at = now() - interval '1 second' WHERE id = %s", (job_id,))
    queue.expire()
    make_ready(conn, job_id)
    [current] = queue.fetch("boot")
    assert queue.snooze("boot", [stale], 10).snoozed == []  # an expired attempt's snooze changes nothing
    assert job_row(conn, job_id)["state"] == "active"
    assert queue.snooze("boot", [current], 10).snoozed == [job_id]


def test_a_snoozed_strict_fifo_job_holds_back_its_keys_later_jobs(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("pods", policy="key_strict_fifo")
    first = str(queue.send("pods", {"n": 1}, singleton_key="p"))
    second = str(queue.send("pods", {"n": 2}, singleton_key="p"))
    other = str(queue.send("pods", {"n": 3}, singleton_key="q"))
    [head, _] = sorted(queue.fetch("pods", 10), key=lambda j: j.data["n"])
    queue.snooze("pods", [head], 60)
    assert queue.fetch("pods", 10) == []  # p waits for its snoozed head; q's job is active
    make_ready(conn, first)
    [again] = queue.fetch("pods", 10)
    assert again.id == first  # the snoozed job first, then the one sent after it
    queue.complete("pods", [again])
    assert [j.id for j in queue.fetch("pods", 10)] == [second]
    assert other


@pytest.mark.parametrize("seconds", [0, -1, True, "5", 8 * 86_400])
def test_snooze_seconds_are_checked(queue: Queue, seconds: Any) -> None:
    queue.create_queue("boot")
    queue.send("boot", {})
    jobs = queue.fetch("boot")
    with pytest.raises(InvalidOptionError, match="snooze seconds must be between 0 and 604800"):
        queue.snooze("boot", jobs, seconds)
    with pytest.raises(ValueError, match="Snooze needs seconds"):
        Snooze(seconds)
