"""A function's cold start imports only what every invocation needs.

Each function module is imported in a fresh interpreter, as Lambda's init phase does, and the
modules it loaded are checked: no AWS SDK client machinery (boto3, botocore's client and
session: the worker starts them at first use, to scale out or in a handler), no X-Ray SDK while
tracing is off, no platform handlers (their libraries load with the first job). The time itself
is measured by `make bench` (target <= 250 ms each), not here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Modules that cost tens of milliseconds each and that an invocation may not need.
HEAVY = ("boto3", "botocore.client", "botocore.session", "aws_xray_sdk", "pods.lifecycle", "pods.snapshots")
# The API validates with pydantic from its first request; its OpenAPI document and the validation
# machinery load when first asked for. No other function needs any of it.
NOT_FOR = {
    "worker": ("pydantic",),
    "scheduler": ("pydantic",),
    "maintenance": ("pydantic",),
    "api": (
        "aws_lambda_powertools.event_handler.openapi.models",
        "aws_lambda_powertools.event_handler.middlewares.openapi_validation",
    ),
}

PROBE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps(sorted(sys.modules)))
"""


@pytest.mark.parametrize("function", ["worker", "scheduler", "maintenance", "api"])
def test_a_cold_start_imports_nothing_heavy_it_does_not_need(function: str) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'shared'}{os.pathsep}{ROOT}",
        "QUEUE_NAME": "send-email",
        "DATABASE_URL": "postgresql://localhost/unused",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(ROOT / "functions" / function / "app.py")],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=ROOT,
    )
    loaded = set(json.loads(done.stdout))
    assert "runtime.observability" in loaded  # the probe did import the function
    heavy = (*HEAVY, *NOT_FOR[function])
    assert sorted(m for m in loaded if m in heavy or m.split(".")[0] in heavy) == []
