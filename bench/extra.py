"""Benchmarks beyond throughput: latency at scale, cold start, memory."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from jobqueue import Queue

ROOT = Path(__file__).parents[1]
QUEUE = "scale"


def _fresh(dsn: str) -> Queue:
    queue = Queue(dsn)
    queue.db.connection().execute("DROP SCHEMA IF EXISTS jobqueue CASCADE")
    queue.migrate()
    queue.create_queue(QUEUE)
    return queue


def _fill(queue: Queue, count: int, name: str = QUEUE) -> None:
    batch = [{"data": {"n": 1}}] * 10_000
    for start in range(0, count, 10_000):
        queue.insert(name, batch[: min(10_000, count - start)])
    queue.db.connection().execute("VACUUM ANALYZE jobqueue.job")


def _fetch_complete_ms(queue: Queue, rounds: int = 50, refill: bool = False) -> tuple[float, float]:
    """Median fetch(100) and complete of them, ms; `refill`: 100 jobs sent before each fetch."""
    fetch, complete = [], []
    for _ in range(rounds):
        if refill:
            queue.insert(QUEUE, [{"data": {"n": 1}}] * 100)
        start = time.perf_counter()
        jobs = queue.fetch(QUEUE, 100)
        middle = time.perf_counter()
        queue.complete(QUEUE, jobs)
        fetch.append((middle - start) * 1000)
        complete.append((time.perf_counter() - middle) * 1000)
    return statistics.median(fetch), statistics.median(complete)


def _sizes(queue: Queue, jobs: int) -> dict[str, float]:
    """Bytes per million queued jobs: the heap of job_common, the partition holding the queue (with
    its TOAST), and each of its indexes."""
    sizes = """
        SELECT c.relname, pg_table_size(c.oid) FROM pg_class c WHERE c.oid = 'jobqueue.job_common'::regclass
        UNION ALL
        SELECT i.relname, pg_relation_size(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
        WHERE x.indrelid = 'jobqueue.job_common'::regclass ORDER BY 2 DESC
    """
    rows = queue.db.connection().execute(sizes).fetchall()
    return {name: size * 1_000_000 / jobs for name, size in rows}


def scaling(dsn: str, small: int, large: int) -> dict[str, Any]:
    """fetch(100) and complete(100) latency with `small` and `large` queued jobs, and beside `large` finished ones."""
    results: dict[str, Any] = {}
    for label, queued in (("queued_small", small), ("queued_large", large)):
        queue = _fresh(dsn)
        _fill(queue, queued)
        if label == "queued_large":
            results["bytes_per_million"] = _sizes(queue, queued)
        results[label] = dict(zip(("fetch_ms", "complete_ms"), _fetch_complete_ms(queue), strict=True))
        results[label]["jobs"] = queued
        queue.close()
    queue = _fresh(dsn)
    _fill(queue, large)
    conn = queue.db.connection()
    # Finished jobs not yet archived: set directly (a bench shortcut around the transition trigger).
    conn.execute("ALTER TABLE jobqueue.job DISABLE TRIGGER job_state_transition")
    conn.execute("UPDATE jobqueue.job SET state = 'completed', completed_on = now()")
    conn.execute("ALTER TABLE jobqueue.job ENABLE TRIGGER job_state_transition")
    _fill(queue, small)
    results["finished_large_plus_queued_small"] = dict(
        zip(("fetch_ms", "complete_ms"), _fetch_complete_ms(queue), strict=True)
    )
    results["finished_large_plus_queued_small"]["jobs"] = large
    queue.close()
    return results


def partitioned(dsn: str, huge: int, churn_rounds: int = 200) -> dict[str, Any]:
    """A huge queue beside a busy small one, its jobs in job_common or in a partition of their own.

    For each: the small queue's fetch 100 + complete 100 (median over `churn_rounds`), then a
    VACUUM of job_common after that churn (what autovacuum does for the small queue: its index
    passes read every index of the table, the huge queue's entries too), then deleting the huge
    queue (rows one by one, or its partition dropped) and the WAL that writes.
    """
    results: dict[str, Any] = {"huge": huge}
    for label, partition in (("shared", False), ("own", True)):
        queue = _fresh(dsn)
        conn = queue.db.connection()
        queue.create_queue("huge", partition=partition)
        _fill(queue, huge, "huge")
        fetch_ms, complete_ms = _fetch_complete_ms(queue, churn_rounds, refill=True)
        start = time.perf_counter()
        conn.execute("VACUUM jobqueue.job_common")
        vacuum_ms = (time.perf_counter() - start) * 1000
        wal_before = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]  # type: ignore[index]
        start = time.perf_counter()
        deleted = queue.delete_queue("huge")
        delete_ms = (time.perf_counter() - start) * 1000
        wal = conn.execute("SELECT pg_current_wal_insert_lsn() - %s::pg_lsn", (wal_before,)).fetchone()[0]  # type: ignore[index]
        results[label] = {
            "fetch_ms": fetch_ms,
            "complete_ms": complete_ms,
            "vacuum_ms": vacuum_ms,
            "delete_ms": delete_ms,
            "delete_wal_bytes": int(wal),
            "deleted": deleted,
        }
        queue.close()
    return results


# The queues flow_control times, each beside a standard queue: its settings.
FLOW_SETTINGS: dict[str, dict[str, Any]] = {
    "rate_limited": {"rate_limit": {"limit": 1_000_000, "period": 1}},
    "group_rate_limited": {"group_rate_limit": {"limit": 1_000_000, "period": 1}},
    "round_robin": {"fairness": "round_robin"},
}
FLOW_GROUPS = 1000


def flow_control(dsn: str, waiting: int, rounds: int = 200) -> dict[str, Any]:
    """fetch 100 + complete 100 on a queue with each flow-control setting (a rate limit it never
    reaches, a group rate limit no group reaches, round-robin turns) beside the same on a standard
    queue, each with `waiting` jobs queued over FLOW_GROUPS groups: what the turns, counts and
    records cost."""
    results: dict[str, Any] = {"waiting": waiting, "groups": FLOW_GROUPS}
    queue = _fresh(dsn)
    for name, settings in FLOW_SETTINGS.items():
        queue.create_queue(name, **settings)
    names = [QUEUE, *FLOW_SETTINGS]
    grouped = [{"data": {"n": n}, "group": {"id": f"g{n % FLOW_GROUPS}"}} for n in range(10_000)]
    for name in names:
        for start in range(0, waiting, 10_000):
            queue.insert(name, grouped[: min(10_000, waiting - start)])
    queue.db.connection().execute("VACUUM ANALYZE jobqueue.job")
    timings: dict[str, list[float]] = {name: [] for name in names}
    for round_number in range(rounds):
        for name, taken in timings.items():  # alternately, so that all see the same machine
            offset = round_number * 100 % 10_000
            queue.insert(name, grouped[offset : offset + 100])
            start = time.perf_counter()
            queue.complete(name, queue.fetch(name, 100))
            taken.append((time.perf_counter() - start) * 1000)
    results["standard_ms"] = statistics.median(timings[QUEUE])
    for name in FLOW_SETTINGS:
        results[f"{name}_ms"] = statistics.median(timings[name])
    queue.close()
    return results


def cold_start(repeats: int = 5) -> dict[str, float]:
    """Import time of each function module in a fresh interpreter (median of `repeats`), ms."""
    code = (
        "import importlib.util, sys, time\n"
        "t = time.perf_counter()\n"
        "spec = importlib.util.spec_from_file_location('app', sys.argv[1])\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "print((time.perf_counter() - t) * 1000)\n"
    )
    env = {
        **os.environ,
        "QUEUE_NAME": "send-email",
        "JOBS_PLATFORM": os.environ.get("JOBS_PLATFORM", "pods.jobs"),
        "POWERTOOLS_METRICS_NAMESPACE": "Bench",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "DATABASE_URL": "postgresql://localhost/unused",
    }
    timings = {}
    for name in ("worker", "scheduler", "maintenance", "api"):
        runs = [
            float(
                subprocess.run(
                    [sys.executable, "-c", code, str(ROOT / "functions" / name / "app.py")],
                    capture_output=True,
                    text=True,
                    env=env,
                    check=True,
                    cwd=ROOT,
                ).stdout.strip()
            )
            for _ in range(repeats)
        ]
        timings[name] = statistics.median(runs)
    timings["api first request"] = statistics.median(_api_first_request_ms(env) for _ in range(repeats))
    return timings


_FIRST_REQUEST = """
import importlib.util, json, sys, time
spec = importlib.util.spec_from_file_location('app', sys.argv[1])
module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
event = json.load(open(sys.argv[2]))
event["queryStringParameters"] = {"limit": "lots"}  # refused by validation: no database call
class Context:
    function_name = "jobs-api"; memory_limit_in_mb = 512; aws_request_id = "bench"
    invoked_function_arn = "arn:aws:lambda:us-east-1:1:function:jobs-api"
    def get_remaining_time_in_millis(self): return 30_000
t = time.perf_counter()
answer = module.handler(event, Context())
assert answer["statusCode"] == 400, answer
print((time.perf_counter() - t) * 1000)
"""


def _api_first_request_ms(env: dict[str, str]) -> float:
    """The API's first request after a cold start: it loads the validation machinery (runtime.openapi)."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _FIRST_REQUEST,
            str(ROOT / "functions" / "api" / "app.py"),
            str(ROOT / "events" / "api-failed.json"),
        ],
        capture_output=True,
        text=True,
        env={**env, "API_TOKEN": "local-dev-token"},  # the sample event's token
        check=True,
        cwd=ROOT,
    )
    return float(done.stdout.strip())


_RSS_WORKER = """
import json, resource, sys
from jobqueue import Queue
with Queue(sys.argv[1]) as q:
    drained = 0
    while jobs := q.fetch("scale", 100):
        drained += len(q.complete("scale", jobs))
print(json.dumps({"drained": drained, "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def worker_rss(dsn: str, count: int) -> dict[str, float]:
    """Peak memory of a process draining `count` jobs."""
    queue = _fresh(dsn)
    _fill(queue, count)
    queue.close()
    out = subprocess.run([sys.executable, "-c", _RSS_WORKER, dsn], capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


_PROBE = """
import json, sys, time
from jobqueue import Queue
# Fetch and complete on a queue of its own until told to stop; report the slowest round.
with Queue(sys.argv[1]) as q:
    print("ready", flush=True)
    slowest = 0.0
    rounds = 0
    while sys.stdin.readline().strip() == "go":
        start = time.perf_counter()
        q.complete("probe", q.fetch("probe", 10))
        slowest = max(slowest, time.perf_counter() - start)
        rounds += 1
        print("ok", flush=True)
print(json.dumps({"slowest_ms": slowest * 1000, "rounds": rounds}), flush=True)
"""


def purge(dsn: str, count: int, batch_size: int = 1000) -> dict[str, float]:
    """Archive then delete `count` finished jobs as maintenance does, while a worker keeps fetching.

    Reports rows/s for each step, the longest maintenance transaction (the
    longest any of its row locks is held; sampled from pg_stat_activity) and
    the slowest fetch+complete of the concurrent probe, which would show any
    lock that blocks workers.
    """
    import threading
    from datetime import UTC, datetime, timedelta

    import psycopg

    queue = _fresh(dsn)
    queue.create_queue("probe")
    queue.insert("probe", [{"data": {"n": 1}}] * 50_000)
    _fill(queue, count)
    conn = queue.db.connection()
    conn.execute("ALTER TABLE jobqueue.job DISABLE TRIGGER job_state_transition")
    conn.execute(
        "UPDATE jobqueue.job SET state = 'completed', completed_on = now() - interval '1 hour' WHERE name = %s",
        (QUEUE,),
    )
    conn.execute("ALTER TABLE jobqueue.job ENABLE TRIGGER job_state_transition")
    conn.execute("VACUUM ANALYZE jobqueue.job")
    later = datetime.now(UTC) + timedelta(days=400)  # past every archive_after and delete_after
    maintenance_pid = conn.info.backend_pid

    probe = subprocess.Popen(
        [sys.executable, "-c", _PROBE, dsn], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert probe.stdin is not None and probe.stdout is not None
    probe.stdout.readline()
    stop = threading.Event()
    longest = [0.0]

    def probing() -> None:
        assert probe.stdin is not None and probe.stdout is not None
        while not stop.is_set():
            probe.stdin.write("go\n")
            probe.stdin.flush()
            probe.stdout.readline()

    def sampling() -> None:
        with psycopg.connect(dsn, autocommit=True) as sampler:
            while not stop.is_set():
                row = sampler.execute(
                    "SELECT extract(epoch FROM clock_timestamp() - xact_start) FROM pg_stat_activity "
                    "WHERE pid = %s AND xact_start IS NOT NULL",
                    (maintenance_pid,),
                ).fetchone()
                if row and row[0] is not None:
                    longest[0] = max(longest[0], float(row[0]))

    threads = [threading.Thread(target=probing), threading.Thread(target=sampling)]
    for thread in threads:
        thread.start()
    results: dict[str, float] = {"jobs": count, "batch_size": batch_size}
    try:
        started = time.perf_counter()
        archived = queue.archive(batch_size=batch_size, now=later)
        middle = time.perf_counter()
        deleted, _ = queue.purge(batch_size=batch_size, now=later)
        finished = time.perf_counter()
        # The probe's finished jobs are archived and deleted too: rates count every row.
        if archived < count or deleted < count:
            raise RuntimeError(f"archived {archived} and deleted {deleted} jobs, expected at least {count}")
        results["archive_rows_per_s"] = archived / (middle - started)
        results["delete_rows_per_s"] = deleted / (finished - middle)
        results["rows_per_s"] = deleted / (finished - started)  # finished job to gone: both steps
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        probe.stdin.write("stop\n")
        probe.stdin.flush()
        report = json.loads(probe.stdout.readline())
        probe.wait()
        queue.close()
    results["longest_batch_ms"] = longest[0] * 1000
    results["probe_slowest_fetch_complete_ms"] = report["slowest_ms"]
    results["probe_rounds"] = report["rounds"]
    return results


def send_to_start(dsn: str, rounds: int) -> dict[str, Any]:
    """Send-to-handler-start latency through a kick and on a tick (bench/latency.py, fresh interpreter)."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.latency", dsn, str(rounds)], capture_output=True, text=True, check=False, cwd=ROOT
    )
    if out.returncode != 0:
        raise RuntimeError(f"bench.latency failed: {out.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result
