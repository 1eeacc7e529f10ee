"""The exceptions the queue raises, one small hierarchy.

Every error a caller can cause names the offending value, so that a message in
a log is enough to fix the call. `JobError` is different: handlers raise it to
tell the queue how a job failed (pg-boss users know it as `JobError(message, shouldRetry)`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class JobQueueError(Exception):
    """Base class of everything the queue raises."""


class ConfigurationError(JobQueueError, ValueError):
    """A setting is malformed: schema name, DATABASE_URL, queue settings."""


class InvalidNameError(JobQueueError, ValueError):
    """A queue or schema name that is not a plain identifier."""


class InvalidOptionError(JobQueueError, ValueError):
    """An option value out of range or of the wrong type."""


class PayloadError(JobQueueError, ValueError):
    """Job data (or output) that is not JSON-serialisable or is too large."""


class InvalidCronError(JobQueueError, ValueError):
    """A cron expression that cannot be parsed."""


class InvalidTimezoneError(JobQueueError, ValueError):
    """A time zone name that is not in the IANA database."""


class UnknownQueueError(JobQueueError, LookupError):
    """The named queue does not exist; `known` (the queues that do) gives a suggestion."""

    def __init__(self, name: str, role: str = "queue", known: Iterable[str] = ()) -> None:
        names = sorted(known)
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        if close:
            hint = f" (did you mean {close[0]!r}?)"
        elif names:
            shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            hint = f" (queues: {shown})"
        else:
            hint = " (there are no queues yet)"
        super().__init__(f"unknown {role} {name!r}{hint}")
        self.name = name


class QueueInUseError(JobQueueError):
    """The queue cannot be deleted: other queues send their dead letters to it."""


class PolicyConflictError(JobQueueError):
    """A queue policy (short, singleton, stately) refused the change."""


class ConcurrentUpdateError(JobQueueError):
    """Postgres broke a deadlock between this statement and another by cancelling this one.

    Nothing the statement did remains; the queue retries it where that is safe
    (a statement of its own, not one inside the caller's transaction).
    """


class LockTimeoutError(JobQueueError):
    """A statement gave up waiting for a lock after its lock_timeout; nothing it did remains."""


class DatabaseUnavailableError(JobQueueError, ConnectionError):
    """The database cannot be reached (the message never contains a password)."""


class Snooze(Exception):
    """Raised by a handler: run this job again in `seconds`, without using up an attempt.

    For waiting on something outside (a host with no free slot, a pod still booting)
    instead of sleeping in the handler. A job may snooze a bounded number of times
    (the worker's MAX_SNOOZES); past that it fails for good.
    """

    def __init__(self, seconds: float) -> None:
        if not Snooze.valid(seconds):
            raise ValueError(f"Snooze needs seconds between 0 and {MAX_SNOOZE_S}, got {seconds!r}")
        super().__init__(f"snoozed for {seconds:g} s")
        self.seconds = float(seconds)

    @staticmethod
    def valid(seconds: object) -> bool:
        """A delay a job may snooze for: a number of seconds, more than 0 and at most MAX_SNOOZE_S."""
        return isinstance(seconds, int | float) and not isinstance(seconds, bool) and 0 < seconds <= MAX_SNOOZE_S


MAX_SNOOZE_S = 7 * 86_400


class JobError(Exception):
    """Raised by a handler to fail its job with an explicit retry decision.

    `JobError("bad payload", should_retry=False)` fails the job at once, with
    no further attempts; any other exception is retried while attempts last.
    """

    def __init__(self, message: str, should_retry: bool = True) -> None:
        super().__init__(message)
        self.should_retry = should_retry
