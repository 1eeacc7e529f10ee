"""`make dev ARGS=--once` end to end: the whole local stack, the demo run to completion."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_dev_once_runs_the_demo_and_resumes(tmp_path: Path) -> None:
    data = tmp_path / "local"
    command = [sys.executable, "-m", "local.dev", "--once", "--data-dir", str(data)]
    first = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "demo: 10 jobs, 10 ended as expected" in first.stdout
    assert "all demo jobs ended as expected" in first.stdout
    assert "without a token 401" in first.stdout
    # The data directory is kept: a second run resumes on it, with the first run's jobs still there.
    second = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert (data / "postgres" / "PG_VERSION").exists()
    leftovers = subprocess.run(["pgrep", "-f", str(data)], capture_output=True, text=True, check=False)
    assert leftovers.stdout.strip() == "", "no process of the stack is left behind"
