"""Queue settings and send options are declared once (jobqueue.settings); everything else follows."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from jobqueue import InvalidOptionError, Policy, QueueInfo
from jobqueue.settings import QUEUE_SETTINGS, SEND_OPTIONS, check_all, reference_table, with_defaults
from jobqueue.sqlfiles import queries_for

ROOT = Path(__file__).parents[2]


def test_queue_info_has_exactly_the_declared_settings() -> None:
    assert {f.name for f in fields(QueueInfo)} == {"name", *QUEUE_SETTINGS, "created_on", "updated_on", "paused"}


def test_queries_list_the_declared_settings() -> None:
    sql = queries_for("jobqueue")
    assert "{{" not in "".join(sql.values())
    assert ", ".join(QUEUE_SETTINGS) in sql["get_queue"]
    # No default is written into the SQL: create_queue takes every setting from Python.
    assert "coalesce" not in sql["create_queue"]


def test_defaults_and_bounds_come_from_the_declaration() -> None:
    defaults = with_defaults({})
    assert defaults["policy"] is Policy.STANDARD and defaults["retry_limit"] == 2 and defaults["expire_in"] == 900
    retry_limit = QUEUE_SETTINGS["retry_limit"].check
    with pytest.raises(InvalidOptionError, match="retry_limit must be between 0 and 1000, got 1001"):
        check_all(QUEUE_SETTINGS, {"retry_limit": 1001}, "queue setting")
    assert retry_limit.describe() == "0 .. 1,000"
    with pytest.raises(InvalidOptionError, match="unknown send option"):
        check_all(SEND_OPTIONS, {"retry_limt": 3}, "send option")


def test_readme_lists_every_option_as_declared() -> None:
    assert reference_table() in (ROOT / "README.md").read_text(), (
        "README's configuration reference differs from jobqueue.settings.reference_table()"
    )


@pytest.mark.slow
def test_mypy_refuses_a_misspelt_option(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from jobqueue import Queue\n"
        "def use(queue: Queue) -> None:\n"
        "    queue.send('q', None, retry_limit=3)\n"
        "    queue.send('q', None, retry_limt=3)\n"
        "    queue.create_queue('q', polcy='short')\n"
        "    queue.insert('q', [{'data': 1, 'priorty': 2}])\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--follow-imports=silent", str(sample)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"MYPYPATH": str(ROOT / "shared"), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert 'Unexpected keyword argument "retry_limt"' in result.stdout, result.stdout + result.stderr
    assert 'Unexpected keyword argument "polcy"' in result.stdout, result.stdout
    assert '"priorty"' in result.stdout, result.stdout
    assert "sample.py:3:" not in result.stdout
