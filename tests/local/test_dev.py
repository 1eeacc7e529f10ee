"""`make dev ARGS=--once` end to end: a real embedded Postgres, the demo run to completion."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_dev_once_runs_the_demo_and_resumes(tmp_path: Path) -> None:
    data = tmp_path / "local"
    command = [sys.executable, "-m", "local.dev", "--once", "--data-dir", str(data)]
    first = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "demo: 20 sent, 20 completed (2 after one retry); all completed: True" in first.stdout
    # The data directory is kept: a second run resumes on it and finds the first run's jobs.
    second = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "provision-pod: 20 jobs completed in this data directory" in first.stdout
    assert "provision-pod: 40 jobs completed in this data directory" in second.stdout
    assert (data / "postgres" / "PG_VERSION").exists()
