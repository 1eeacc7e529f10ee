"""Cold start: each function module imports lean (no boto3 until it is needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
MEASURE = """
import importlib.util, json, sys, time
path = sys.argv[1]
start = time.perf_counter()
spec = importlib.util.spec_from_file_location("app", path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
elapsed = time.perf_counter() - start
print(json.dumps({"seconds": elapsed, "boto3": "boto3" in sys.modules, "xray": "aws_xray_sdk" in sys.modules}))
"""


@pytest.mark.parametrize("name", ["worker", "scheduler", "maintenance", "api"])
def test_function_module_imports_without_aws_sdk(name: str) -> None:
    env = {
        **os.environ,
        "QUEUE_NAME": "send-email",
        "POWERTOOLS_METRICS_NAMESPACE": "JobsTest",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "DATABASE_URL": "postgresql://localhost/none",
    }
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(ROOT / "functions" / name / "app.py")],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=ROOT,
    )
    measured = json.loads(out.stdout.strip().splitlines()[-1])
    assert measured["boto3"] is False, "boto3 is imported lazily, when a secret or an invoke needs it"
    print(f"{name}: imported in {measured['seconds'] * 1000:.0f} ms")
