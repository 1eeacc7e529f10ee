"""`jobs invoke`: run a function of template.yaml locally, without Docker.

Reads the function's handler, code, environment and timeout from the
template, runs the handler in a subprocess with a Lambda-like context, and
kills it at the timeout as Lambda would. The local environment (DATABASE_URL,
API_TOKEN, ...) fills in what the template takes from AWS.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local import sam_template
from local.lambda_runner import RESULT_MARK
from runtime import platform

LOCAL_DEFAULTS = {"AWS_DEFAULT_REGION": "eu-west-1"}
# Locally there is no X-Ray daemon to send traces to, whatever the template says.
LOCAL_FORCED = {"POWERTOOLS_TRACE_DISABLED": "true"}


@dataclass
class Invocation:
    function: str
    ok: bool
    timed_out: bool
    result: Any
    output: str
    returncode: int


def environment(function: sam_template.Function, overrides: dict[str, str] | None = None) -> dict[str, str]:
    # Secrets' ARNs come from AWS; locally the environment has the values themselves (or moto's ARNs).
    from_aws = {k for k in function.environment if k.endswith("_SECRET_ARN")}
    env = {k: v for k, v in function.environment.items() if k not in from_aws}
    merged = {**LOCAL_DEFAULTS, **os.environ, **env, **LOCAL_FORCED, **(overrides or {})}
    # The local environment wins for what the template gets from AWS or the user sets.
    for key in ("DATABASE_URL", "API_TOKEN", platform.VARIABLE, "AWS_ENDPOINT_URL", *from_aws):
        if key in os.environ:
            merged[key] = os.environ[key]
        if overrides and key in overrides:
            merged[key] = overrides[key]
    return merged


def invoke(
    logical_id: str,
    event_file: Path,
    *,
    overrides: dict[str, str] | None = None,
    timeout: float | None = None,
    template: dict[str, Any] | None = None,
) -> Invocation:
    functions = sam_template.functions(template)
    if logical_id not in functions:
        raise KeyError(f"no function {logical_id!r} in template.yaml; functions: {', '.join(sorted(functions))}")
    function = functions[logical_id]
    limit = timeout if timeout is not None else function.timeout
    command = [
        sys.executable,
        "-m",
        "local.lambda_runner",
        "--code-uri",
        str(function.code_uri),
        "--handler",
        function.handler,
        "--function-name",
        function.function_name,
        "--timeout",
        str(limit),
        "--memory",
        str(function.memory),
        "--event",
        str(event_file),
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment(function, overrides),
        start_new_session=True,
    )
    timed_out = False
    try:
        output, _ = process.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        # Lambda does not ask: the process is gone at the timeout.
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        timed_out = True
    result: Any = None
    lines = []
    for line in output.splitlines():
        if line.startswith(RESULT_MARK):
            result = json.loads(line[len(RESULT_MARK) :])
        else:
            lines.append(line)
    if timed_out:
        result = {"errorType": "Timeout", "errorMessage": f"Task timed out after {limit:.2f} seconds"}
    ok = not timed_out and process.returncode == 0
    return Invocation(logical_id, ok, timed_out, result, "\n".join(lines), process.returncode)
