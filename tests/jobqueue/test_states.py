"""The state machine: Python's mirror agrees with the database, which refuses illegal moves."""

from __future__ import annotations

import itertools
from typing import Any

import psycopg
import pytest

from jobqueue import TRANSITIONS, JobState, Queue


def test_enum_matches_the_database(conn: psycopg.Connection[Any]) -> None:
    labels = conn.execute(
        "SELECT enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid "
        "JOIN pg_namespace n ON n.oid = t.typnamespace "
        "WHERE n.nspname = 'jobqueue' AND t.typname = 'job_state' ORDER BY e.enumsortorder"
    ).fetchall()
    assert [label for (label,) in labels] == [state.value for state in JobState]


@pytest.mark.parametrize(("old", "new"), list(itertools.permutations(JobState, 2)))
def test_database_allows_exactly_the_listed_transitions(
    queue: Queue, conn: psycopg.Connection[Any], old: JobState, new: JobState
) -> None:
    queue.create_queue("q")
    job_id = queue.send("q", {})
    conn.execute("ALTER TABLE jobqueue.job DISABLE TRIGGER job_state_transition")
    move = "UPDATE jobqueue.job SET state = %s, expire_at = CASE WHEN %s THEN now() END WHERE id = %s"
    conn.execute(move, (old.value, old == JobState.ACTIVE, job_id))
    conn.execute("ALTER TABLE jobqueue.job ENABLE TRIGGER job_state_transition")
    if (old, new) in TRANSITIONS:
        conn.execute(move, (new.value, new == JobState.ACTIVE, job_id))
    else:
        with pytest.raises(psycopg.errors.CheckViolation, match=f"illegal job state transition {old} -> {new}"):
            conn.execute(move, (new.value, new == JobState.ACTIVE, job_id))


def test_only_active_jobs_have_a_deadline(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("q")
    job_id = queue.send("q", {})
    with pytest.raises(psycopg.errors.CheckViolation, match="job_deadline_while_active"):
        conn.execute("UPDATE jobqueue.job SET expire_at = now() WHERE id = %s", (job_id,))
