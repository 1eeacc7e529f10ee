from __future__ import annotations

from jobqueue import TRANSITIONS, JobState, retry_delay_seconds
from jobqueue.states import QUEUED, can_transition


def test_constant_delay_without_backoff() -> None:
    assert retry_delay_seconds(5, 60, False, None, 0.9) == 60


def test_exponential_backoff_as_pg_boss_computes_it() -> None:
    """Retry n waits between 1x and 2x of retry_delay * 2^(n-1); retry_delay is a minimum."""
    assert [retry_delay_seconds(n, 60, True, None, 0.0) for n in range(4)] == [60, 120, 240, 480]
    assert [round(retry_delay_seconds(n, 60, True, None, 0.999), 6) for n in range(2)] == [119.94, 239.88]
    assert retry_delay_seconds(0, 0, True, None, 0.0) == 1  # a base of at least 1 s
    assert retry_delay_seconds(10, 60, True, 600, 0.0) == 600  # the cap applies after the jitter
    assert retry_delay_seconds(3, 60, True, 500, 0.9) == 500
    assert retry_delay_seconds(1000, 60, True, None, 1.0) == 60 * 2**15 * 2  # doublings stop at 15


def test_states_and_transitions() -> None:
    assert {JobState.CREATED, JobState.RETRY} == QUEUED
    assert can_transition(JobState.ACTIVE, JobState.COMPLETED)
    assert not can_transition(JobState.COMPLETED, JobState.ACTIVE)
    # Every finished state is terminal except through retry/resume.
    assert {new for old, new in TRANSITIONS if old in (JobState.FAILED, JobState.CANCELLED)} == {JobState.CREATED}
    assert not any(old == JobState.COMPLETED for old, _ in TRANSITIONS)
