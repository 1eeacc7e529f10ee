"""sam local against make dev's stack, without Docker: `.local/sam-env.json` covers every function
and every variable its code reads, each function runs in exactly the environment sam would give its
container (through `jobs invoke --env-vars`), and the events/ files are what their functions expect.

The tier that runs `sam local invoke` for real needs Docker, which CI machines lack: it is skipped
there with a message.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventV2Model, EventBridgeModel
from pydantic import BaseModel, field_validator

from deploy import sam_template
from jobqueue import Queue
from jobqueue.options import queue_name
from local import invoke, sam_env
from pods import lifecycle
from runtime import scale

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
EVENTS = ROOT / "events"
README = ROOT / "README.md"
STARTUP_S = 90.0

# Variables the project's code reads with a default that AWS does not set either (template.yaml
# does not declare them), so a container runs on the same default as production. Anything else a
# function reads must be declared, or sam local would not pass the local stack's value on.
DEFAULTED = {
    "SAFETY_MARGIN_MS",
    "EXPIRY_MARGIN_S",
    "MAX_SNOOZES",
    "PREPARE_THRESHOLD",
    "STATEMENT_TIMEOUT_MS",
    "CONNECT_TIMEOUT",
    "JOBQUEUE_SCHEMA",
    "SECRET_MAX_AGE",
    "PGSSLMODE",
    "HOST_AGENT_TIMEOUT",
    "HEALTH_FAILED_THRESHOLD",
    "MAINTENANCE_BATCH_SIZE",
    "BACKLOG_WARN_JOBS",
    "BACKLOG_WARN_SECONDS",
    "SCALE_JOBS_PER_WORKER",
    "SCALE_MAX_WORKERS",
    "POWERTOOLS_METRICS_DISABLED",
    "GROUP_CONCURRENCY",  # declared only by workers whose job type has group limits; others have none
}

# A job for each worker to run, so that its handler's own reads are seen too.
SAMPLE_JOBS: dict[str, dict[str, Any]] = {
    "health-check": {},
    "health-check-all": {},
    "health-report": {},
    "cleanup-old": {},
    "remove-old-pod": {"podId": "sam-gone"},
    "calculate-usage": {},
    "send-email": {"to": "sam@example.com", "template": "pod-ready", "params": {"podId": "sam-0", "url": "http://x"}},
}


@dataclass
class Stack:
    data_dir: Path
    env_vars: dict[str, dict[str, Any]]
    database_url: str
    api_token: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """make dev without its demo load, its schedules slowed down so that only our invocations work."""
    data_dir = tmp_path_factory.mktemp("sam") / "local"
    command = [sys.executable, "-m", "local.dev", "--data-dir", str(data_dir), "--no-demo", "--speed", "0.01"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + STARTUP_S
    # The first status line comes after the stack's first step: its functions' one run at start is over.
    while time.monotonic() < deadline and not any(" simulated " in line for line in lines):
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        lines.append(line)
    try:
        assert any(" simulated " in line for line in lines), "".join(lines)[-3000:]
        env = dict(line.split("=", 1) for line in (data_dir / "env").read_text().splitlines())
        env_vars = invoke.read_env_vars(data_dir / sam_env.FILE_NAME)
        yield Stack(data_dir, env_vars, env["DATABASE_URL"], env["API_TOKEN"])
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def test_the_env_vars_file_has_an_entry_for_every_function_and_only_declared_variables(stack: Stack) -> None:
    template = sam_template.load()
    functions = sam_template.functions(template)
    assert set(stack.env_vars) == {"Parameters", *functions}
    shared = set(sam_template.global_variables(template))
    # sam drops what a function does not declare: a value for it would be a silent no-op.
    assert set(stack.env_vars["Parameters"]) <= shared
    for logical_id, function in functions.items():
        assert set(stack.env_vars[logical_id]) <= set(function.declared) - shared, logical_id
    # Secrets travel as ARNs of (moto's) Secrets Manager, as in AWS: no plain secret in the file.
    text = json.dumps(stack.env_vars)
    assert stack.api_token not in text and "DATABASE_URL" not in text and 'GITHUB_TOKEN"' not in text
    assert stack.env_vars["Parameters"]["DB_SECRET_ARN"].startswith("arn:aws:secretsmanager:")
    assert stack.env_vars["Parameters"]["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")


@pytest.mark.parametrize("logical_id", list(sam_template.functions()))
def test_each_function_runs_in_exactly_sams_environment(stack: Stack, logical_id: str, tmp_path: Path) -> None:
    function = sam_template.functions()[logical_id]
    event = tmp_path / "event.json"
    queue = function.environment.get("QUEUE_NAME")
    with Queue(stack.database_url) as jobs:
        if queue == lifecycle.LIFECYCLE:
            lifecycle.request(jobs, "provision", f"sam-{time.monotonic_ns()}", spec={"tier": "dev.small"}, userId="u")
        elif queue:
            jobs.send(queue, SAMPLE_JOBS[queue])
    if logical_id == "Api":
        # The sample event carries a placeholder token; the stack has its own.
        event.write_text((EVENTS / "api-health.json").read_text().replace("local-dev-token", stack.api_token))
    else:
        event.write_text((EVENTS / "schedule.json").read_text())
    reads = tmp_path / "reads.json"
    outcome = invoke.invoke(logical_id, event, env_vars=stack.env_vars, record_env=reads, timeout=60)
    assert outcome.ok, outcome.output[-3000:]
    if logical_id == "Api":
        assert outcome.result["statusCode"] == 200, outcome.result
    if queue:
        assert outcome.result["completed"] >= 1 and outcome.result["failed"] == 0, outcome.output[-3000:]
    # Every variable the function's code read is one sam passes on, or a tunable left to its default.
    given = invoke.sam_environment(function, stack.env_vars)
    read = set(json.loads(reads.read_text()))
    assert {"DB_SECRET_ARN", "JOBS_PLATFORM"} <= read, read  # what every cold start reads: the recorder sees it
    missing = read - set(given) - DEFAULTED
    assert not missing, f"{logical_id} reads {sorted(missing)}: declare them in template.yaml (the job type)"


def test_the_environment_is_sams_not_the_callers(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    function = sam_template.functions()["Scheduler"]
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")  # not declared: sam drops it
    monkeypatch.setenv("STAGE", "from-the-shell")  # declared: the shell's value wins over the template's
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    given = invoke.sam_environment(function, stack.env_vars)
    assert "DATABASE_URL" not in given and given["STAGE"] == "from-the-shell"
    assert given["AWS_REGION"] == "eu-west-1"  # samconfig.toml's, as sam reads it
    assert given["AWS_SAM_LOCAL"] == "true" and given["JOBS_PLATFORM"] == "pods.jobs"
    outcome = invoke.invoke("Scheduler", EVENTS / "schedule.json", env_vars=stack.env_vars, timeout=60)
    assert outcome.ok, outcome.output[-3000:]


def test_the_cli_takes_the_env_vars_file(stack: Stack) -> None:
    from click.testing import CliRunner

    from ops.cli import main

    runner = CliRunner()
    env_file = str(stack.data_dir / sam_env.FILE_NAME)
    result = runner.invoke(main, ["invoke", "Scheduler", "-e", "events/schedule.json", "--env-vars", env_file])
    assert result.exit_code == 0, result.output
    both = runner.invoke(
        main, ["invoke", "Scheduler", "-e", "events/schedule.json", "--env-vars", env_file, "--env", "A=1"]
    )
    assert both.exit_code == 2 and "drop --env" in both.output


def test_a_malformed_env_vars_file_is_refused_with_its_name(tmp_path: Path) -> None:
    bad = tmp_path / "env.json"
    bad.write_text('{"Scheduler": "not an object"}')
    with pytest.raises(invoke.EnvVarsError, match="expected an object of objects"):
        invoke.read_env_vars(bad)
    bad.write_text("{")
    with pytest.raises(invoke.EnvVarsError, match="is not JSON"):
        invoke.read_env_vars(bad)


def test_containers_off_linux_reach_the_stack_through_host_docker_internal() -> None:
    stack_env = {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
        "GITHUB_API_URL": "http://127.0.0.1:6000",
        "SNAPSHOT_BUCKET": "pod-snapshots",
    }
    env = sam_env.container_environment(stack_env, {"DB_SECRET_ARN": "arn:x"}, "host.docker.internal")
    assert env["AWS_ENDPOINT_URL"] == "http://host.docker.internal:5000"
    assert env["GITHUB_API_URL"] == "http://host.docker.internal:6000"
    assert env["HOST_AGENT_ADDRESS"] == "host.docker.internal"  # the agents' rows say 127.0.0.1
    assert sam_env.for_container("postgresql://postgres@127.0.0.1:5432/jobs", "host.docker.internal") == (
        "postgresql://postgres@host.docker.internal:5432/jobs"
    )
    assert sam_env.docker_network_option("host.docker.internal") == ""
    on_linux = sam_env.container_environment(stack_env, {}, sam_env.LOOPBACK)
    assert on_linux["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5000" and "HOST_AGENT_ADDRESS" not in on_linux
    assert sam_env.docker_network_option(sam_env.LOOPBACK) == "--docker-network host"


def test_a_worker_dials_host_agents_at_host_agent_address(monkeypatch: pytest.MonkeyPatch) -> None:
    from pods.context import Resources

    monkeypatch.setenv("HOST_API_KEY", "key")
    monkeypatch.setenv("HOST_AGENT_ADDRESS", "host.docker.internal")
    agent = Resources(pool=None).agent("127.0.0.1", 8081)  # type: ignore[arg-type]
    assert agent.address == "host.docker.internal" and agent.port == 8081
    monkeypatch.setenv("HOST_AGENT_ADDRESS", "")  # as deployed: the recorded address
    assert Resources(pool=None).agent("10.0.0.7", 8081).address == "10.0.0.7"  # type: ignore[arg-type]


class WorkerInvokeEvent(BaseModel):
    """What a kick or a scale-out sends a worker (runtime.scale)."""

    source: Literal["kick", "scale-out"]
    queue: str

    @field_validator("queue")
    @classmethod
    def _queue(cls, value: str) -> str:
        return queue_name(value)


EVENT_TYPES: dict[str, type[BaseModel]] = {
    "schedule.json": EventBridgeModel,
    "worker-kick.json": WorkerInvokeEvent,
    "worker-scale-out.json": WorkerInvokeEvent,
}


def test_every_event_file_parses_as_the_event_its_functions_expect() -> None:
    assert {scale.KICK, scale.SCALE_OUT} == {"kick", "scale-out"}
    used: set[str] = set()
    for logical_id, function in sam_template.functions().items():
        files = sam_env.event_files(function)
        assert files, f"no sample event for {logical_id}"
        for path in files:
            model = APIGatewayProxyEventV2Model if path.name.startswith("api-") else EVENT_TYPES[path.name]
            model.model_validate(json.loads(path.read_text()))
            used.add(path.name)
    assert used == {path.name for path in EVENTS.glob("*.json")}, "an event file no function takes"
    schedule = EventBridgeModel.model_validate(json.loads((EVENTS / "schedule.json").read_text()))
    assert schedule.detail_type == "Scheduled Event" and schedule.source == "aws.events"


def test_the_readme_has_the_events_table_and_runnable_sam_commands() -> None:
    readme = README.read_text()
    assert sam_env.events_table() in readme, "README's sam local table is stale: paste sam_env.events_table()"
    functions = sam_template.functions()
    commands = re.findall(r"sam local invoke (\w+) -e (\S+) ([^\n]*)", readme)
    assert commands, "README shows no sam local invoke command"
    for logical_id, event, rest in commands:
        assert logical_id in functions, logical_id
        if event != "-":
            assert Path(event).name in {p.name for p in sam_env.event_files(functions[logical_id])}, event
        assert "--env-vars .local/sam-env.json" in rest and "--docker-network host" in rest, rest
    assert "sam local start-api --env-vars .local/sam-env.json --docker-network host" in readme


@functools.cache
def docker_unavailable() -> str | None:
    """Why the Docker tier cannot run here, or None."""
    if shutil.which("docker") is None:
        return "docker is not installed: sam local invoke cannot run here (jobs invoke --env-vars covers it)"
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        return "docker is installed but its daemon does not answer"
    if not (ROOT / ".venv-sam" / "bin" / "sam").exists():
        return "no SAM CLI in .venv-sam (make validate installs it)"
    return None


@pytest.mark.skipif(docker_unavailable() is not None, reason=str(docker_unavailable()))
def test_sam_local_invoke_for_real(stack: Stack) -> None:
    """What the README says, run as written: sam build, then a worker and the scheduler in containers."""
    sam = str(ROOT / ".venv-sam" / "bin" / "sam")
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
    build = subprocess.run([sam, "build"], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    with Queue(stack.database_url) as jobs:
        jobs.send("send-email", SAMPLE_JOBS["send-email"])
    env_file = str(stack.data_dir / sam_env.FILE_NAME)
    for logical_id, event in (("SendEmailWorker", "events/schedule.json"), ("Scheduler", "events/schedule.json")):
        command = [sam, "local", "invoke", logical_id, "-e", event, "--env-vars", env_file, "--docker-network", "host"]
        run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=600)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        result = json.loads(run.stdout.strip().splitlines()[-1])
        assert "errorType" not in result, result


def test_the_variables_declared_for_sam_are_inert_in_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """template.yaml declares them empty, so that sam local passes the stack's values on; empty, they change nothing."""
    import boto3

    from runtime import catalog

    globals_ = sam_template.load()["Globals"]["Function"]["Environment"]["Variables"]
    assert globals_["AWS_ENDPOINT_URL"] == "" and globals_["JOBS_QUEUE_OVERRIDES"] == ""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "")
    assert boto3.client("s3", region_name="eu-west-1").meta.endpoint_url == "https://s3.eu-west-1.amazonaws.com"
    assert catalog.queue_overrides({"JOBS_QUEUE_OVERRIDES": ""}) == {}
    assert sam_template.functions()["PodLifecycleWorker"].environment["HOST_AGENT_ADDRESS"] == ""
