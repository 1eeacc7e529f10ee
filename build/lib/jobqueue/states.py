"""Job states and the transitions between them.

The database is the authority: the `job_state_transition` trigger in
sql/schema.sql refuses any other change of state. This module mirrors it for Python callers, and
tests/jobqueue/test_states.py checks that the two agree.

    created --fetch--> active --complete--> completed
       |                 |--fail, attempts left--> retry --(start_after)--> active
       |                 |--fail, none left / non-retryable--> failed
       |                 '--expired (deadline passed)--> retry or failed
       |--cancel--> cancelled        failed/cancelled --retry/resume--> created
       '--not started within retention--> failed
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    # Declared in the enum's database order: queued < active < finished.
    CREATED = "created"
    RETRY = "retry"
    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


QUEUED: frozenset[JobState] = frozenset({JobState.CREATED, JobState.RETRY})
FINISHED: frozenset[JobState] = frozenset({JobState.COMPLETED, JobState.CANCELLED, JobState.FAILED})

# The operations that put a finished job back in the queue, by the state they take it from.
REQUEUED_BY: dict[JobState, str] = {JobState.FAILED: "retry", JobState.CANCELLED: "resume"}

TRANSITIONS: frozenset[tuple[JobState, JobState]] = frozenset(
    {
        (JobState.CREATED, JobState.ACTIVE),
        (JobState.CREATED, JobState.RETRY),  # fail() before it started, attempts left
        (JobState.CREATED, JobState.CANCELLED),
        (JobState.CREATED, JobState.FAILED),  # retention ran out before it started
        (JobState.RETRY, JobState.ACTIVE),
        (JobState.RETRY, JobState.CANCELLED),
        (JobState.RETRY, JobState.FAILED),  # retention ran out before it started
        (JobState.ACTIVE, JobState.COMPLETED),
        (JobState.ACTIVE, JobState.RETRY),
        (JobState.ACTIVE, JobState.FAILED),
        (JobState.ACTIVE, JobState.CANCELLED),
    }
    | {(old, JobState.CREATED) for old in REQUEUED_BY}
)


# What the operations on jobs accept, derived from the transitions above.
CANCELLABLE: frozenset[JobState] = frozenset(old for old, new in TRANSITIONS if new is JobState.CANCELLED)
RETRYABLE: frozenset[JobState] = frozenset(old for old, by in REQUEUED_BY.items() if by == "retry")
RESUMABLE: frozenset[JobState] = frozenset(old for old, by in REQUEUED_BY.items() if by == "resume")


def can_transition(old: JobState, new: JobState) -> bool:
    return (old, new) in TRANSITIONS
