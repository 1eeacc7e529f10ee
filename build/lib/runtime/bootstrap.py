"""What every function does once per container, before its first invocation's work."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from jobqueue import Queue
from runtime import catalog, connection
from runtime.observability import logger

_ready = False


def ready() -> Queue:
    """The container's queue, with the schema migrated and the platform's queues registered.

    migrate() takes an advisory lock, so cold starts racing each other apply
    each migration once; registration is idempotent.
    """
    global _ready
    queue = connection.get_queue()
    if not _ready:
        connection.check(queue)
        version = queue.migrate()
        catalog.register(queue)
        logger.info("queue ready", extra={"schema_version": version})
        _ready = True
    return queue


@contextmanager
def calls_within(seconds: float) -> Iterator[None]:
    """Every database call of the container's queue in the block (the schema check and migration
    of a cold start included) ends within `seconds`, also on a network that stalls without closing
    (Database.deadline): a call cut short raises DatabaseUnavailableError."""
    try:
        queue: Queue | None = connection.get_queue()
    except Exception:  # a configuration error surfaces where the queue is used, as it would unbounded
        queue = None
    if queue is None:
        yield
        return
    with queue.db.deadline(seconds):
        yield


def invocation_deadline_s(context: Any, margin_ms: float) -> float:
    """Seconds until `margin_ms` before the invocation's end: the database's share of its time."""
    return (int(context.get_remaining_time_in_millis()) - margin_ms) / 1000


def reset() -> None:
    global _ready
    _ready = False
    connection.reset()
