"""A model-based test: random sequences of operations against a simple model of job states."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from jobqueue import JobState, Queue

RETRY_LIMIT = 1


def machine_for(dsn: str) -> type[RuleBasedStateMachine]:
    class JobLifecycle(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.queue = Queue(dsn)
            conn = self.queue.db.connection()
            conn.execute("DELETE FROM jobqueue.job; DELETE FROM jobqueue.archive; DELETE FROM jobqueue.queue")
            self.queue.create_queue("q", retry_limit=RETRY_LIMIT, retry_delay=0)
            self.state: dict[str, JobState] = {}
            self.retries: dict[str, int] = {}
            self.jobs: dict[str, Any] = {}  # fetched Job objects of the current attempt

        def ids_in(self, *states: JobState) -> list[str]:
            # In creation order: the ids themselves differ from run to run, and
            # Hypothesis must see the same choices when it replays an example.
            return [i for i, s in self.state.items() if s in states]

        @rule(count=st.integers(1, 3))
        def send(self, count: int) -> None:
            for _ in range(count):
                job_id = self.queue.send("q", {})
                assert job_id is not None
                self.state[job_id] = JobState.CREATED
                self.retries[job_id] = 0

        @rule(batch=st.integers(1, 4))
        def fetch(self, batch: int) -> None:
            queued = set(self.ids_in(JobState.CREATED, JobState.RETRY))
            jobs = self.queue.fetch("q", batch)
            assert len(jobs) == min(batch, len(queued))
            for job in jobs:
                assert job.id in queued
                self.state[job.id] = JobState.ACTIVE
                self.jobs[job.id] = job

        @precondition(lambda self: self.ids_in(JobState.ACTIVE))
        @rule(data=st.data())
        def complete(self, data: st.DataObject) -> None:
            chosen = data.draw(st.lists(st.sampled_from(self.ids_in(JobState.ACTIVE)), min_size=1, unique=True))
            done = self.queue.complete("q", [self.jobs[i] for i in chosen])
            assert sorted(done) == sorted(chosen)
            for job_id in chosen:
                self.state[job_id] = JobState.COMPLETED

        def _fail(self, job_id: str) -> None:
            if self.retries[job_id] < RETRY_LIMIT:
                self.state[job_id] = JobState.RETRY
                self.retries[job_id] += 1
            else:
                self.state[job_id] = JobState.FAILED

        @precondition(lambda self: self.ids_in(JobState.ACTIVE))
        @rule(data=st.data())
        def fail(self, data: st.DataObject) -> None:
            chosen = data.draw(st.lists(st.sampled_from(self.ids_in(JobState.ACTIVE)), min_size=1, unique=True))
            result = self.queue.fail("q", [self.jobs[i] for i in chosen], "boom")
            for job_id in chosen:
                self._fail(job_id)
            assert sorted(result.retried) == sorted(i for i in chosen if self.state[i] == JobState.RETRY)
            assert sorted(result.failed) == sorted(i for i in chosen if self.state[i] == JobState.FAILED)

        @rule()
        def expire(self) -> None:
            active = self.ids_in(JobState.ACTIVE)
            retried, failed = self.queue.expire(now=datetime.now(UTC) + timedelta(days=1))
            # Expiry "a day later" schedules the retries a day later too; bring them back to now.
            self.queue.db.connection().execute("UPDATE jobqueue.job SET start_after = now() WHERE state = 'retry'")
            for job_id in active:
                self._fail(job_id)
            assert retried + failed == len(active)

        @precondition(lambda self: self.state)
        @rule(data=st.data())
        def cancel(self, data: st.DataObject) -> None:
            job_id = data.draw(st.sampled_from(list(self.state)))
            cancelled = self.queue.cancel("q", [job_id])
            cancellable = self.state[job_id] in (JobState.CREATED, JobState.RETRY, JobState.ACTIVE)
            assert cancelled == ([job_id] if cancellable else [])
            if cancellable:
                self.state[job_id] = JobState.CANCELLED

        @precondition(lambda self: self.ids_in(JobState.FAILED, JobState.CANCELLED))
        @rule(data=st.data())
        def requeue(self, data: st.DataObject) -> None:
            job_id = data.draw(st.sampled_from(self.ids_in(JobState.FAILED, JobState.CANCELLED)))
            was = self.state[job_id]
            back = self.queue.retry("q", [job_id]) if was == JobState.FAILED else self.queue.resume("q", [job_id])
            assert back == [job_id]
            self.state[job_id] = JobState.CREATED
            self.retries[job_id] = 0

        @rule()
        def archive_and_purge(self) -> None:
            # Archived jobs keep their state; purge after delete_after (7 days) removes nothing here.
            self.queue.archive(now=datetime.now(UTC) + timedelta(days=1))
            assert self.queue.purge(now=datetime.now(UTC) + timedelta(days=1)) == (0, 0)

        @invariant()
        def database_agrees_with_the_model(self) -> None:
            rows = self.queue.find_jobs("q", limit=10_000)
            assert {j.id: j.state for j in rows} == {i: s.value for i, s in self.state.items()}
            for job in rows:
                if job.state == JobState.ACTIVE:
                    assert job.retry_count == self.retries[job.id]

        def teardown(self) -> None:
            self.queue.close()

    return JobLifecycle


def test_random_operation_sequences_match_the_model(dsn: str, conn: psycopg.Connection[Any]) -> None:
    run_state_machine_as_test(
        machine_for(dsn),
        settings=settings(
            max_examples=30, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
        ),
    )
