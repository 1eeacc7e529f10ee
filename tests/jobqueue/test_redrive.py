"""Redrive: dead letters back to the queues they came from, all or some, in one transaction."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from jobqueue import Queue, UnknownQueueError
from tests.helpers import job_row


def fail_for_good(queue: Queue, name: str, **send: Any) -> str:
    job_id = str(queue.send(name, send.pop("data", {}), retry_limit=0, **send))
    [job] = [j for j in queue.fetch(name, 100) if j.id == job_id]
    queue.fail(name, [job], "boom")
    return job_id


def test_redrive_moves_every_dead_letter_back_as_a_fresh_job(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("dead")
    queue.create_queue("emails", dead_letter="dead")
    originals = [fail_for_good(queue, "emails", data={"to": n}, priority=n) for n in range(3)]
    letters = [j.id for j in queue.find_jobs("dead")]
    result = queue.redrive("dead")
    assert sorted(result.moved) == sorted(letters) and result.skipped == {}
    fresh = queue.find_jobs("emails", state="created")
    assert sorted(j.data["to"] for j in fresh) == [0, 1, 2]
    assert {j.priority for j in fresh} == {0, 1, 2}  # the original's priority, while it is kept
    assert not set(originals) & {j.id for j in fresh}
    for letter, again in result.moved.items():
        row = job_row(conn, letter)
        assert (row["state"], row["output"]) == ("completed", {"redriven_as": again})
    assert queue.queue_size("dead") == 0
    assert queue.redrive("dead").moved == {}  # nothing left: nothing moved twice


def test_redrive_only_the_chosen_ids(queue: Queue) -> None:
    queue.create_queue("dead")
    queue.create_queue("emails", dead_letter="dead")
    for n in range(3):
        fail_for_good(queue, "emails", data={"n": n})
    chosen = queue.find_jobs("dead")[0].id
    assert list(queue.redrive("dead", [chosen]).moved) == [chosen]
    assert queue.queue_size("dead") == 2


def test_a_strict_fifo_failure_is_retried_in_its_place(queue: Queue) -> None:
    queue.create_queue("dead")
    queue.create_queue("pods", policy="key_strict_fifo", dead_letter="dead")
    failed = fail_for_good(queue, "pods", data={"action": "start"}, singleton_key="p1")
    later = str(queue.send("pods", {"action": "stop"}, singleton_key="p1"))
    assert queue.get_blocked_keys("pods") == ["p1"]
    result = queue.redrive("dead")
    assert list(result.moved.values()) == [failed]  # the original, retried: it unblocks its key
    assert queue.get_blocked_keys("pods") == []
    assert [j.id for j in queue.fetch("pods", 10)] == [failed]  # then the stop, in order
    assert later


def test_a_dead_letter_whose_queue_is_gone_stays(queue: Queue) -> None:
    queue.create_queue("dead")
    queue.create_queue("gone", dead_letter="dead")
    fail_for_good(queue, "gone")
    queue.delete_queue("gone")
    [letter] = queue.find_jobs("dead")
    result = queue.redrive("dead")
    assert result.moved == {} and "no longer exists" in result.skipped[letter.id]
    assert queue.queue_size("dead") == 1  # waiting again, as it was
    with pytest.raises(UnknownQueueError, match="did you mean 'dead'"):
        queue.redrive("daed")
