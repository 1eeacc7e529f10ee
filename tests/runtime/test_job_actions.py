"""One set of job actions for the API, the dashboard and the CLI, with states from the core's transitions."""

from __future__ import annotations

import uuid

import pytest

from jobqueue import TRANSITIONS, JobState, Queue
from runtime import job_actions
from runtime.job_actions import Action


def test_allowed_states_are_the_transitions_of_the_core() -> None:
    into = {
        Action.CANCEL: JobState.CANCELLED,
        Action.RETRY: JobState.CREATED,
        Action.RESUME: JobState.CREATED,
    }
    for action, target in into.items():
        assert all((state, target) in TRANSITIONS for state in job_actions.ALLOWED[action]), action
    assert job_actions.ALLOWED[Action.CANCEL] == {s for s, t in TRANSITIONS if t is JobState.CANCELLED}
    assert job_actions.ALLOWED[Action.RETRY] | job_actions.ALLOWED[Action.RESUME] == {
        s for s, t in TRANSITIONS if t is JobState.CREATED
    }


def test_apply_cancel_resume_and_its_refusals(queue: Queue) -> None:
    queue.create_queue("work")
    sent = queue.send("work", {})
    assert sent is not None
    assert job_actions.apply(queue, Action.CANCEL, sent).state == "cancelled"
    with pytest.raises(job_actions.ActionRefused, match=r"is cancelled: cannot cancel it; .* must be created or retry"):
        job_actions.apply(queue, Action.CANCEL, sent)
    assert job_actions.apply(queue, Action.RESUME, sent).state == "created"
    with pytest.raises(job_actions.JobNotFound, match="no job"):
        job_actions.apply(queue, Action.RETRY, str(uuid.uuid4()))
    with pytest.raises(job_actions.UnknownAction, match="unknown action 'retried'"):
        job_actions.action("retried")
