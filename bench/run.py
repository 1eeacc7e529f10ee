"""`make bench` (python -m bench): throughput of our queue against the raw-SQL ceiling, in one run.

Each figure is measured for both implementations on the same temporary
Postgres, one after the other, and reported as a ratio (ours / raw): the
machine's speed cancels out, only the cost of the queue's design remains.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import extra
from bench.raw_queue import RawQueue
from jobqueue import Queue
from local.embedded_postgres import temporary_postgres

RESULTS = Path(__file__).parent / "results"
QUEUE = "bench"
PAYLOAD = {"podId": "pod-123", "spec": {"tier": "dev.small", "image": "ubuntu:24.04"}, "userId": "user-1"}
# Durable writes, but commits do not wait for the disk flush: this measures the
# queue's own work rather than the machine's fsync latency, for both sides.
SERVER_SETTINGS = {"synchronous_commit": "off", "shared_buffers": "256MB", "max_connections": "50"}


@dataclass
class Figure:
    name: str
    unit: str
    ours: float
    raw: float
    target: float  # minimum acceptable ours/raw

    @property
    def ratio(self) -> float:
        return self.ours / self.raw if self.raw else 0.0


def pin(server_pid: int) -> bool:
    """Postgres on CPU 0, this process (and the workers it starts) on the others.

    On a small machine the scheduler otherwise moves client and server between
    cores at will, and one connection can be 30% faster than another running
    the same statement. Pinning makes both sides of every ratio run alike.
    """
    cpus = os.sched_getaffinity(0)
    if len(cpus) < 2 or 0 not in cpus:
        return False
    os.sched_setaffinity(server_pid, {0})
    os.sched_setaffinity(0, cpus - {0})
    return True


def fresh(dsn: str) -> tuple[Queue, RawQueue]:
    queue = Queue(dsn)
    queue.db.connection().execute("DROP SCHEMA IF EXISTS jobqueue CASCADE")
    queue.migrate()
    queue.create_queue(QUEUE)
    raw = RawQueue(dsn)
    raw.reset()
    return queue, raw


def single_sends(dsn: str, count: int, chunk: int = 100) -> tuple[float, float, list[float]]:
    """Alternate chunks of ours and raw, so drift in the machine's speed hits both alike."""
    queue, raw = fresh(dsn)
    for _ in range(200):  # warm up: prepared statements, caches
        queue.send(QUEUE, PAYLOAD)
        raw.send(QUEUE, PAYLOAD)
    latencies: list[float] = []
    ours_time = raw_time = 0.0
    for _ in range(count // chunk):
        start = time.perf_counter()
        for _ in range(chunk):
            t = time.perf_counter()
            queue.send(QUEUE, PAYLOAD)
            latencies.append(time.perf_counter() - t)
        ours_time += time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(chunk):
            raw.send(QUEUE, PAYLOAD)
        raw_time += time.perf_counter() - start
    queue.close()
    raw.close()
    done = count - count % chunk
    return done / ours_time, done / raw_time, latencies


def batch_inserts(dsn: str, count: int, batch: int = 1000) -> tuple[float, float]:
    queue, raw = fresh(dsn)
    jobs = [{"data": PAYLOAD} for _ in range(batch)]
    items = [PAYLOAD] * batch
    queue.insert(QUEUE, jobs)
    raw.copy(QUEUE, items)
    ours_time = raw_time = 0.0
    for _ in range(count // batch):
        start = time.perf_counter()
        queue.insert(QUEUE, jobs)
        ours_time += time.perf_counter() - start
        start = time.perf_counter()
        raw.copy(QUEUE, items)
        raw_time += time.perf_counter() - start
    queue.close()
    raw.close()
    done = count - count % batch
    return done / ours_time, done / raw_time


def _drain_worker(kind: str, dsn: str, batch_size: int, barrier: Any, done: Any) -> None:
    count = 0
    if kind == "ours":
        queue = Queue(dsn)
        barrier.wait(timeout=120)
        while jobs := queue.fetch(QUEUE, batch_size):
            count += len(queue.complete(QUEUE, jobs))
        queue.close()
    else:
        raw = RawQueue(dsn)
        barrier.wait(timeout=120)
        while rows := raw.fetch(QUEUE, batch_size):
            raw.complete([row[0] for row in rows])
            count += len(rows)
        raw.close()
    done.put(count)


def drain(dsn: str, kind: str, count: int, workers: int, batch_size: int) -> float:
    queue, raw = fresh(dsn)
    for start in range(0, count, 5000):
        size = min(5000, count - start)
        if kind == "ours":
            queue.insert(QUEUE, [{"data": PAYLOAD}] * size)
        else:
            raw.copy(QUEUE, [PAYLOAD] * size)
    queue.db.connection().execute("VACUUM ANALYZE")
    queue.close()
    raw.close()
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(workers + 1)
    done = ctx.Queue()
    procs = [ctx.Process(target=_drain_worker, args=(kind, dsn, batch_size, barrier, done)) for _ in range(workers)]
    for p in procs:
        p.start()
    barrier.wait(timeout=120)  # a worker that died before the start fails the run instead of hanging
    start = time.perf_counter()
    total = sum(done.get(timeout=600) for _ in procs)
    elapsed = time.perf_counter() - start
    for p in procs:
        p.join()
    if total != count:
        raise RuntimeError(f"{kind} drained {total} jobs, expected {count}")
    return total / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts: proves the benchmark works (< 1 min)")
    parser.add_argument("--runs", type=int, default=None, help="repetitions per figure (the median is kept)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin Postgres and the benchmark to separate CPUs")
    args = parser.parse_args(argv)
    sends, inserts, drained = (1_000, 20_000, 20_000) if args.quick else (5_000, 200_000, 50_000)
    runs = args.runs or (1 if args.quick else 3)

    figures: list[Figure] = []
    latencies: list[float] = []
    with temporary_postgres(SERVER_SETTINGS) as server:
        dsn = server.url()
        pinned = not args.no_pin and pin(server.pid)
        sends_runs = [single_sends(dsn, sends) for _ in range(runs)]
        latencies = [lat for _, _, run in sends_runs for lat in run]
        figures.append(
            Figure(
                "single send",
                "jobs/s",
                statistics.median(o for o, _, _ in sends_runs),
                statistics.median(r for _, r, _ in sends_runs),
                0.80,
            )
        )
        pairs = [batch_inserts(dsn, inserts) for _ in range(runs)]
        figures.append(
            Figure(
                "batch insert (1,000 per call) vs COPY",
                "jobs/s",
                statistics.median(o for o, _ in pairs),
                statistics.median(r for _, r in pairs),
                0.50,
            )
        )
        drains = [(drain(dsn, "ours", drained, 2, 100), drain(dsn, "raw", drained, 2, 100)) for _ in range(runs)]
        ours_drain = statistics.median(o for o, _ in drains)
        raw_drain = statistics.median(r for _, r in drains)
        figures.append(Figure("drain, 2 workers, batch 100", "jobs/s", ours_drain, raw_drain, 0.75))

        matrix_jobs = 5_000 if args.quick else 50_000
        matrix = {
            f"{workers} workers, batch {batch}": drain(
                dsn, "ours", matrix_jobs if batch > 1 else matrix_jobs // 5, workers, batch
            )
            for workers in (1, 2, 4)
            for batch in (1, 10, 100)
        }
        small, large = (10_000, 100_000) if args.quick else (10_000, 1_000_000)
        scale = extra.scaling(dsn, small, large)
        rss = extra.worker_rss(dsn, 20_000 if args.quick else 100_000)
    imports = extra.cold_start()

    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    print(f"\n{'figure':42} {'ours':>12} {'raw ceiling':>12} {'ratio':>7} {'target':>7}")
    ok = True
    for f in figures:
        met = f.ratio >= f.target
        ok &= met
        print(
            f"{f.name:42} {f.ours:>12,.0f} {f.raw:>12,.0f} {f.ratio:>7.2f} {'>=' + format(f.target, '.2f'):>7}"
            f" {'met' if met else 'MISSED'}"
        )
    print(f"single send latency: p50 {p50:.3f} ms, p99 {p99:.3f} ms")
    print(f"runs per figure: {runs}; Postgres pinned to its own CPU: {'yes' if pinned else 'no'}")
    print(f"\ndrain, every job completed exactly once ({matrix_jobs:,} jobs; {matrix_jobs // 5:,} at batch 1):")
    for label, rate in matrix.items():
        print(f"  {label:24} {rate:>10,.0f} jobs/s")
    print("\nlatency at scale (median of 50 rounds of fetch 100 + complete 100):")
    for label, row in scale.items():
        print(
            f"  {label:34} {row['jobs']:>9,} jobs  fetch {row['fetch_ms']:.2f} ms  complete {row['complete_ms']:.2f} ms"
        )
    ratio = scale["queued_large"]["fetch_ms"] / scale["queued_small"]["fetch_ms"]
    print(f"  fetch at {large:,} queued / at {small:,} queued: {ratio:.2f}x (target <= 2x)")
    print(
        "cold import of each function module (fresh interpreter, best of 3): "
        + ", ".join(f"{name} {ms:.0f} ms" for name, ms in imports.items())
        + " (target < 300 ms)"
    )
    print(f"worker draining {rss['drained']:,} jobs: peak RSS {rss['max_rss_mb']:.0f} MB (target < 150 MB)")
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"{'quick-' if args.quick else ''}{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "when": stamp,
                "quick": args.quick,
                "runs": runs,
                "pinned": pinned,
                "machine": {"python": sys.version.split()[0], "platform": platform.platform()},
                "figures": [asdict(f) | {"ratio": f.ratio} for f in figures],
                "send_latency_ms": {"p50": p50, "p99": p99},
                "drain_matrix": matrix,
                "scaling": scale,
                "cold_import_ms": imports,
                "worker_rss": rss,
            },
            indent=2,
        )
    )
    print(f"results written to {out}")
    # Targets are reported, not enforced: shared machines are too noisy to fail on.
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
