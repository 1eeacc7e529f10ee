"""Writes template.yaml from the platform's declarations (runtime.jobtypes.Catalog).

The template is built as data (dicts, lists, and `Ref`/`Sub` for
CloudFormation's intrinsic functions) and dumped by PyYAML: one worker
function and one alarm per job type, with the IAM, secrets, environment and
sizing its declaration lists, beside the scheduler, maintenance and API
functions. A test fails when the committed template.yaml differs from what
this writes: run `make template` after changing a declaration.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Final

import yaml

from deploy import project
from runtime.catalog import VARIABLE
from runtime.catalog import load as load_catalog
from runtime.jobtypes import Catalog, JobType

FUNCTION_ARN: Final = "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:"


class Ref(str):
    """`!Ref name`"""


class Sub(str):
    """`!Sub text`: ${Name} in the text are parameters or pseudo parameters."""


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # the same dict used twice is written out twice, not as an anchor

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)  # list items indented under their key, as people write them

    def choose_scalar_style(self) -> str:
        style: str = super().choose_scalar_style()
        # `!Ref Name` rather than `!Ref 'Name'`: plain wherever YAML allows it.
        event = self.event
        if isinstance(event, yaml.ScalarEvent) and event.tag in ("!Ref", "!Sub") and style == "'":
            analysis = self.analysis
            if analysis is not None and analysis.allow_block_plain and not analysis.multiline and not analysis.empty:
                return ""
        return style


_Dumper.add_representer(Ref, lambda dumper, value: dumper.represent_scalar("!Ref", str(value)))
_Dumper.add_representer(Sub, lambda dumper, value: dumper.represent_scalar("!Sub", str(value)))


def logical_id(queue: str) -> str:
    return "".join(part.capitalize() for part in queue.replace("/", "-").replace(".", "-").split("-")) + "Worker"


def group_concurrency_parameter(queue: str) -> str:
    return logical_id(queue) + "GroupConcurrency"


def rate_limit_parameter(queue: str) -> str:
    return logical_id(queue) + "RateLimit"


def rate_limits_variable(catalog: Catalog) -> Sub | str:
    """JOBS_RATE_LIMITS for every function: each rate-limited job type's parameter, by queue."""
    limited = [job_type.name for job_type in catalog.job_types if job_type.rate_limit is not None]
    if not limited:
        return ""
    return Sub("{" + ", ".join(f'"{name}": ${{{rate_limit_parameter(name)}}}' for name in limited) + "}")


def function_name(queue: str) -> str:
    return "${AWS::StackName}-" + queue


def function_arn(queue: str) -> Sub:
    return Sub(FUNCTION_ARN + function_name(queue))


def read_secret(parameter: str) -> dict[str, Any]:
    return {"AWSSecretsManagerGetSecretValuePolicy": {"SecretArn": Ref(parameter)}}


def invoke(queues: list[str]) -> dict[str, Any]:
    return {
        "Statement": [
            {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": [function_arn(q) for q in queues]}
        ]
    }


def schedule(rate: str, description: str | None = None) -> dict[str, Any]:
    properties: dict[str, Any] = {"Schedule": rate}
    if description:
        properties["Description"] = description
    return {"Tick": {"Type": "Schedule", "Properties": properties}}


def alarm(
    description: str,
    metric: str,
    threshold: Any,
    *,
    namespace: str,
    dimensions: list[dict[str, Any]],
    statistic: str = "Sum",
    period: int = 300,
    periods: int = 1,
    comparison: str = "GreaterThanOrEqualToThreshold",
    missing: str = "notBreaching",
) -> dict[str, Any]:
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": description,
            "Namespace": namespace,
            "MetricName": metric,
            "Dimensions": dimensions,
            "Statistic": statistic,
            "Period": period,
            "EvaluationPeriods": periods,
            "Threshold": threshold,
            "ComparisonOperator": comparison,
            "TreatMissingData": missing,
            "AlarmActions": [Ref("AlarmTopicArn")],
        },
    }


def errors_alarm(description: str, function: str, threshold: int, period: int = 300) -> dict[str, Any]:
    dimensions = [{"Name": "FunctionName", "Value": Ref(function)}]
    return alarm(description, "Errors", threshold, namespace="AWS/Lambda", dimensions=dimensions, period=period)


# -- the parts --------------------------------------------------------------------


def parameters(catalog: Catalog) -> dict[str, Any]:
    def text(description: str) -> dict[str, Any]:
        return {"Type": "String", "Description": description}

    def number(default: int, low: int, high: int | None = None, description: str | None = None) -> dict[str, Any]:
        spec: dict[str, Any] = {"Type": "Number", "Default": default, "MinValue": low}
        if high is not None:
            spec["MaxValue"] = high
        if description:
            spec["Description"] = description
        return spec

    found: dict[str, Any] = {
        "Stage": {"Type": "String", "AllowedValues": ["dev", "prod"], "Default": "dev"},
        "Tracing": {
            "Type": "String",
            "AllowedValues": ["Active", "PassThrough"],
            "Default": "PassThrough",
            "Description": "X-Ray tracing of the functions: Active costs every cold start the X-Ray SDK's "
            "import (about 140 ms), PassThrough none",
        },
        "OpenTelemetryLayerArn": {
            "Type": "String",
            "Default": "",
            "Description": "ARN of the ADOT Lambda layer for Python (arm64) to export the jobs' OpenTelemetry traces, "
            "sender to handler, to X-Ray through the layer's collector (with Tracing Active, which grants the "
            "X-Ray writes); empty: off",
        },
        "DbSecretArn": text(
            "Secrets Manager secret with the database URL, or RDS's JSON (username, password, host, port, dbname)"
        ),
        "DashboardTokenSecretArn": text("Secrets Manager secret with the token people sign in to the dashboard with"),
    }
    for secret in catalog.secrets():
        found[secret.parameter] = text(secret.description)
    for parameter in catalog.parameters:
        found[parameter.name] = text(parameter.description)
    for job_type in catalog.job_types:
        if job_type.group_concurrency is not None:
            found[group_concurrency_parameter(job_type.name)] = {
                "Type": "String",
                "Default": json.dumps(job_type.group_concurrency),
                "Description": f"Active {job_type.name} jobs per group at most: a number, or "
                '{"default": n, "tiers": {"<tier>": n}} (JSON)',
            }
        if job_type.rate_limit is not None:
            found[rate_limit_parameter(job_type.name)] = {
                "Type": "String",
                "Default": json.dumps(job_type.rate_limit),
                "Description": f'{job_type.name} jobs started at most: {{"limit": n, "period": seconds}} '
                "(JSON), or null for no limit",
            }
    found |= {
        "SubnetIds": {
            "Type": "List<AWS::EC2::Subnet::Id>",
            "Description": "Private subnets that reach the database (and Secrets Manager, through an endpoint or NAT)",
        },
        "SecurityGroupIds": {
            "Type": "List<AWS::EC2::SecurityGroup::Id>",
            "Description": "Security groups allowed to connect to the database",
        },
        "AlarmTopicArn": text("SNS topic that receives the alarms"),
        "WorkerTimeout": number(300, 30, 900, "Seconds one worker invocation may run"),
        "WorkerBatchSize": number(
            100,
            1,
            1000,
            "Most jobs one fetch claims; fewer while handlers are slow (the worker claims what its team can run)",
        ),
        "WorkerTeamSize": number(5, 1, 100, "Handlers a worker runs at once"),
        "WorkerMaxJobs": number(1000, 1, None, "Jobs one worker invocation takes at most"),
        "WorkerReservedConcurrency": number(
            2, 1, None, "Invocations of each worker at once (protects the database's connections)"
        ),
        "FailedJobsThreshold": {"Type": "Number", "Default": 100},
        "OldestQueuedJobAgeThreshold": number(
            900, 0, None, "Seconds the oldest ready job may wait before the alarm fires"
        ),
        "HeldSnapshotThreshold": number(
            300,
            1,
            None,
            "Seconds a snapshot may hold the MVCC horizon back (vacuum removes no finished job meanwhile) "
            "before the alarm fires and maintenance, /health and the dashboard name who holds it",
        ),
    }
    del found["OldestQueuedJobAgeThreshold"]["MinValue"]
    return found


def globals_(platform_spec: str, catalog: Catalog) -> dict[str, Any]:
    return {
        "Function": {
            "Runtime": "python3.12",
            "Architectures": ["arm64"],
            "MemorySize": 512,
            "Timeout": 60,
            "Tracing": Ref("Tracing"),
            "Layers": {
                "Fn::If": [
                    "OpenTelemetryOn",
                    [Ref("DependenciesLayer"), Ref("AppLayer"), Ref("OpenTelemetryLayerArn")],
                    [Ref("DependenciesLayer"), Ref("AppLayer")],
                ]
            },
            "VpcConfig": {"SubnetIds": Ref("SubnetIds"), "SecurityGroupIds": Ref("SecurityGroupIds")},
            "Environment": {
                "Variables": {
                    "JOBS_PLATFORM": platform_spec,
                    "DB_SECRET_ARN": Ref("DbSecretArn"),
                    "STAGE": Ref("Stage"),
                    "POWERTOOLS_SERVICE_NAME": "jobs",
                    "POWERTOOLS_METRICS_NAMESPACE": "Jobs",
                    # runtime.observability imports the X-Ray SDK only when tracing is on, and not
                    # beside OpenTelemetry, whose layer traces the functions instead.
                    "POWERTOOLS_TRACE_DISABLED": {"Fn::If": ["PowertoolsTracing", "false", "true"]},
                    # The ADOT layer's wrapper: the SDK and its collector start with the function.
                    "AWS_LAMBDA_EXEC_WRAPPER": {
                        "Fn::If": ["OpenTelemetryOn", "/opt/otel-instrument", Ref("AWS::NoValue")]
                    },
                    "POWERTOOLS_LOG_LEVEL": "INFO",
                    # Empty in AWS (boto3 ignores an empty endpoint). Declared so that `sam local`
                    # passes the local stack's values on: moto's endpoint, its queue settings.
                    "AWS_ENDPOINT_URL": "",
                    "JOBS_QUEUE_OVERRIDES": "",
                    # The rate-limited queues' limits, the same in every function that registers them.
                    "JOBS_RATE_LIMITS": rate_limits_variable(catalog),
                }
            },
        }
    }


def layers() -> dict[str, Any]:
    def layer(description: str, content: str, method: str) -> dict[str, Any]:
        return {
            "Type": "AWS::Serverless::LayerVersion",
            "Properties": {
                "Description": description,
                "ContentUri": content,
                "CompatibleRuntimes": ["python3.12"],
                "CompatibleArchitectures": ["arm64"],
            },
            "Metadata": {"BuildMethod": method, "BuildArchitecture": "arm64"},
        }

    return {
        "DependenciesLayer": layer(
            "Third-party packages (psycopg, croniter, Powertools)", "layers/dependencies/", "python3.12"
        ),
        "AppLayer": layer(
            "The project's own packages (jobqueue, runtime and the platform), packaged once for every function",
            "layers/app/",
            "makefile",
        ),
    }


def worker(job_type: JobType) -> dict[str, Any]:
    variables: dict[str, Any] = {
        "QUEUE_NAME": job_type.name,
        "BATCH_SIZE": job_type.batch_size if job_type.batch_size else Ref("WorkerBatchSize"),
        "TEAM_SIZE": job_type.team_size if job_type.team_size else Ref("WorkerTeamSize"),
        "MAX_JOBS": Ref("WorkerMaxJobs"),
        "MAX_CONCURRENCY": Ref("WorkerReservedConcurrency"),
    }
    if job_type.group_concurrency is not None:
        variables["GROUP_CONCURRENCY"] = Ref(group_concurrency_parameter(job_type.name))
    variables |= {secret.arn_env: Ref(secret.parameter) for secret in job_type.secrets}
    variables |= {name: Sub(value) if "${" in value else value for name, value in job_type.environment.items()}
    policies: list[dict[str, Any]] = [
        read_secret("DbSecretArn"),
        # Scale-out: a worker with work left may start more of itself, nothing else.
        invoke([job_type.name]),
        *(read_secret(secret.parameter) for secret in job_type.secrets),
        *(
            {
                "Statement": [
                    {"Effect": "Allow", "Action": list(permission.actions), "Resource": Sub(permission.resource)}
                ]
            }
            for permission in job_type.permissions
        ),
    ]
    properties: dict[str, Any] = {
        "FunctionName": Sub(function_name(job_type.name)),
        "Description": f"{job_type.name} worker. {job_type.description}",
        "CodeUri": "functions/worker/",
        "Handler": "app.handler",
        "Timeout": Ref("WorkerTimeout"),
        "ReservedConcurrentExecutions": Ref("WorkerReservedConcurrency"),
    }
    if job_type.memory_mb:
        properties["MemorySize"] = job_type.memory_mb
    properties |= {
        "Environment": {"Variables": variables},
        "Policies": policies,
        "Events": schedule("rate(1 minute)", f"Drain {job_type.name} every minute"),
    }
    return {"Type": "AWS::Serverless::Function", "Properties": properties}


def worker_functions(catalog: Catalog) -> Sub:
    """WORKER_FUNCTIONS: the JSON map queue -> worker function name (for kicks and scale-out)."""
    pairs = ", ".join(f'"{name}": "{function_name(name)}"' for name in catalog.names)
    return Sub("{" + pairs + "}")


def scheduler() -> dict[str, Any]:
    return {
        "Type": "AWS::Serverless::Function",
        "Properties": {
            "FunctionName": Sub("${AWS::StackName}-scheduler"),
            "Description": "Turns due cron fire times into jobs, exactly once each",
            "CodeUri": "functions/scheduler/",
            "Handler": "app.handler",
            "Timeout": 60,
            "ReservedConcurrentExecutions": 1,
            "Policies": [read_secret("DbSecretArn")],
            "Events": schedule("rate(1 minute)"),
        },
    }


def maintenance(catalog: Catalog) -> dict[str, Any]:
    return {
        "Type": "AWS::Serverless::Function",
        "Properties": {
            "FunctionName": Sub("${AWS::StackName}-maintenance"),
            "Description": "Expires, archives and purges jobs; records queue stats; scales out on backlog",
            "CodeUri": "functions/maintenance/",
            "Handler": "app.handler",
            "Timeout": 300,
            "ReservedConcurrentExecutions": 1,
            "Environment": {
                "Variables": {
                    "WORKER_FUNCTIONS": worker_functions(catalog),
                    "SCALE_JOBS_PER_WORKER": Ref("WorkerMaxJobs"),
                    "SCALE_MAX_WORKERS": Ref("WorkerReservedConcurrency"),
                    "HORIZON_WARN_SECONDS": Ref("HeldSnapshotThreshold"),
                }
            },
            "Policies": [read_secret("DbSecretArn"), invoke(list(catalog.names))],
            "Events": schedule("rate(5 minutes)"),
        },
    }


def api(catalog: Catalog) -> dict[str, Any]:
    def route(path: str, open_to_browsers: bool = False) -> dict[str, Any]:
        properties: dict[str, Any] = {"ApiId": Ref("HttpApi"), "Path": path, "Method": "ANY"}
        if open_to_browsers:
            # Browsers cannot sign requests with IAM: these routes skip the IAM
            # authorizer and the function signs people in with the dashboard token.
            properties["Auth"] = {"Authorizer": "NONE"}
        return {"Type": "HttpApi", "Properties": properties}

    return {
        "Type": "AWS::Serverless::Function",
        "Properties": {
            "FunctionName": Sub("${AWS::StackName}-api"),
            "Description": "/api/jobs health, stats, operations (/api/openapi.json); the /dashboard pages",
            "CodeUri": "functions/api/",
            "Handler": "app.handler",
            "Timeout": 29,
            "Environment": {
                "Variables": {
                    "WORKER_FUNCTIONS": worker_functions(catalog),
                    "API_TOKEN_SECRET_ARN": Ref("DashboardTokenSecretArn"),
                    "HORIZON_WARN_SECONDS": Ref("HeldSnapshotThreshold"),
                }
            },
            "Policies": [
                read_secret("DbSecretArn"),
                read_secret("DashboardTokenSecretArn"),
                invoke(list(catalog.names)),
            ],
            "Events": {
                "Jobs": route("/api/jobs"),
                "JobsProxy": route("/api/jobs/{proxy+}"),
                "OpenApiDocument": route("/api/openapi.json"),
                "Dashboard": route("/dashboard", open_to_browsers=True),
                "DashboardProxy": route("/dashboard/{proxy+}", open_to_browsers=True),
            },
        },
    }


def alarms(catalog: Catalog) -> dict[str, Any]:
    service = [{"Name": "service", "Value": "jobs"}]
    found = {
        "FailedJobsAlarm": alarm(
            "Too many failed jobs (not yet archived)",
            "FailedJobsTotal",
            Ref("FailedJobsThreshold"),
            namespace="Jobs",
            dimensions=service,
            statistic="Maximum",
        ),
        "OldestQueuedJobAlarm": alarm(
            "A ready job has waited too long (workers down or overwhelmed)",
            "OldestQueuedJobAgeMax",
            Ref("OldestQueuedJobAgeThreshold"),
            namespace="Jobs",
            dimensions=service,
            statistic="Maximum",
            periods=2,
            comparison="GreaterThanThreshold",
            missing="breaching",
        ),
        # Dead letters are failures waiting for a person (redrive or delete), not a backlog.
        "DeadLettersAlarm": alarm(
            "Jobs wait in a dead letter queue (failed for good: inspect, retry or delete them)",
            "DeadLetterJobs",
            0,
            namespace="Jobs",
            dimensions=service,
            statistic="Maximum",
            comparison="GreaterThanThreshold",
        ),
        # A transaction, standby or slot elsewhere keeps vacuum from removing finished jobs: the
        # fetch stays fast, but the tables grow until it ends (maintenance's log names who holds it).
        "HeldSnapshotAlarm": alarm(
            "A snapshot held open elsewhere keeps vacuum from removing finished jobs (see jobs doctor)",
            "OldestSnapshotAgeSeconds",
            Ref("HeldSnapshotThreshold"),
            namespace="Jobs",
            dimensions=service,
            statistic="Maximum",
            comparison="GreaterThanThreshold",
        ),
        "SchedulerErrorsAlarm": errors_alarm("The scheduler function is failing", "Scheduler", 1),
        "MaintenanceErrorsAlarm": errors_alarm("The maintenance function is failing", "Maintenance", 1, period=900),
    }
    for name in catalog.names:
        found[logical_id(name) + "ErrorsAlarm"] = errors_alarm(
            f"The {name} worker is failing (its claimed jobs expire and are retried)", logical_id(name), 3
        )
    return found


def template(catalog: Catalog, platform_spec: str) -> dict[str, Any]:
    resources: dict[str, Any] = layers()
    resources |= {logical_id(job_type.name): worker(job_type) for job_type in catalog.job_types}
    resources |= {"Scheduler": scheduler(), "Maintenance": maintenance(catalog), "Api": api(catalog)}
    resources["HttpApi"] = {
        "Type": "AWS::Serverless::HttpApi",
        "Properties": {
            "StageName": Ref("Stage"),
            "Auth": {"DefaultAuthorizer": "AWS_IAM", "EnableIamAuthorizer": True},
        },
    }
    resources |= alarms(catalog)
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": "AWS::Serverless-2016-10-31",
        "Description": f"{catalog.description} on a Postgres job queue (workers, scheduler, maintenance, API)",
        "Parameters": parameters(catalog),
        "Conditions": {
            "TracingActive": {"Fn::Equals": [Ref("Tracing"), "Active"]},
            "OpenTelemetryOn": {"Fn::Not": [{"Fn::Equals": [Ref("OpenTelemetryLayerArn"), ""]}]},
            "PowertoolsTracing": {
                "Fn::And": [{"Condition": "TracingActive"}, {"Fn::Not": [{"Condition": "OpenTelemetryOn"}]}]
            },
        },
        "Globals": globals_(platform_spec, catalog),
        "Resources": resources,
        "Outputs": {
            "ApiUrl": {
                "Description": "Base URL of the jobs API (IAM-signed requests)",
                "Value": Sub("https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${Stage}/api/jobs"),
            },
            "DashboardUrl": {
                "Description": "The jobs dashboard (sign in with the token in DashboardTokenSecretArn)",
                "Value": Sub("https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${Stage}/dashboard"),
            },
        },
    }


def platform_spec() -> str:
    """The platform's module: JOBS_PLATFORM, else the project's [tool.pgjobs] platform."""
    return project.find().platform


def render(spec: str | None = None) -> str:
    spec = spec or platform_spec()
    catalog = load_catalog({VARIABLE: spec})
    text = yaml.dump(template(catalog, spec), Dumper=_Dumper, sort_keys=False, width=200, allow_unicode=True)
    # A blank line before each top-level section and each resource, for people reading the file.
    lines: list[str] = []
    section = ""
    for line in text.splitlines():
        if not line.startswith(" "):
            section = line
            if lines:
                lines.append("")
        elif section == "Resources:" and line.startswith("  ") and not line.startswith("   ") and lines[-1] != section:
            lines.append("")
        lines.append(line)
    header = [
        f"# Generated by `jobs template` (deploy.template) from the {catalog.name} platform's job types",
        f"# ({spec}). Edit the declarations, not this file: a test fails when they disagree.",
    ]
    return "\n".join([*header, *lines]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--platform", default=None, help="module of the Catalog (default: the project's [tool.pgjobs] platform)"
    )
    args = parser.parse_args(argv)
    print(f"wrote {write(args.platform)}")
    return 0


def write(spec: str | None = None) -> Path:
    """(Re)write the current project's template.yaml from its catalog; returns its path."""
    found = project.on_path(project.find())
    found.template.write_text(render(spec or found.platform))
    return found.template


if __name__ == "__main__":
    sys.exit(main())
