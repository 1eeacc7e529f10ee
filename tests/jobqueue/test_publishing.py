"""Publish/subscribe: a published event is a job in every subscribed queue, sent in one statement."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from jobqueue import InvalidOptionError, Queue, UnknownQueueError


def test_an_event_reaches_every_subscribed_queue_with_its_settings(queue: Queue) -> None:
    queue.create_queue("emails", retry_limit=7)
    queue.create_queue("audit", retry_limit=0)
    queue.create_queue("other")
    queue.subscribe("pod.ready", "emails")
    queue.subscribe("pod.ready", "audit")
    queue.subscribe("pod.ready", "audit")  # again: harmless
    queue.subscribe("pod.gone", "other")
    sent = queue.publish("pod.ready", {"podId": "p-1"}, priority=3)
    assert set(sent) == {"emails", "audit"}
    for name, retry_limit in (("emails", 7), ("audit", 0)):
        job = queue.get_job(sent[name])
        assert job is not None and job.name == name and job.data == {"podId": "p-1"}
        assert (job.priority, job.retry_limit) == (3, retry_limit)
    assert queue.fetch("other") == []
    assert [(s.event, s.name) for s in queue.get_subscriptions()] == [
        ("pod.gone", "other"),
        ("pod.ready", "audit"),
        ("pod.ready", "emails"),
    ]
    assert queue.unsubscribe("pod.ready", "audit") is True
    assert queue.unsubscribe("pod.ready", "audit") is False
    assert set(queue.publish("pod.ready", {"podId": "p-2"})) == {"emails"}
    assert queue.publish("nobody.listens", {}) == {}


def test_publish_is_part_of_the_callers_transaction(queue: Queue, dsn: str, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("a")
    queue.create_queue("b")
    for name in ("a", "b"):
        queue.subscribe("e", name)
    with psycopg.connect(dsn) as own, own.transaction():
        assert len(queue.publish("e", {"n": 1}, conn=own)) == 2
        raise psycopg.Rollback
    assert conn.execute("SELECT count(*) FROM jobqueue.job WHERE name IN ('a', 'b')").fetchone() == (0,)


def test_a_queue_that_refuses_the_job_is_passed_over_and_a_deleted_queue_unsubscribed(queue: Queue) -> None:
    queue.create_queue("once", policy="singleton")
    queue.create_queue("short", policy="short")
    queue.create_queue("gone")
    for name in ("once", "short", "gone"):
        queue.subscribe("tick", name)
    assert set(queue.publish("tick", {}, singleton_key="k")) == {"once", "short", "gone"}
    queue.delete_queue("gone")
    # short admits one queued job per key: the second publish passes it over; singleton admits it.
    assert set(queue.publish("tick", {}, singleton_key="k")) == {"once"}
    assert [s.name for s in queue.get_subscriptions("tick")] == ["once", "short"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda q: q.subscribe("", "emails"), "event must be a string of 1-255 characters"),
        (lambda q: q.subscribe("e", "emials"), "emails"),
        (lambda q: q.publish("e\x00", {}), "NUL"),
        (lambda q: q.publish("e", {}, id="01a23bc9-4951-7325-9e90-6ff2deb74b57"), "takes no id"),
        (lambda q: q.publish("e", {}, priority="high"), "priority"),
    ],
)
def test_bad_input_is_refused_by_name(queue: Queue, call: Any, message: str) -> None:
    queue.create_queue("emails")
    with pytest.raises((InvalidOptionError, UnknownQueueError), match=message):
        call(queue)
