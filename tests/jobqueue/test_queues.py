from __future__ import annotations

from datetime import timedelta

import pytest

from jobqueue import (
    InvalidNameError,
    InvalidOptionError,
    Queue,
    QueueInUseError,
    UnknownQueueError,
)


def test_create_queue_with_defaults_and_idempotence(queue: Queue) -> None:
    assert queue.create_queue("emails") is True
    assert queue.create_queue("emails", retry_limit=9) is False  # exists: left unchanged
    info = queue.get_queue("emails")
    assert info is not None
    assert (info.policy, info.retry_limit, info.retry_delay, info.retry_backoff) == ("standard", 2, 0, False)
    assert (info.expire_in, info.retention, info.archive_after, info.delete_after) == (900, 14 * 86400, 3600, 7 * 86400)


def test_create_queue_with_every_option(queue: Queue) -> None:
    queue.create_queue("dead")
    queue.create_queue(
        "work",
        policy="short",
        retry_limit=3,
        retry_delay=60,
        retry_backoff=True,
        retry_delay_max=600,
        expire_in=timedelta(hours=1),
        retention=3600,
        archive_after=60,
        delete_after=86400,
        dead_letter="dead",
    )
    info = queue.get_queue("work")
    assert info is not None
    assert info.policy == "short"
    assert (info.retry_limit, info.retry_delay, info.retry_backoff, info.retry_delay_max) == (3, 60, True, 600)
    assert (info.expire_in, info.retention, info.archive_after, info.delete_after) == (3600, 3600, 60, 86400)
    assert info.dead_letter == "dead"


def test_update_queue_changes_only_given_settings(queue: Queue) -> None:
    queue.create_queue("dead")
    queue.create_queue("work", retry_limit=5, dead_letter="dead")
    queue.update_queue("work", retry_delay=30, retry_delay_max=None)
    info = queue.get_queue("work")
    assert info is not None
    assert (info.retry_limit, info.retry_delay, info.dead_letter) == (5, 30, "dead")
    queue.update_queue("work", dead_letter=None)
    info = queue.get_queue("work")
    assert info is not None and info.dead_letter is None


def test_update_unknown_queue_or_setting(queue: Queue) -> None:
    with pytest.raises(UnknownQueueError, match="'nope'"):
        queue.update_queue("nope", retry_limit=1)
    queue.create_queue("work")
    with pytest.raises(InvalidOptionError, match="colour"):
        queue.update_queue("work", colour="red")
    with pytest.raises(UnknownQueueError, match="dead letter queue 'missing'"):
        queue.update_queue("work", dead_letter="missing")


def test_dead_letter_queue_must_exist_and_differ(queue: Queue) -> None:
    with pytest.raises(UnknownQueueError, match="dead letter queue 'missing'"):
        queue.create_queue("work", dead_letter="missing")
    with pytest.raises(InvalidOptionError, match="its own dead letter"):
        queue.create_queue("work", dead_letter="work")
    assert queue.get_queue("work") is None


def test_get_queues_and_delete_queue(queue: Queue) -> None:
    queue.create_queue("b")
    queue.create_queue("a")
    queue.send("a", {"n": 1})
    queue.send("a", {"n": 2})
    queue.schedule("a", "* * * * *")
    assert [q.name for q in queue.get_queues()] == ["a", "b"]
    assert queue.delete_queue("a") == 2
    assert queue.get_queue("a") is None
    assert queue.get_schedules() == []
    with pytest.raises(UnknownQueueError):
        queue.delete_queue("a")


def test_cannot_delete_a_dead_letter_queue_in_use(queue: Queue) -> None:
    queue.create_queue("dead")
    queue.create_queue("work", dead_letter="dead")
    with pytest.raises(QueueInUseError, match="dead letter queue of work"):
        queue.delete_queue("dead")
    queue.update_queue("work", dead_letter=None)
    assert queue.delete_queue("dead") == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"policy": "fifo"}, "policy must be one of"),
        ({"retry_limit": -1}, "retry_limit must be between 0"),
        ({"retry_limit": True}, "retry_limit must be an integer"),
        ({"retry_delay": 1.5}, "retry_delay must be an integer"),
        ({"expire_in": 0}, "expire_in must be between 1"),
        ({"retry_backoff": "yes"}, "retry_backoff must be true or false"),
        ({"delete_after": timedelta(milliseconds=5)}, "whole number of seconds"),
    ],
)
def test_bad_queue_options(queue: Queue, options: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidOptionError, match=message):
        queue.create_queue("work", **options)  # type: ignore[arg-type]
    assert queue.get_queues() == []


@pytest.mark.parametrize("name", ["", "with space", "x'; DROP TABLE jobqueue.job; --", "-dash", "a" * 129, None, 5])
def test_bad_queue_names(queue: Queue, name: object) -> None:
    with pytest.raises(InvalidNameError, match="invalid queue name"):
        queue.create_queue(name)  # type: ignore[arg-type]
    with pytest.raises(InvalidNameError):
        queue.send(name, {})  # type: ignore[arg-type]
