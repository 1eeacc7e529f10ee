"""A platform's part of the local stack: the stand-ins its handlers talk to, and its demo.

The stack itself (local.stack) knows no platform: it runs Postgres, moto's server for AWS's
APIs, the API and the functions of template.yaml. A project's `[tool.pgjobs] local` names an
instance of a `LocalPlatform` subclass (module:attribute) that starts what else its handlers
need (HTTP stand-ins, buckets, secrets, rows), and drives `make dev`'s load. A project that
names none gets this base class: nothing more to start, no load, and `--once` sends each job
type's `example` data through its worker.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from jobqueue import ConfigurationError, Queue
from runtime import catalog

if TYPE_CHECKING:
    from local.soak import Soak
    from local.stack import LocalStack


class LocalPlatform:
    """The default: a platform whose handlers need only the queue (and AWS's APIs, served by moto)."""

    round_s: float = 2.0  # real seconds between two rounds of the demo's load

    def start(self, stack: LocalStack) -> dict[str, str]:
        """Start the platform's stand-ins (moto and Postgres are up); returns variables for every function."""
        return {}

    def ready(self, stack: LocalStack, queue: Queue) -> None:
        """The queue's schema and the platform's queues exist: seed what the handlers and the demo need."""

    def stop(self) -> None:
        """Stop what `start` started (also after a failed start)."""

    def has_load(self) -> bool:
        """Whether `make dev` drives a load of its own (demo_round)."""
        return type(self).demo_round is not LocalPlatform.demo_round

    def demo_round(self, queue: Queue, stack: LocalStack, index: int) -> None:
        """Send round `index` (0, 1, ... in this run) of the demo's load (make dev, --soak)."""

    def once(self, queue: Queue, stack: LocalStack) -> Iterator[list[str | None]]:
        """`--once`: lists of job ids, each expected to complete before the next list is sent."""
        sent: list[str | None] = []
        for job_type in catalog.load().job_types:
            if job_type.example is not None:
                sent.append(queue.send(job_type.name, job_type.example))
            # What the scheduler sends for each schedule, run by the job type's worker.
            sent += [queue.send(job_type.name, dict(s.data)) for s in job_type.schedules]
        yield sent

    def after_soak(self, soak: Soak, stack: LocalStack, queue: Queue) -> None:
        """Checks a soak makes once its load drained (the platform's invariants)."""


def load(spec: str | None) -> LocalPlatform:
    """The platform named by `module:attribute` (a project's [tool.pgjobs] local), or the default."""
    if not spec:
        return LocalPlatform()
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigurationError(f"[tool.pgjobs] local = {spec!r}: cannot import {module_name!r} ({exc})") from None
    found: Any = getattr(module, attribute or "PLATFORM", None)
    if not isinstance(found, LocalPlatform):
        raise ConfigurationError(f"[tool.pgjobs] local = {spec!r}: {attribute or 'PLATFORM'} is not a LocalPlatform")
    return found
