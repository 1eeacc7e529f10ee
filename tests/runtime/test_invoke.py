"""`jobs invoke`: functions from template.yaml run in a subprocess, killed at their timeout."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from jobqueue import Queue
from local import invoke
from ops.cli import main
from runtime import catalog
from tests.runtime.conftest import EVENTS

pytestmark = pytest.mark.slow


@pytest.fixture
def ready_queue(queue: Queue) -> Queue:
    catalog.register(queue)
    return queue


def env(dsn: str, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": dsn,
        "POWERTOOLS_METRICS_NAMESPACE": "JobsTest",
        "API_TOKEN": "local-dev-token",
        "JOBS_PLATFORM": "tests.runtime.sample_catalog",
        **extra,
    }


def test_worker_runs_from_the_template(ready_queue: Queue, dsn: str) -> None:
    ready_queue.insert("send-email", [{"data": {"to": f"u{n}@example.com"}} for n in range(7)])
    outcome = invoke.invoke("SendEmailWorker", EVENTS / "schedule.json", overrides=env(dsn), timeout=30)
    assert outcome.ok, outcome.output
    assert outcome.result["completed"] == 7 and outcome.result["stopped"] == "empty"
    # Run as Lambda runs it: a new environment (a cold start), its log ending with the REPORT line.
    assert outcome.report is not None and outcome.report.init_ms is not None and outcome.report.memory_mb == 512
    last = outcome.output.splitlines()[-1]
    assert last.startswith(f"REPORT RequestId: {outcome.report.request_id}\tDuration: ") and "\tInit Duration: " in last


@pytest.mark.parametrize(
    ("logical_id", "event_file"),
    [("Scheduler", "schedule.json"), ("Maintenance", "schedule.json"), ("Api", "api-health.json")],
)
def test_every_function_runs_with_its_event(ready_queue: Queue, dsn: str, logical_id: str, event_file: str) -> None:
    outcome = invoke.invoke(logical_id, EVENTS / event_file, overrides=env(dsn), timeout=30)
    assert outcome.ok, outcome.output


def test_cli_invoke_and_its_errors(ready_queue: Queue, dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in env(dsn).items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    result = runner.invoke(main, ["invoke", "Scheduler", "-e", str(EVENTS / "schedule.json")])
    assert result.exit_code == 0, result.output
    assert '"created"' in result.output
    unknown = runner.invoke(main, ["invoke", "Nope", "-e", str(EVENTS / "schedule.json")])
    assert unknown.exit_code == 1 and "no function 'Nope' in template.yaml" in unknown.output
    bad_env = runner.invoke(main, ["invoke", "Scheduler", "-e", str(EVENTS / "schedule.json"), "--env", "oops"])
    assert bad_env.exit_code == 2 and "expected KEY=VALUE" in bad_env.output
    missing = runner.invoke(main, ["invoke", "Scheduler", "-e", str(Path("nope.json"))])
    assert missing.exit_code == 2
    # A misconfigured API (no database) is the deployment's fault: 500, a log line, exit 1.
    monkeypatch.delenv("DATABASE_URL")
    broken = runner.invoke(main, ["invoke", "Api", "-e", str(EVENTS / "api-health.json")])
    assert broken.exit_code == 1, broken.output
    assert '"statusCode": 500' in broken.output and "the API is misconfigured" in broken.output
    assert "DATABASE_URL" in broken.output  # the log line says what to fix
