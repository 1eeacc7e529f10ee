"""The queue core must not depend on AWS or on the platform."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).parents[1] / "shared" / "jobqueue"


def test_core_imports_no_aws_or_platform_modules() -> None:
    code = (
        "import sys, jobqueue, jobqueue.queue, jobqueue.maintenance, jobqueue.scheduling, jobqueue.migrations\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'boto3', 'botocore', 'aws_lambda_powertools', 'pods', 'functions'})\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_core_source_mentions_no_aws_library() -> None:
    for path in CORE.rglob("*.py"):
        text = path.read_text()
        for name in ("boto3", "botocore", "aws_lambda_powertools"):
            assert f"import {name}" not in text and f"from {name}" not in text, path


def test_postgres_errors_are_translated_in_one_place() -> None:
    """Only jobqueue/database.py catches psycopg's exceptions; the rest of the core sees the library's own."""
    for path in CORE.rglob("*.py"):
        if path.name == "database.py":
            continue
        text = path.read_text()
        assert "except psycopg" not in text and "psycopg.errors" not in text and "pg_errors" not in text, path


def test_functions_import_the_runtime_only() -> None:
    """The Lambda entry points are thin: they reach our code through `runtime` alone."""
    ours = {"jobqueue", "runtime", "pods", "deploy", "local", "ops"}
    for path in (CORE.parents[1] / "functions").glob("*/app.py"):
        tree = ast.parse(path.read_text())
        imported = {
            (node.module or "").split(".")[0] if isinstance(node, ast.ImportFrom) else alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in node.names
        }
        assert imported & ours <= {"runtime"}, (path, imported & ours)
        assert "runtime" in imported, path
