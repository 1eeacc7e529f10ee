"""`jobs invoke`: run a function of template.yaml locally, without Docker.

Reads the function's handler, code, environment, memory and timeout from the
template and runs it as Lambda does: AWS's runtime interface client in a new
process, served by a Runtime API on loopback (local.runtime_api), killed at the
timeout. The local environment (DATABASE_URL, API_TOKEN, ...) fills in what the
template takes from AWS.

With an env-vars file (`--env-vars .local/sam-env.json`) the function gets
exactly the environment `sam local invoke --env-vars` would give its
container, and nothing of the caller's: what runs here runs there.
"""

from __future__ import annotations

import json
import os
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy import project, sam_template
from local.runtime_api import FunctionConfig, Report, Sandbox
from runtime import catalog

LOCAL_DEFAULTS = {"AWS_DEFAULT_REGION": "eu-west-1"}
# Locally there is no X-Ray daemon to send traces to, whatever the template says.
LOCAL_FORCED = {"POWERTOOLS_TRACE_DISABLED": "true"}
# What a Lambda container has besides its function's variables (and what the subprocess needs).
PROCESS_BASICS = ("PATH", "LANG", "TZ")
SAM_DEFAULT_REGION = "us-east-1"  # sam's own, when neither the shell nor samconfig.toml names one


@dataclass
class Invocation:
    function: str
    ok: bool
    timed_out: bool
    result: Any  # the payload Lambda returns: the handler's result, or the error object
    output: str  # the function's log: its output, with Lambda's START, END and REPORT lines
    returncode: int
    report: Report | None = None


def environment(function: sam_template.Function, overrides: dict[str, str] | None = None) -> dict[str, str]:
    # Secrets' ARNs come from AWS; locally the environment has the values themselves (or moto's ARNs).
    from_aws = {k for k in function.environment if k.endswith("_SECRET_ARN")}
    env = {k: v for k, v in function.environment.items() if k not in from_aws}
    merged = {**LOCAL_DEFAULTS, **os.environ, **env, **LOCAL_FORCED, **(overrides or {})}
    # The local environment wins for what the template gets from AWS or the user sets.
    for key in (
        "DATABASE_URL",
        "API_TOKEN",
        catalog.VARIABLE,
        catalog.OVERRIDES_VARIABLE,
        "AWS_ENDPOINT_URL",
        *from_aws,
    ):
        if key in os.environ:
            merged[key] = os.environ[key]
        if overrides and key in overrides:
            merged[key] = overrides[key]
    return merged


class EnvVarsError(ValueError):
    """An env-vars file sam local would refuse."""


def read_env_vars(path: Path) -> dict[str, dict[str, Any]]:
    """An env-vars file as sam local reads it: {"Parameters": {...}, "<LogicalId>": {...}}."""
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise EnvVarsError(f"{path} is not JSON: {exc}") from None
    if not isinstance(document, dict) or not all(isinstance(v, dict) for v in document.values()):
        raise EnvVarsError(f'{path}: expected an object of objects ({{"Parameters": {{...}}, "<LogicalId>": {{...}}}})')
    return document


def sam_region(shell: Mapping[str, str] = os.environ, config: Path | None = None) -> str:
    """The region sam local gives a container: the shell's, else samconfig.toml's, else sam's default."""
    config = config or project.find().samconfig
    region = shell.get("AWS_REGION") or shell.get("AWS_DEFAULT_REGION")
    if region:
        return region
    if config.exists():
        parameters = tomllib.loads(config.read_text()).get("default", {}).get("global", {}).get("parameters", {})
        if parameters.get("region"):
            return str(parameters["region"])
    return SAM_DEFAULT_REGION


def _stringify(value: Any) -> str:
    """A value as sam local passes it: objects and lists blank, booleans lowercase."""
    if isinstance(value, dict | list | tuple) or value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def sam_environment(
    function: sam_template.Function, env_vars: Mapping[str, Mapping[str, Any]], shell: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """The environment `sam local invoke --env-vars` gives the function's container.

    AWS's own variables first; then each variable the template declares (and
    only those: sam drops the rest): its template value, the shell's value of
    the same name over it, the file's over both (Parameters, then the function's
    entry by logical ID or function name).
    """
    region = sam_region(shell)
    result = {
        "AWS_SAM_LOCAL": "true",
        "AWS_LAMBDA_FUNCTION_NAME": function.logical_id,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory),
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(function.timeout),
        "AWS_LAMBDA_FUNCTION_HANDLER": function.handler,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": shell.get("AWS_ACCESS_KEY_ID", "defaultkey"),
        "AWS_SECRET_ACCESS_KEY": shell.get("AWS_SECRET_ACCESS_KEY", "defaultsecret"),
    }
    if shell.get("AWS_SESSION_TOKEN"):
        result["AWS_SESSION_TOKEN"] = shell["AWS_SESSION_TOKEN"]
    overrides = {
        **env_vars.get("Parameters", {}),
        **(env_vars.get(function.logical_id) or env_vars.get(function.function_name) or {}),
    }
    for name in function.declared:
        value: Any = function.environment.get(name, "")
        if name in shell:
            value = shell[name]
        if name in overrides:
            value = overrides[name]
        result[name] = _stringify(value)
    return result


def invoke(
    logical_id: str,
    event_file: Path,
    *,
    overrides: dict[str, str] | None = None,
    timeout: float | None = None,
    template: dict[str, Any] | None = None,
    env_vars: Mapping[str, Mapping[str, Any]] | None = None,
    record_env: Path | None = None,
) -> Invocation:
    """Run the function once, in a new execution environment (a cold start), as Lambda runs it.

    With `env_vars`, in exactly sam local's environment (`overrides` unused); `record_env` names a
    file for the variables the project's code read (tests).
    """
    functions = sam_template.functions(template)
    if logical_id not in functions:
        raise KeyError(f"no function {logical_id!r} in template.yaml; functions: {', '.join(sorted(functions))}")
    function = functions[logical_id]
    if env_vars is not None:
        basics = {k: os.environ[k] for k in PROCESS_BASICS if k in os.environ}
        process_env = {**basics, **sam_environment(function, env_vars)}
    else:
        process_env = environment(function, overrides)
    config = FunctionConfig(
        name=function.function_name,
        handler=function.handler,
        code_uri=function.code_uri,
        timeout_s=timeout if timeout is not None else function.timeout,
        memory_mb=function.memory,
        environment=process_env,
        region=process_env.get("AWS_REGION") or process_env.get("AWS_DEFAULT_REGION") or SAM_DEFAULT_REGION,
    )
    recorder = None
    if record_env is not None:
        recorder = [sys.executable, "-m", "local.lambda_runner", "--record-env", str(record_env), "--"]
    lines: list[str] = []
    # The project's folder stands in for the layer of its own packages (/opt/python in Lambda).
    sandbox = Sandbox(config, lines.append, runtime_command=recorder, extra_path=(str(project.find().root),))
    try:
        outcome = sandbox.invoke(event_file.read_bytes())
    finally:
        sandbox.stop()
    return Invocation(
        logical_id,
        outcome.ok,
        outcome.timed_out,
        outcome.payload,
        "\n".join(lines),
        0 if outcome.ok else 1,
        outcome.report,
    )
