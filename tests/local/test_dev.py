"""`make dev ARGS=--once` end to end: the whole local stack, the demo run to completion."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time
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
    # Captured output is plain lines: the functions' logs went to a file, nothing is wrapped.
    assert '"level"' not in first.stdout and "_aws" not in first.stdout
    # Each function's own stream, with Lambda's REPORT lines; cold starts say their init duration.
    scheduler = (data / "logs" / "local-scheduler.log").read_text()
    assert "REPORT RequestId: " in scheduler and "\tInit Duration: " in scheduler
    assert (data / "stack.log").exists()
    first_urls = urls_and_token(first.stdout)
    # The data directory is kept: a second run resumes on it, with the first run's jobs still there,
    # on the same ports and with the same token (an exported DATABASE_URL and a sign-in keep working).
    second = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False, cwd=ROOT)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert (data / "postgres" / "PG_VERSION").exists()
    assert urls_and_token(second.stdout) == first_urls
    assert processes_mentioning(str(data)) == [], "no process of the stack is left behind"


def urls_and_token(output: str) -> dict[str, str]:
    """The API's URL, the token and DATABASE_URL as make dev prints them, each whole on its line."""
    found = dict(re.findall(r"^(API|Token|DB): +(\S+)", output, re.M))
    assert set(found) == {"API", "Token", "DB"}, output[:2000]
    return found


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_a_short_soak_passes_and_reset_starts_from_empty_data(tmp_path: Path) -> None:
    """The demo for 30 simulated minutes with its faults: health stays good, the work drains, every
    pod is cleaned up and no slot leaks (`make dev ARGS="--soak 360"` runs six hours of it)."""
    data = tmp_path / "local"
    command = ["make", "-s", "--no-print-directory", "dev", f"ARGS=--soak 30 --data-dir {data}"]
    soak = subprocess.run(command, capture_output=True, text=True, timeout=400, check=False, cwd=ROOT)
    assert soak.returncode == 0, soak.stdout[-3000:] + soak.stderr[-3000:]
    assert "soak passed" in soak.stdout and "problem:" not in soak.stdout
    summary = re.search(r"soak: 30 simulated minutes, (\d+) jobs completed, (\d+) failed", soak.stdout)
    assert summary is not None and int(summary.group(1)) > 100 and summary.group(2) == "0", soak.stdout[-2000:]
    token = urls_and_token(soak.stdout)["Token"]
    # --reset: empty data, the same token and ports.
    reset = ["make", "-s", "--no-print-directory", "dev", f"ARGS=--once --reset --data-dir {data}"]
    again = subprocess.run(reset, capture_output=True, text=True, timeout=300, check=False, cwd=ROOT)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert urls_and_token(again.stdout)["Token"] == token
    completed = re.search(r"'completed': (\d+)\}", again.stdout)
    assert completed is not None and int(completed.group(1)) < 100, again.stdout[-2000:]  # the soak's jobs are gone


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


@pytest.mark.slow
def test_on_a_terminal_the_live_table_is_all_make_dev_prints(tmp_path: Path) -> None:
    """Under a terminal (a pty) the live table is redrawn in place: the functions' logs and their
    metrics (EMF, which Powertools prints) go to each function's own log, never above the table, a
    blob per invocation."""
    data = tmp_path / "local"
    pid, fd = pty.fork()
    if pid == 0:  # the child: make dev's own command, on the pty
        os.chdir(ROOT)
        os.execv(sys.executable, [sys.executable, "-m", "local.dev", "--soak", "30", "--data-dir", str(data)])
    output = bytearray()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the child closed the pty: it has ended
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    screen = output.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, screen[-3000:]
    assert "soak passed" in screen
    assert '"_aws"' not in screen and '"level"' not in screen, screen[-3000:]
    # Each function writes to its own stream, as each function's log group holds its own in AWS:
    # the scheduler's count never shares a blob, or a file, with a worker's.
    logs = {path.stem: path.read_text().splitlines() for path in (data / "logs").glob("*.log")}
    blobs = {name: [json.loads(line) for line in lines if '"_aws"' in line] for name, lines in logs.items()}
    assert any("ScheduledJobsCreated" in blob for blob in blobs["local-scheduler"])
    assert not any("JobsCompleted" in blob for blob in blobs["local-scheduler"])
    workers = [name for name in blobs if name not in ("local-scheduler", "local-maintenance")]
    assert len(workers) >= 3 and any("JobsCompleted" in blob for name in workers for blob in blobs[name])
    assert not any("ScheduledJobsCreated" in blob for name in workers for blob in blobs[name])
