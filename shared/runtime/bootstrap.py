"""What every function does once per container, before its first invocation's work."""

from __future__ import annotations

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


def reset() -> None:
    global _ready
    _ready = False
    connection.reset()
