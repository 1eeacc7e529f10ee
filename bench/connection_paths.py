"""Draining through the connection paths users deploy, against the default direct connection.

Two worker processes drain one queue (fetch 100, complete) at the library's
defaults over a direct connection: the baseline. Beside it, in the same run:
the same drain with psycopg's prepared statements turned on (what a direct
connection may opt into), through PgBouncer in transaction mode (what Lambda
functions behind a pooler do), and the drain of a singleton queue with many
keys (the keyed fetch: lock the keys, then claim, in one short transaction).
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

from jobqueue import Queue
from local.embedded_pgbouncer import temporary_pgbouncer
from local.embedded_postgres import EmbeddedPostgres

QUEUE = "paths"
WORKERS = 2
BATCH = 100
KEYS = 1000


def _worker(dsn: str, prepare_threshold: int | None, barrier: Any, done: Any) -> None:
    count = 0
    with Queue(dsn, prepare_threshold=prepare_threshold) as queue:
        barrier.wait(timeout=120)
        while jobs := queue.fetch(QUEUE, BATCH):
            count += len(queue.complete(QUEUE, jobs))
    done.put(count)


def _fill(dsn: str, count: int, policy: str) -> None:
    with Queue(dsn) as queue:
        queue.db.connection().execute("DROP SCHEMA IF EXISTS jobqueue CASCADE")
        queue.migrate()
        queue.create_queue(QUEUE, policy=policy)
        for start in range(0, count, 5000):
            size = min(5000, count - start)
            queue.insert(QUEUE, [{"data": {"n": n}, "singleton_key": f"k{n % KEYS}"} for n in range(size)])
        queue.db.connection().execute("VACUUM ANALYZE")


def _drain(fill_dsn: str, work_dsn: str, count: int, *, policy: str = "standard", prepare: int | None = None) -> float:
    _fill(fill_dsn, count, policy)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS + 1)
    done = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(work_dsn, prepare, barrier, done)) for _ in range(WORKERS)]
    for proc in procs:
        proc.start()
    barrier.wait(timeout=120)
    start = time.perf_counter()
    total = sum(done.get(timeout=600) for _ in procs)
    elapsed = time.perf_counter() - start
    for proc in procs:
        proc.join()
    if total != count:
        raise RuntimeError(f"drained {total} jobs, expected {count}")
    return total / elapsed


def _sends(fill_dsn: str, work_dsn: str, count: int, prepare: int | None = None) -> float:
    """Single sends, one at a time, on one connection: jobs/s."""
    _fill(fill_dsn, 0, "standard")
    with Queue(work_dsn, prepare_threshold=prepare) as queue:
        for _ in range(100):  # warm up (and let psycopg prepare, when it does)
            queue.send(QUEUE, {"n": 0})
        started = time.perf_counter()
        for n in range(count):
            queue.send(QUEUE, {"n": n})
        return count / (time.perf_counter() - started)


def compare(server: EmbeddedPostgres, count: int, runs: int) -> dict[str, Any]:
    """Jobs/s of each path (median of `runs`) and its ratio to the direct default."""
    direct = server.url()
    rates: dict[str, list[float]] = {"direct": [], "prepared": [], "pgbouncer": [], "singleton": []}
    sends: dict[str, list[float]] = {"direct": [], "prepared": [], "pgbouncer": []}
    with temporary_pgbouncer(server, pool_size=WORKERS) as bouncer:
        pooled = bouncer.url("postgres")
        for _ in range(runs):
            rates["direct"].append(_drain(direct, direct, count))
            rates["prepared"].append(_drain(direct, direct, count, prepare=5))
            rates["pgbouncer"].append(_drain(direct, pooled, count))
            rates["singleton"].append(_drain(direct, direct, count, policy="singleton"))
            sends["direct"].append(_sends(direct, direct, count // 10))
            sends["prepared"].append(_sends(direct, direct, count // 10, prepare=5))
            sends["pgbouncer"].append(_sends(direct, pooled, count // 10))
    medians = {name: sorted(values)[len(values) // 2] for name, values in rates.items()}
    send_medians = {name: sorted(values)[len(values) // 2] for name, values in sends.items()}
    return {
        "sends": count // 10,
        "sends_per_s": send_medians,
        "send_ratio": {name: rate / send_medians["direct"] for name, rate in send_medians.items()},
        "jobs": count,
        "workers": WORKERS,
        "batch": BATCH,
        "keys": KEYS,
        "jobs_per_s": medians,
        "ratio": {name: rate / medians["direct"] for name, rate in medians.items()},
    }
