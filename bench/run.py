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

import psycopg

from bench import backlog, connection_paths, extra, held_snapshot, lifecycle, ordering, peer, report, worker_function
from bench.raw_queue import JobTableBaseline, RawQueue
from jobqueue import Queue
from local.embedded_postgres import temporary_postgres

RESULTS = Path(__file__).parent / "results"
QUEUE = "bench"
PEER_QUEUE = "bench"  # in pg-boss's own schema
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
    peer: float | None = None  # pg-boss, when it could be measured
    peer_target: float | None = None  # minimum acceptable ours/peer

    @property
    def ratio(self) -> float:
        return self.ours / self.raw if self.raw else 0.0

    @property
    def peer_ratio(self) -> float | None:
        return self.ours / self.peer if self.peer else None


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


# Against the raw ceiling our queue runs as the ceiling does, with psycopg's prepared statements
# (its default; what a direct connection may opt into). The library's pooler-safe default, which
# prepares nothing, is measured beside it under "Connection paths".
DIRECT = {"prepare_threshold": 5}


def fresh(dsn: str) -> tuple[Queue, RawQueue]:
    queue = Queue(dsn, **DIRECT)
    queue.db.connection().execute("DROP SCHEMA IF EXISTS jobqueue CASCADE")
    queue.migrate()
    queue.create_queue(QUEUE)
    raw = RawQueue(dsn)
    raw.reset()
    return queue, raw


@dataclass
class Rates:
    """One run of a write path: ours, the same rows into our job table by hand, and into raw.job."""

    ours: float
    same_table: float
    minimal: float


def single_sends(dsn: str, count: int, chunk: int = 100) -> tuple[Rates, list[float]]:
    """Alternate chunks of ours and the baselines, so drift in the machine's speed hits all alike."""
    queue, raw = fresh(dsn)
    same = JobTableBaseline(dsn, QUEUE)
    for _ in range(200):  # warm up: prepared statements, caches
        queue.send(QUEUE, PAYLOAD)
        same.send(PAYLOAD)
        raw.send(QUEUE, PAYLOAD)
    latencies: list[float] = []
    ours_time = same_time = raw_time = 0.0
    for _ in range(count // chunk):
        start = time.perf_counter()
        for _ in range(chunk):
            t = time.perf_counter()
            queue.send(QUEUE, PAYLOAD)
            latencies.append(time.perf_counter() - t)
        ours_time += time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(chunk):
            same.send(PAYLOAD)
        same_time += time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(chunk):
            raw.send(QUEUE, PAYLOAD)
        raw_time += time.perf_counter() - start
    for client in (queue, same, raw):
        client.close()
    done = count - count % chunk
    return Rates(done / ours_time, done / same_time, done / raw_time), latencies


def batch_inserts(dsn: str, count: int, batch: int = 1000, priority: int | None = None) -> Rates:
    """Batches of data-only jobs, or (`priority`) of jobs that each give that priority: an option."""
    queue, raw = fresh(dsn)
    same = JobTableBaseline(dsn, QUEUE, priority=priority or 0)
    jobs = [{"data": PAYLOAD} if priority is None else {"data": PAYLOAD, "priority": priority} for _ in range(batch)]
    items = [PAYLOAD] * batch
    queue.insert(QUEUE, jobs)
    same.copy(items)
    raw.copy(QUEUE, items)
    ours_time = same_time = raw_time = 0.0
    for _ in range(max(1, count // batch)):
        start = time.perf_counter()
        queue.insert(QUEUE, jobs)
        ours_time += time.perf_counter() - start
        start = time.perf_counter()
        same.copy(items)
        same_time += time.perf_counter() - start
        start = time.perf_counter()
        raw.copy(QUEUE, items)
        raw_time += time.perf_counter() - start
    for client in (queue, same, raw):
        client.close()
    done = max(1, count // batch) * batch
    return Rates(done / ours_time, done / same_time, done / raw_time)


def write_figures(
    what: str, baseline: str, runs: list[Rates], targets: tuple[float, float | None], peer_rate: float | None
) -> list[Figure]:
    """A write path against the same rows written by hand into the job table (and pg-boss), and, for
    continuity with earlier runs, against the minimal table raw.job when a target is given for it."""
    ours = statistics.median(r.ours for r in runs)
    figures = [
        Figure(
            f"{what} vs {baseline} of the same rows into the job table",
            "jobs/s",
            ours,
            statistics.median(r.same_table for r in runs),
            targets[0],
            peer_rate,
        )
    ]
    if targets[1] is not None:
        figures.append(
            Figure(
                f"{what} vs {baseline} into a minimal table (raw.job)",
                "jobs/s",
                ours,
                statistics.median(r.minimal for r in runs),
                targets[1],
            )
        )
    return figures


def _drain_worker(kind: str, dsn: str, batch_size: int, barrier: Any, done: Any) -> None:
    count = 0
    if kind == "ours":
        queue = Queue(dsn, **DIRECT)
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


def _peer(label: str, measure: Any) -> float | None:
    try:
        return float(measure())
    except Exception as exc:  # the peer is a comparison, not a requirement
        print(f"pg-boss {label}: not measured ({exc})", file=sys.stderr)
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts: proves the benchmark works (< 1 min)")
    parser.add_argument("--runs", type=int, default=None, help="repetitions per figure (the median is kept)")
    parser.add_argument(
        "--scale",
        type=int,
        default=None,
        help="jobs in the scale figures: queued, finished, purged (default 10,000,000; 100,000 with --quick)",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin Postgres and the benchmark to separate CPUs")
    parser.add_argument("--no-peer", action="store_true", help="do not measure pg-boss")
    args = parser.parse_args(argv)
    sends, inserts, drained = (1_000, 20_000, 20_000) if args.quick else (5_000, 200_000, 50_000)
    runs = args.runs or (1 if args.quick else 3)
    peer_version: str | None = None
    if not args.no_peer:
        try:
            peer_version = peer.install()
        except peer.PeerUnavailable as exc:
            print(f"pg-boss baseline skipped: {exc}", file=sys.stderr)

    figures: list[Figure] = []
    with temporary_postgres(SERVER_SETTINGS) as server:
        dsn = server.url()
        pinned = not args.no_pin and pin(server.pid)

        def vacuum() -> None:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE")

        def median_peer(label: str, measure: Any) -> float | None:
            if peer_version is None:
                return None
            values = [v for v in (_peer(label, measure) for _ in range(runs)) if v is not None]
            return statistics.median(values) if values else None

        sends_runs = [single_sends(dsn, sends) for _ in range(runs)]
        latencies = sorted(lat for _, run in sends_runs for lat in run)
        send_rates = [rates for rates, _ in sends_runs]
        figures += write_figures(
            "single send",
            "an INSERT",
            send_rates,
            (0.90, 0.80),
            median_peer("send", lambda: peer.single_sends(dsn, PEER_QUEUE, sends)),
        )
        figures += write_figures(
            "batch insert with an option (1,000 per call, each job a priority)",
            "a COPY",
            [batch_inserts(dsn, inserts, 1_000, priority=1) for _ in range(runs)],
            (0.70, None),
            None,
        )
        for batch in (1_000, 10_000):
            figures += write_figures(
                f"batch insert ({batch:,} per call)",
                "a COPY",
                [batch_inserts(dsn, inserts, batch) for _ in range(runs)],
                (0.70, 0.50) if batch == 1_000 else (0.70, None),
                median_peer("insert", lambda: peer.batch_inserts(dsn, PEER_QUEUE, inserts)) if batch == 1_000 else None,
            )
        drains = [(drain(dsn, "ours", drained, 2, 100), drain(dsn, "raw", drained, 2, 100)) for _ in range(runs)]
        figures.append(
            Figure(
                "drain, 2 workers, batch 100",
                "jobs/s",
                statistics.median(o for o, _ in drains),
                statistics.median(r for _, r in drains),
                0.80,
                median_peer(
                    "drain", lambda: peer.drain(dsn, PEER_QUEUE, drained, workers=2, batch_size=100, vacuum=vacuum)
                ),
                1.5,
            )
        )

        # The worker function as deployed, beside the core, at the template's defaults and around them.
        defaults = (100, 5)
        configs = [(10, 5), (100, 5)] if args.quick else [(10, 5), (50, 5), (100, 5), (100, 10), (200, 5)]
        function_runs = [
            worker_function.compare(dsn, 10_000 if args.quick else drained, configs, defaults) for _ in range(runs)
        ]
        worker_fn = worker_function.median(function_runs)
        backlog_jobs = 20_000 if args.quick else 200_000
        scale_out = [backlog.drain_backlog(dsn, backlog_jobs, concurrency) for concurrency in (1, 2, 4)]
        paths = connection_paths.compare(server, 10_000 if args.quick else drained, runs)
        controls = ordering.compare(dsn, (10_000, 50_000) if args.quick else (10_000, 1_000_000))

        matrix_jobs = 5_000 if args.quick else 50_000
        matrix = {
            f"{workers} workers, batch {batch}": drain(
                dsn, "ours", matrix_jobs if batch > 1 else matrix_jobs // 5, workers, batch
            )
            for workers in (1, 2, 4)
            for batch in (1, 10, 100)
        }
        small, large = 10_000, args.scale or (100_000 if args.quick else 10_000_000)
        scale = extra.scaling(dsn, small, large)
        purged = extra.purge(dsn, large)
        parted = extra.partitioned(dsn, 100_000 if args.quick else 1_000_000)
        flows = [extra.flow_control(dsn, waiting) for waiting in ((10_000,) if args.quick else (10_000, 1_000_000))]
        rss = extra.worker_rss(dsn, 20_000 if args.quick else 100_000)
        queue, _ = fresh(dsn)
        queue.close()
        latency = extra.send_to_start(dsn, 50 if args.quick else 500)
        life_jobs = 5_000 if args.quick else 50_000
        lives = [lifecycle.ours(dsn, QUEUE, life_jobs, PAYLOAD), lifecycle.raw(dsn, QUEUE, life_jobs, PAYLOAD)]
        if peer_version is not None:
            try:
                lives.insert(1, lifecycle.pgboss(dsn, PEER_QUEUE, life_jobs))
            except Exception as exc:  # the peer is a comparison, not a requirement
                print(f"pg-boss lifecycle: not measured ({exc})", file=sys.stderr)
        held = held_snapshot.compare(dsn, quick=args.quick)
    imports = extra.cold_start()

    results: dict[str, Any] = {
        "when": datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"),
        "quick": args.quick,
        "runs": runs,
        "pinned": pinned,
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "pg_boss": peer_version,
        },
        "counts": {"sends": sends, "inserts": inserts, "drained": drained, "matrix": matrix_jobs},
        "figures": [asdict(f) | {"ratio": f.ratio, "peer_ratio": f.peer_ratio} for f in figures],
        "send_latency_ms": {
            "p50": statistics.median(latencies) * 1000,
            "p99": latencies[int(len(latencies) * 0.99)] * 1000,
        },
        "drain_matrix": matrix,
        "worker_function": worker_fn,
        "backlog": scale_out,
        "connection_paths": paths,
        "ordering": controls,
        "scaling": scale,
        "purge": purged,
        "partitioned": parted,
        "flow_control": flows,
        "send_to_start": latency,
        "cold_import_ms": imports,
        "worker_rss": rss,
        "lifecycle": [asdict(life) | {"rate": life.rate} for life in lives],
        "held_snapshot": held,
    }
    text = report.markdown(results)
    print("\n" + text)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{'quick-' if args.quick else ''}{results['when']}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"results written to {out}")
    if not args.quick:
        report.write_docs(text)
        print(f"figures written to {report.DOCS}")
    # Targets are reported, not enforced: shared machines are too noisy to fail on.
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
