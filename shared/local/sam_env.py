"""`sam local` against the local stack: `.local/sam-env.json`, and which event goes with which function.

`sam local invoke` and `sam local start-api` run a function in a container
with only the variables template.yaml declares for it, valued from an
env-vars file: one entry per logical ID, and `Parameters` for every function.
make dev writes that file for its stack, so that a container reaches the
stack's Postgres, moto (S3, SES, Secrets Manager), host agents and GitHub
stand-in:

- on Linux, through host networking (`--docker-network host`): the container
  shares the machine's loopback, and the file says 127.0.0.1;
- elsewhere (Docker Desktop), through host.docker.internal
  (`make dev ARGS="--sam-host host.docker.internal"`, the default off Linux).

Secrets stay in Secrets Manager, as in AWS: the database URL (as a container
reaches it), the API token and the GitHub token are secrets in moto, and the
file holds only their ARNs.
"""

from __future__ import annotations

import json
import platform as host_platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3

from deploy import project, sam_template

FILE_NAME = "sam-env.json"
LOOPBACK = "127.0.0.1"
DOCKER_DESKTOP_HOST = "host.docker.internal"
SECRET_PREFIX = "local/sam/"
# The local stack's plain values that sam's containers read from Secrets Manager instead.
AS_SECRETS = {
    "DATABASE_URL": "DB_SECRET_ARN",
    "API_TOKEN": "API_TOKEN_SECRET_ARN",
    "GITHUB_TOKEN": "GITHUB_TOKEN_SECRET_ARN",
}
# Sample events (events/) by the code a function runs: file names or name patterns.
EVENTS_BY_CODE: Mapping[str, tuple[str, ...]] = {
    "worker": ("schedule.json", "worker-kick.json", "worker-scale-out.json"),
    "scheduler": ("schedule.json",),
    "maintenance": ("schedule.json",),
    "api": ("api-*.json",),
}


def default_container_host() -> str:
    """How a container reaches this machine: its own loopback with host networking on Linux,
    host.docker.internal under Docker Desktop."""
    return LOOPBACK if host_platform.system() == "Linux" else DOCKER_DESKTOP_HOST


def docker_network_option(container_host: str) -> str:
    """The flag sam local needs for `container_host`."""
    return "--docker-network host" if container_host == LOOPBACK else ""


def for_container(value: str, container_host: str) -> str:
    """A value naming the stack on loopback, as a container reaches it."""
    for loopback in (LOOPBACK, "localhost"):
        value = value.replace(f"//{loopback}:", f"//{container_host}:").replace(f"@{loopback}:", f"@{container_host}:")
    return value


def container_environment(
    stack_env: Mapping[str, str], secret_arns: Mapping[str, str], container_host: str
) -> dict[str, str]:
    """The local stack's variables as a function in a container needs them."""
    env = {name: for_container(value, container_host) for name, value in stack_env.items() if name not in AS_SECRETS}
    env |= secret_arns
    # No Lambda service to start workers with: kicks and scale-out are off, work waits for the next invoke.
    env["WORKER_FUNCTIONS"] = ""
    env["POWERTOOLS_TRACE_DISABLED"] = "true"  # no X-Ray daemon beside sam local
    # make dev quiets its in-process functions; a container's output is what the user runs it for.
    for quieting in ("POWERTOOLS_LOG_LEVEL", "POWERTOOLS_METRICS_DISABLED"):
        env.pop(quieting, None)
    if container_host != LOOPBACK:
        # The host agents' rows say 127.0.0.1, which is the container itself there.
        env["HOST_AGENT_ADDRESS"] = container_host
    return env


def env_vars_document(template: dict[str, Any], env: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """sam's --env-vars format: `Parameters` for what every function declares (Globals), then
    one entry per function for its own declared variables the stack gives a value."""
    shared = sam_template.global_variables(template)
    document: dict[str, dict[str, str]] = {"Parameters": {name: env[name] for name in shared if name in env}}
    for logical_id, function in sam_template.functions(template).items():
        document[logical_id] = {name: env[name] for name in function.declared if name in env and name not in shared}
    return document


def store_secrets(stack_env: Mapping[str, str], container_host: str) -> dict[str, str]:
    """Put the stack's plain secrets into its Secrets Manager (moto); their ARNs by variable."""
    client = boto3.client(
        "secretsmanager",
        endpoint_url=stack_env["AWS_ENDPOINT_URL"],
        region_name=stack_env["AWS_DEFAULT_REGION"],
        aws_access_key_id=stack_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=stack_env["AWS_SECRET_ACCESS_KEY"],
    )
    arns: dict[str, str] = {}
    for plain, arn_variable in AS_SECRETS.items():
        if plain not in stack_env:
            continue
        name = SECRET_PREFIX + plain.lower().replace("_", "-")
        value = for_container(stack_env[plain], container_host)
        try:
            arns[arn_variable] = client.create_secret(Name=name, SecretString=value)["ARN"]
        except client.exceptions.ResourceExistsException:
            arns[arn_variable] = client.put_secret_value(SecretId=name, SecretString=value)["ARN"]
    return arns


def write(data_dir: Path, stack_env: Mapping[str, str], container_host: str) -> Path:
    """`<data dir>/sam-env.json` for the running stack."""
    env = container_environment(stack_env, store_secrets(stack_env, container_host), container_host)
    path = data_dir / FILE_NAME
    path.write_text(json.dumps(env_vars_document(sam_template.load(), env), indent=2, sort_keys=True) + "\n")
    path.chmod(0o600)  # no secret in it, but the ARNs of the stack's
    return path


def event_files(function: sam_template.Function) -> list[Path]:
    """The sample events that go with a function."""
    patterns = EVENTS_BY_CODE.get(function.code_uri.name, ())
    events = project.find().events
    return sorted({path for pattern in patterns for path in events.glob(pattern)}, key=lambda p: p.name)


def events_table(template: dict[str, Any] | None = None) -> str:
    """The README's table: each function of template.yaml, the code it runs and its events."""
    lines = ["| function (logical ID) | code | events/ |", "|---|---|---|"]
    root = project.find().root
    for logical_id, function in sam_template.functions(template, root).items():
        code = f"{function.code_uri.relative_to(root)}/"
        queue = function.environment.get("QUEUE_NAME")
        what = f"`{code}` (queue `{queue}`)" if queue else f"`{code}`"
        events = ", ".join(f"`{path.name}`" for path in event_files(function))
        lines.append(f"| `{logical_id}` | {what} | {events} |")
    return "\n".join(lines) + "\n"
