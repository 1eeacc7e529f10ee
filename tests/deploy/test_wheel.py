"""The packages as another team gets them: wheels built from the repository, installed in a fresh
virtualenv, used from outside the repository; and a new project made by `jobs init` from there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

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


@dataclass
class Installed:
    venv: Path
    wheel: Path  # pgjobs
    platform_wheel: Path  # pgjobs-pods
    env: dict[str, str]  # a clean environment: nothing of this repository's

    def run(self, *args: str | Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(a) for a in args], cwd=cwd, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def bin(self, name: str) -> Path:
        return self.venv / "bin" / name


def _build(source: Path, dist: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(dist), str(source)],
        check=True,
        timeout=300,
    )
    [wheel] = dist.glob("*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("wheel")
    # Built from copies: setuptools builds in the source tree (build/), which must not be the repository.
    source, platform = base / "source", base / "platform"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "CHANGELOG.md"):
        shutil.copy(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    shutil.copytree(ROOT / "shared", source / "shared", ignore=ignore)
    shutil.copytree(ROOT / "platform", platform, ignore=ignore)
    wheel = _build(source, base / "dist")
    platform_wheel = _build(platform, base / "dist-platform")
    assert wheel.name.startswith(f"pgjobs-{VERSION}-") and platform_wheel.name.startswith(f"pgjobs_pods-{VERSION}-")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    wanted = ["pytest", f"pgjobs[local] @ {wheel.as_uri()}"]
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-c", str(ROOT / "constraints.txt"), *wanted],
        check=True,
        timeout=900,
    )
    env = {
        "PATH": f"{venv / 'bin'}{os.pathsep}/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
    }
    return Installed(venv, wheel, platform_wheel, env)


def test_the_wheel_installs_and_works_from_a_fresh_virtualenv(installed: Installed, dsn: str, tmp_path: Path) -> None:
    used = installed.run(installed.bin("python"), "-c", USE, dsn, cwd=tmp_path)
    assert used.returncode == 0, used.stderr[-3000:]
    assert "used" in used.stdout
    helped = installed.run(installed.bin("jobs"), "--help", cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr[-3000:]
    assert "send" in helped.stdout and "top" in helped.stdout and "init" in helped.stdout
    version = installed.run(installed.bin("jobs"), "--version", cwd=tmp_path)
    assert version.stdout.strip() == f"jobs (pgjobs) {VERSION}"
    # The platform is a distribution of its own: pgjobs does not bring it.
    alone = installed.run(installed.bin("python"), "-c", "import pods", cwd=tmp_path)
    assert alone.returncode != 0 and "No module named 'pods'" in alone.stderr


def test_jobs_init_makes_a_project_whose_tests_and_local_run_pass(installed: Installed, tmp_path: Path) -> None:
    project = tmp_path / "billing-jobs"
    made = installed.run(
        installed.bin("jobs"), "init", project, "--pgjobs", f"pgjobs @ {installed.wheel.as_uri()}", cwd=tmp_path
    )
    assert made.returncode == 0, made.stderr[-3000:]
    assert (project / "billing_jobs" / "jobs.py").exists() and (project / "template.yaml").exists()
    again = installed.run(installed.bin("jobs"), "init", project, cwd=tmp_path)
    assert again.returncode != 0 and "is not empty" in again.stderr  # never writes over a project
    setup = installed.run(
        installed.bin("python"), "-m", "pip", "install", "--quiet", "-e", ".[dev]", cwd=project, timeout=600
    )
    assert setup.returncode == 0, setup.stderr[-3000:]

    tested = installed.run(installed.bin("python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=project)
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-3000:]
    assert "3 passed" in tested.stdout

    # A second job type: declared, then `jobs template` gives it a worker function.
    jobs = project / "billing_jobs" / "jobs.py"
    declared = '        JobType("invoice", handlers.greet, "Invoices", example={"name": "invoice"}),\n'
    jobs.write_text(jobs.read_text().replace("        ),\n    ),\n)\n", f"        ),\n{declared}    ),\n)\n"))
    stale = installed.run(installed.bin("python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=project)
    assert stale.returncode != 0 and "run `jobs template`" in stale.stdout
    regenerated = installed.run(installed.bin("jobs"), "template", cwd=project)
    assert regenerated.returncode == 0, regenerated.stderr[-3000:]
    assert "InvoiceWorker:" in (project / "template.yaml").read_text()

    ran = installed.run(
        installed.bin("jobs"), "dev", "--once", "--data-dir", tmp_path / "local", cwd=project, timeout=300
    )
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert "demo: 3 jobs, 3 ended as expected" in ran.stdout  # greet's example and schedule, invoice's example
    assert "all demo jobs ended as expected" in ran.stdout


def test_the_platform_installs_as_a_distribution_of_its_own(installed: Installed, tmp_path: Path) -> None:
    added = installed.run(
        installed.bin("python"), "-m", "pip", "install", "--quiet", "--no-deps", installed.platform_wheel, cwd=tmp_path
    )
    assert added.returncode == 0, added.stderr[-3000:]
    code = (
        "import pathlib, pods, podslocal.stack\n"
        "from pods.jobs import CATALOG\n"
        "assert 'site-packages' in pods.__file__\n"
        "assert (pathlib.Path(pods.__file__).parent / 'sql' / 'schema.sql').exists()\n"
        "print(len(CATALOG.job_types), type(podslocal.stack.PODS).__name__)\n"
    )
    found = installed.run(installed.bin("python"), "-c", code, cwd=tmp_path)
    assert found.returncode == 0, found.stderr[-3000:]
    assert found.stdout.split()[1] == "PodsPlatform" and int(found.stdout.split()[0]) >= 8
