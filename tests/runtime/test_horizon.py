"""A snapshot held open elsewhere is measured by maintenance and named by /health, the dashboard and
`jobs doctor`, with its age and who holds it."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from ops.cli import main
from tests.helpers import held_snapshot
from tests.runtime import test_dashboard
from tests.runtime.conftest import API_TOKEN, FakeContext, event
from tests.runtime.test_dashboard import Call, sign_in

web = test_dashboard.web  # the dashboard tests' fixture, for the test of its warning


@pytest.fixture
def report(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with held_snapshot(dsn) as holder:
        yield holder


def test_maintenance_publishes_the_horizon_and_names_who_holds_it(
    load_function: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    report: psycopg.Connection[Any],
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("HORIZON_WARN_SECONDS", "0")  # any snapshot held counts as old here
    maintenance = load_function("maintenance")
    capfd.readouterr()
    result = maintenance.handler(event("schedule.json"), FakeContext(function_name="jobs-maintenance"))
    assert "monthly-report" in result["horizon"]["warning"]
    assert result["horizon"]["held_by"][0]["application_name"] == "monthly-report"
    lines = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")]
    metrics = next(m for m in lines if "OldestSnapshotAgeSeconds" in m)
    assert metrics["OldestSnapshotAgeSeconds"][0] >= 0 and "DeadJobTuples" in metrics
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "MVCC horizon" in r.getMessage()]
    assert warnings and "monthly-report" in warnings[0].__dict__["holder"]


def test_health_names_the_session_holding_a_snapshot(
    load_function: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch, report: psycopg.Connection[Any]
) -> None:
    api = load_function("api")
    monkeypatch.setenv("HORIZON_WARN_SECONDS", "0")
    request = copy.deepcopy(event("api-health.json"))
    request["headers"]["authorization"] = f"Bearer {API_TOKEN}"
    response = api.handler(request, FakeContext(function_name="jobs-api"))
    body = json.loads(response["body"])
    assert response["statusCode"] == 200 and body["healthy"] is True  # a warning, not an outage
    assert f"pid {report.info.backend_pid}" in body["horizon"]["warning"]
    monkeypatch.setenv("HORIZON_WARN_SECONDS", "3600")
    body = json.loads(api.handler(request, FakeContext(function_name="jobs-api"))["body"])
    assert body["horizon"]["warning"] is None and body["horizon"]["held_by"] == []


def test_the_dashboard_warns_while_a_snapshot_is_held(web: Call, monkeypatch: pytest.MonkeyPatch, dsn: str) -> None:
    cookie = sign_in(web)
    monkeypatch.setenv("HORIZON_WARN_SECONDS", "0")
    assert "data-horizon" not in web("/dashboard", cookie=cookie)["body"]
    with held_snapshot(dsn):
        page = web("/dashboard", cookie=cookie)["body"]
    assert "data-horizon" in page and "monthly-report" in page and "jobs doctor" in page


def test_jobs_doctor_exits_1_while_a_snapshot_is_older_than_allowed(dsn: str) -> None:
    runner = CliRunner(env={"DATABASE_URL": dsn})
    fine = runner.invoke(main, ["doctor", "--max-age", "0"], catch_exceptions=False)
    assert fine.exit_code == 0, fine.output
    assert "nothing holds the horizon back" in fine.output
    with held_snapshot(dsn):
        held = runner.invoke(main, ["doctor", "--max-age", "0"], catch_exceptions=False)
        patient = runner.invoke(main, ["doctor", "--max-age", "3600"], catch_exceptions=False)
    assert held.exit_code == 1, held.output
    assert "monthly-report" in held.output and "problem:" in held.output
    assert patient.exit_code == 0 and "monthly-report" in patient.output  # listed, not a problem yet
