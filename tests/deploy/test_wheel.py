"""The package as another team gets it: a wheel built from the repository, installed in a fresh
virtualenv, used from outside the repository."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]

USE = textwrap.dedent(
    """
    import pathlib, sys
    import jobqueue, runtime
    from jobqueue import Queue

    here = pathlib.Path(jobqueue.__file__).parent
    assert "site-packages" in str(here), here  # the installed package, not the repository's
    assert (here / "py.typed").exists() and (pathlib.Path(runtime.__file__).parent / "py.typed").exists()
    assert len(list((here / "sql" / "migrations").glob("*.sql"))) >= 30
    with Queue(sys.argv[1], schema="wheel") as q:
        q.migrate()
        q.create_queue("w")
        sent = q.send("w", {"from": "the wheel"})
        [job] = q.fetch("w")
        q.complete("w", job, {"ok": True})
        done = q.get_job(sent)
        assert done is not None and done.state == "completed" and done.output == {"ok": True}
    print("used", sent)
    """
)


@pytest.mark.slow
def test_the_wheel_installs_and_works_from_a_fresh_virtualenv(tmp_path: Path, dsn: str) -> None:
    dist, venv, source = tmp_path / "dist", tmp_path / "venv", tmp_path / "source"
    # Built from a copy: setuptools builds in the source tree (build/), which must not be the repository.
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "CHANGELOG.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "shared", source / "shared", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(dist), str(source)],
        check=True,
        timeout=300,
    )
    [wheel] = dist.glob("pgjobs-*.whl")
    assert wheel.name.startswith(f"pgjobs-{VERSION}-")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    constraints = ROOT / "constraints.txt"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-c", str(constraints), str(wheel)],
        check=True,
        timeout=600,
    )
    used = subprocess.run(
        [str(python), "-c", USE, dsn], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert used.returncode == 0, used.stderr[-3000:]
    assert "used" in used.stdout
    jobs = venv / "bin" / "jobs"
    helped = subprocess.run(
        [str(jobs), "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert helped.returncode == 0, helped.stderr[-3000:]
    assert "send" in helped.stdout and "top" in helped.stdout
    version = subprocess.run([str(jobs), "--version"], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert version.stdout.strip() == f"jobs (pgjobs) {VERSION}"
