"""`make dev ARGS=--once` end to end: the whole local stack, the demo run to completion."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_dev_once_runs_the_demo_and_resumes(tmp_path: Path) -> None:
    data = tmp_path / "local"
    # Exactly what the README tells a newcomer to type (with a data directory of the test's own).
    command = ["make", "-s", "--no-print-directory", "dev", f"ARGS=--once --data-dir {data}"]
    first = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False, cwd=ROOT)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    # Six provisions, two snapshots, an email, a health check, and a job of each scheduled job
    # type (unless the scheduler's own tick already queued one under the short policy).
    demo = re.search(r"demo: (\d+) jobs, \1 ended as expected", first.stdout)
    assert demo is not None and int(demo.group(1)) >= 10, first.stdout[-3000:]
    assert "all demo jobs ended as expected" in first.stdout
    assert "without a token 401" in first.stdout
    assert "Dashboard: 200 with the token; without 401" in first.stdout
    # The data directory is kept: a second run resumes on it, with the first run's jobs still there.
    second = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False, cwd=ROOT)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert (data / "postgres" / "PG_VERSION").exists()
    assert processes_mentioning(str(data)) == [], "no process of the stack is left behind"


def processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # the process ended meanwhile
        if text in command:
            found.append(command)
    return found
