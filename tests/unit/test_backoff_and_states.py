from __future__ import annotations

from jobqueue import TRANSITIONS, JobState, retry_delay_seconds
from jobqueue.states import QUEUED, can_transition


def test_constant_delay_without_backoff() -> None:
    assert retry_delay_seconds(5, 60, False, None, 0.9) == 60


def test_exponential_backoff_doubles_with_equal_jitter_and_cap() -> None:
    assert [retry_delay_seconds(n, 60, True, None, 1.0) for n in range(4)] == [60, 120, 240, 480]
    assert [retry_delay_seconds(n, 60, True, None, 0.0) for n in range(4)] == [30, 60, 120, 240]
    assert retry_delay_seconds(10, 60, True, 600, 1.0) == 600
    assert retry_delay_seconds(1000, 60, True, None, 1.0) < 2**31 + 1  # no overflow


def test_states_and_transitions() -> None:
    assert {JobState.CREATED, JobState.RETRY} == QUEUED
    assert can_transition(JobState.ACTIVE, JobState.COMPLETED)
    assert not can_transition(JobState.COMPLETED, JobState.ACTIVE)
    # Every finished state is terminal except through retry/resume.
    assert {new for old, new in TRANSITIONS if old in (JobState.FAILED, JobState.CANCELLED)} == {JobState.CREATED}
    assert not any(old == JobState.COMPLETED for old, _ in TRANSITIONS)
