"""template.yaml: one worker per job type, an event for every function, least-privilege IAM."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from deploy import sam_template, template
from runtime import catalog

CATALOG = catalog.load()
QUEUE_NAMES = CATALOG.names

ROOT = Path(__file__).parents[2]
TEMPLATE = sam_template.load()
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
FUNCTIONS = sam_template.functions(TEMPLATE)
# The seed's provision/start/stop/restart/cleanup-pod and create/restore-snapshot are
# actions of one queue, pod-lifecycle (in order per pod: pods.lifecycle).
SEED_JOB_TYPES = {
    "pod-lifecycle",
    "health-check",
    "health-check-all",
    "cleanup-old",
    "calculate-usage",
    "send-email",
}
# The event files each kind of function is invoked with (sam local invoke -e, and the tests).
EVENTS_BY_CODE = {
    "functions/worker": ["schedule.json", "worker-kick.json", "worker-scale-out.json"],
    "functions/scheduler": ["schedule.json"],
    "functions/maintenance": ["schedule.json"],
    "functions/api": [
        "api-health.json",
        "api-stats.json",
        "api-failed.json",
        "api-get-job.json",
        "api-retry.json",
        "api-cancel.json",
        "api-enqueue.json",
    ],
}


def test_template_is_what_the_generator_writes() -> None:
    assert (ROOT / "template.yaml").read_text() == template.render(), "run `make template`"


def test_every_declared_job_type_has_a_worker_with_a_schedule() -> None:
    assert set(QUEUE_NAMES) >= SEED_JOB_TYPES
    workers = {f.environment.get("QUEUE_NAME"): f for f in FUNCTIONS.values() if "QUEUE_NAME" in f.environment}
    assert set(workers) == set(QUEUE_NAMES)
    for queue, function in workers.items():
        assert function.code_uri == ROOT / "functions/worker", queue
        assert function.schedules == ["rate(1 minute)"], queue
        props = RESOURCES[function.logical_id]["Properties"]
        assert props["ReservedConcurrentExecutions"] == {"Ref": "WorkerReservedConcurrency"}
        assert props["Timeout"] == {"Ref": "WorkerTimeout"}


def test_scheduler_and_maintenance_schedules() -> None:
    assert FUNCTIONS["Scheduler"].schedules == ["rate(1 minute)"]
    assert FUNCTIONS["Maintenance"].schedules == ["rate(5 minutes)"]
    assert RESOURCES["Scheduler"]["Properties"]["ReservedConcurrentExecutions"] == 1


def test_every_function_has_valid_event_files() -> None:
    for function in FUNCTIONS.values():
        code = function.code_uri.relative_to(ROOT).as_posix().rstrip("/")
        assert code in EVENTS_BY_CODE, f"{function.logical_id} has no events listed"
        for name in EVENTS_BY_CODE[code]:
            path = ROOT / "events" / name
            assert path.exists(), path
            json.loads(path.read_text())
    for name in EVENTS_BY_CODE["functions/api"]:
        request = json.loads((ROOT / "events" / name).read_text())
        assert request["version"] == "2.0" and request["rawPath"].startswith("/api/jobs")


def test_functions_run_python312_on_arm64_with_shared_layers() -> None:
    function_globals = TEMPLATE["Globals"]["Function"]
    assert function_globals["Runtime"] == "python3.12"
    assert function_globals["Architectures"] == ["arm64"]
    shared = [{"Ref": "DependenciesLayer"}, {"Ref": "AppLayer"}]
    # The ADOT layer (and its wrapper) only when a deployment gives its ARN.
    assert function_globals["Layers"] == {
        "Fn::If": ["OpenTelemetryOn", [*shared, {"Ref": "OpenTelemetryLayerArn"}], shared]
    }
    assert TEMPLATE["Parameters"]["OpenTelemetryLayerArn"]["Default"] == ""
    variables = function_globals["Environment"]["Variables"]
    assert variables["AWS_LAMBDA_EXEC_WRAPPER"]["Fn::If"][:2] == ["OpenTelemetryOn", "/opt/otel-instrument"]
    assert RESOURCES["DependenciesLayer"]["Metadata"]["BuildArchitecture"] == "arm64"
    # Our own code is packaged once, in the layer: function code folders hold only app.py.
    for code in {f.code_uri for f in FUNCTIONS.values()}:
        assert sorted(p.name for p in code.iterdir() if not p.name.startswith("__")) == ["app.py"]


def _statements() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for logical_id, resource in RESOURCES.items():
        for policy in (resource.get("Properties") or {}).get("Policies") or []:
            if isinstance(policy, dict) and "Statement" in policy:
                found += [(logical_id, statement) for statement in policy["Statement"]]
    return found


def test_no_iam_statement_is_wider_than_needed() -> None:
    statements = _statements()
    assert statements
    for logical_id, statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        assert statement["Effect"] == "Allow"
        for action in actions:
            assert "*" not in action, (logical_id, action)
        for resource in resources:
            assert resource != "*", (logical_id, statement)
            text = json.dumps(resource)
            assert not text.endswith(':*"') and ":function:*" not in text, (logical_id, resource)


@pytest.mark.parametrize("queue", sorted(QUEUE_NAMES))
def test_each_worker_gets_only_what_its_declaration_lists(queue: str) -> None:
    declared = CATALOG.job_type(queue)
    logical_id = template.logical_id(queue)
    props = RESOURCES[logical_id]["Properties"]
    text = json.dumps(props["Policies"])
    actions = {action for permission in declared.permissions for action in permission.actions}
    assert ("s3:" in text) == any(a.startswith("s3:") for a in actions)
    assert ("ses:" in text) == any(a.startswith("ses:") for a in actions)
    statements = [s for s in _statements() if s[0] == logical_id]
    granted = {a for _, s in statements for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
    assert granted == actions | {"lambda:InvokeFunction"}
    # Scale-out starts more of itself; handlers send jobs in their own transaction and start nothing.
    [(_, invoke)] = [s for s in statements if s[1]["Action"] == "lambda:InvokeFunction"]
    assert invoke["Resource"] == [{"Fn::Sub": str(template.function_arn(queue))}]
    secrets = [
        p["AWSSecretsManagerGetSecretValuePolicy"]["SecretArn"]["Ref"]
        for p in props["Policies"]
        if "AWSSecretsManagerGetSecretValuePolicy" in p
    ]
    assert secrets == ["DbSecretArn", *(s.parameter for s in declared.secrets)]
    variables = props["Environment"]["Variables"]
    assert {s.arn_env for s in declared.secrets} <= set(variables)
    assert not any(k.endswith("_SECRET_ARN") for k in TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
                   if k != "DB_SECRET_ARN")  # fmt: skip
    if declared.team_size:
        assert variables["TEAM_SIZE"] == declared.team_size


def test_api_requires_iam_and_functions_read_only_their_secret() -> None:
    auth = RESOURCES["HttpApi"]["Properties"]["Auth"]
    assert auth["DefaultAuthorizer"] == "AWS_IAM"
    own = {"Scheduler": [], "Maintenance": [], "Api": [{"Ref": "DashboardTokenSecretArn"}]}
    for logical_id, extra in own.items():
        policies = RESOURCES[logical_id]["Properties"]["Policies"]
        secrets = [
            p["AWSSecretsManagerGetSecretValuePolicy"]["SecretArn"]
            for p in policies
            if "AWSSecretsManagerGetSecretValuePolicy" in p
        ]
        assert secrets == [{"Ref": "DbSecretArn"}, *extra]


def test_only_the_dashboard_skips_iam_and_it_checks_its_own_token() -> None:
    events = RESOURCES["Api"]["Properties"]["Events"]
    open_paths = {e["Properties"]["Path"] for e in events.values() if "Auth" in e["Properties"]}
    assert open_paths == {"/dashboard", "/dashboard/{proxy+}"}
    assert all(e["Properties"]["Auth"] == {"Authorizer": "NONE"} for e in events.values() if "Auth" in e["Properties"])
    variables = RESOURCES["Api"]["Properties"]["Environment"]["Variables"]
    assert variables["API_TOKEN_SECRET_ARN"] == {"Ref": "DashboardTokenSecretArn"}


def test_alarms_watch_failures_age_and_errors() -> None:
    alarms = {k: v["Properties"] for k, v in RESOURCES.items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    metrics = {a.get("MetricName") for a in alarms.values()}
    assert {"FailedJobsTotal", "OldestQueuedJobAgeMax", "DeadLetterJobs", "Errors"} <= metrics
    # Any dead letter alarms: a job failed for good waits for a person.
    dead = alarms["DeadLettersAlarm"]
    assert (dead["Threshold"], dead["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    assert len([a for a in alarms.values() if a.get("MetricName") == "Errors"]) == len(QUEUE_NAMES) + 2
    assert all(a["AlarmActions"] == [{"Ref": "AlarmTopicArn"}] for a in alarms.values())


def test_group_limits_are_a_deployment_parameter_defaulting_to_the_declaration() -> None:
    limited = [t for t in CATALOG.job_types if t.group_concurrency is not None]
    assert [t.name for t in limited] == ["pod-lifecycle"]
    parameter = TEMPLATE["Parameters"]["PodLifecycleWorkerGroupConcurrency"]
    assert json.loads(parameter["Default"]) == limited[0].group_concurrency
    worker_env = RESOURCES["PodLifecycleWorker"]["Properties"]["Environment"]["Variables"]
    assert worker_env["GROUP_CONCURRENCY"] == {"Ref": "PodLifecycleWorkerGroupConcurrency"}
    # Locally (jobs invoke, make dev) the parameter's default reaches the worker.
    assert json.loads(FUNCTIONS["PodLifecycleWorker"].environment["GROUP_CONCURRENCY"]) == {"default": 4}
    others = [f for logical, f in FUNCTIONS.items() if logical != "PodLifecycleWorker"]
    assert all("GROUP_CONCURRENCY" not in f.environment for f in others)
