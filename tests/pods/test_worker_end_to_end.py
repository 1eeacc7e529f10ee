"""The pod-lifecycle worker function, end to end: queue -> handler -> host agent -> database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import psycopg
import pytest

from jobqueue import Queue
from pods import context, lifecycle
from pods.context import Resources
from podslocal.fake_host_agent import FakeHostAgent
from tests.pods.conftest import API_KEY, pod_row
from tests.runtime.conftest import FakeContext, event


@pytest.fixture
def worker(
    load_function: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch, resources: Resources
) -> Iterator[ModuleType]:
    monkeypatch.setenv("QUEUE_NAME", lifecycle.LIFECYCLE)
    monkeypatch.setenv("HOST_API_KEY", API_KEY)
    context.set_resources(None)
    yield load_function("worker")
    context.set_resources(None)


def test_provision_jobs_run_through_the_worker(
    worker: ModuleType, dsn: str, agents: list[FakeHostAgent], conn: psycopg.Connection[Any]
) -> None:
    with Queue(dsn) as q:
        for n in range(3):
            lifecycle.request(q, "provision", f"pod-{n}", spec={"tier": "dev.small"}, userId="u")
        lifecycle.request(q, "provision", "bad", spec={"tier": "dev.nope"})
        result = worker.handler(event("schedule.json"), FakeContext())
        assert (result["completed"], result["failed"], result["retried"]) == (3, 1, 0)
        [failed] = q.find_jobs(lifecycle.LIFECYCLE, state="failed")
        assert "unknown tier 'dev.nope'" in failed.output["message"]
    assert {pod_row(conn, f"pod-{n}")["status"] for n in range(3)} == {"running"}
    assert len(agents[0].pods) == 3
