"""pg-boss, the Node.js queue whose semantics we follow, as a baseline measured in the same run.

Driven from Node.js (bench/pgboss/bench.mjs) with its best settings: insert()
in batches, fetch() with batchSize, complete() by ids. Skipped, with the
reason printed, when Node.js or npm is missing or the package cannot be
installed; the rest of the benchmark does not depend on it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent / "pgboss"
SCRIPT = HERE / "bench.mjs"


class PeerUnavailable(Exception):
    pass


def install() -> str:
    """Install pg-boss from the npm registry (once); returns its version."""
    if not shutil.which("node") or not shutil.which("npm"):
        raise PeerUnavailable("Node.js or npm is not installed")
    package = HERE / "node_modules" / "pg-boss" / "package.json"
    if not package.exists():
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=HERE,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0 or not package.exists():
            raise PeerUnavailable(f"npm could not install pg-boss: {done.stderr.strip()[-300:]}")
    return str(json.loads(package.read_text())["version"])


def _run(*args: str) -> dict[str, Any]:
    done = subprocess.run(["node", str(SCRIPT), *args], capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"pg-boss {args[0]} failed: {done.stderr.strip()[-500:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def setup(dsn: str, queue: str) -> None:
    _run("setup", dsn, queue)


def single_sends(dsn: str, queue: str, count: int) -> float:
    setup(dsn, queue)
    return float(_run("send", dsn, queue, str(count))["rate"])


def batch_inserts(dsn: str, queue: str, count: int) -> float:
    setup(dsn, queue)
    return float(_run("insert", dsn, queue, str(count))["rate"])


def lifecycle(dsn: str, queue: str, count: int) -> dict[str, dict[str, float]]:
    """A job's whole life in pg-boss, phase by phase: {phase: {"seconds", "wal_bytes"}}."""
    setup(dsn, queue)
    phases: dict[str, dict[str, float]] = _run("lifecycle", dsn, queue, str(count))["phases"]
    return phases


def drain(dsn: str, queue: str, count: int, *, workers: int, batch_size: int, vacuum: Any) -> float:
    """`workers` Node processes drain `count` jobs; jobs/s from the start signal until all are done."""
    setup(dsn, queue)
    _run("fill", dsn, queue, str(count))
    vacuum()
    procs = [
        subprocess.Popen(
            ["node", str(SCRIPT), "drain", dsn, queue, str(batch_size)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
    ]
    try:
        for p in procs:
            assert p.stdout is not None
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError("a pg-boss worker did not start")
        start = time.perf_counter()
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        drained = 0
        for p in procs:
            assert p.stdout is not None
            drained += int(json.loads(p.stdout.readline())["drained"])
            p.wait(timeout=60)
        elapsed = time.perf_counter() - start
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    if drained != count:
        raise RuntimeError(f"pg-boss drained {drained} jobs, expected {count}")
    return drained / elapsed
