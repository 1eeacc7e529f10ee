"""The README's `jobs` examples run as written, and every flag they mention exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from ops.cli import main

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text()


def jobs_block() -> str:
    section = README.split("### The `jobs` command", 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match is not None, "the section has a bash block"
    return match.group(1)


@pytest.mark.slow
def test_the_jobs_block_runs_as_written(dsn: str, tmp_path: Path) -> None:
    """Against a database as make dev leaves it: `.local/env` from the stack, the repository's
    virtualenv and events (linked, since the block uses paths relative to the repository)."""
    info = dict(part.split("=", 1) for part in dsn.split())
    url = f"postgresql://{info['user']}@{info['host']}:{info['port']}/{info['dbname']}"
    (tmp_path / ".local").mkdir()
    (tmp_path / ".local" / "env").write_text(f"DATABASE_URL={url}\nAPI_URL=http://127.0.0.1:1/api/jobs\nAPI_TOKEN=t\n")
    for name in (".venv", "events"):
        (tmp_path / name).symlink_to(ROOT / name)
    script = "set -euo pipefail\n" + jobs_block()
    done = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "inserted 1 of 1 jobs into send-email" in done.stdout
    assert "blocked keys (0): none" in done.stdout
    assert '"created"' in done.stdout  # the scheduler's answer


def test_every_flag_and_command_the_readme_names_exists() -> None:
    mentioned = set(re.findall(r"\.venv/bin/jobs ([a-z][a-z-]*(?: [a-z][a-z-]*)?)", README))
    runner = CliRunner()
    for command in sorted(mentioned):
        words = command.split()
        helped = runner.invoke(main, [*words, "--help"])
        if helped.exit_code != 0:  # the second word was an argument, not a subcommand
            words = words[:1]
            helped = runner.invoke(main, [*words, "--help"])
        assert helped.exit_code == 0, command
        for line in README.splitlines():
            if f".venv/bin/jobs {' '.join(words)}" in line:
                for flag in re.findall(r"(?<=\s)(--[a-z-]+|-e)\b", line.split("#")[0]):
                    assert flag in helped.output, f"{command}: {flag} is not an option"
