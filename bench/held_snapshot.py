"""Fetch latency while another session holds an old snapshot (the MVCC horizon pinned).

The workload of a production queue: one queue, a steady 500 jobs/s (batches of
50 every 100 ms), two consumers doing fetch(50) + complete, maintenance every
10 s. After a baseline interval, a third connection opens a REPEATABLE READ
transaction, reads once (its snapshot is taken) and stays idle in it: vacuum
cannot remove what was claimed or finished since. Each consumer records every
fetch's duration; the figures are p50 and p99 per interval, for our queue and
for the minimal SKIP LOCKED table (bench.raw_queue) under the same workload,
and the ratio of the last held interval to the interval before the snapshot.

Also recorded at the end of each interval: the shared buffers one fetch
touches (EXPLAIN (ANALYZE, BUFFERS) in a transaction rolled back), and the
jobs waiting (a backlog that grows means the fetch fell behind the arrivals).
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event
from typing import Any

import psycopg
from psycopg import sql

from bench.raw_queue import FETCH as RAW_FETCH
from bench.raw_queue import RawQueue
from jobqueue import Queue
from jobqueue.diagnostics import function_statement

QUEUE = "held"
BATCH = 50  # jobs per insert and per fetch
INSERT_EVERY_S = 0.1  # 50 jobs every 100 ms: 500 jobs/s
MAINTAIN_EVERY_S = 10.0
IDLE_WAIT_S = 0.02  # a consumer that found nothing waits this long (a worker's poll)
PAYLOAD = {"podId": "pod-123", "spec": {"tier": "dev.small"}}


@dataclass
class Interval:
    """One interval of the run: fetch latencies (ms) and what the database looked like at its end."""

    held: bool
    p50_ms: float
    p99_ms: float
    fetches: int
    buffers: int  # shared buffers (hit + read) of one fetch at the interval's end
    waiting: int  # jobs queued at the interval's end


@dataclass
class Run:
    name: str
    intervals: list[Interval] = field(default_factory=list)

    def ratio(self, what: str) -> float:
        """The last held interval against the last interval before the snapshot."""
        before = [i for i in self.intervals if not i.held][-1]
        last = self.intervals[-1]
        base = getattr(before, what)
        return getattr(last, what) / base if base else 0.0


def _producer(dsn: str, kind: str, stop: Event) -> None:
    if kind == "ours":
        queue = Queue(dsn, prepare_threshold=5)
        send = lambda items: queue.insert(QUEUE, [{"data": d} for d in items])  # noqa: E731
    else:
        raw = RawQueue(dsn)
        send = lambda items: raw.copy(QUEUE, items)  # noqa: E731
    next_at = time.monotonic()
    while not stop.is_set():
        send([PAYLOAD] * BATCH)
        next_at += INSERT_EVERY_S
        time.sleep(max(0.0, next_at - time.monotonic()))


def _consumer(dsn: str, kind: str, stop: Event, out: Any) -> None:
    samples: list[tuple[float, float]] = []  # (monotonic end time, seconds)
    if kind == "ours":
        queue = Queue(dsn, prepare_threshold=5)

        def work() -> int:
            jobs = queue.fetch(QUEUE, BATCH)
            took = time.perf_counter() - started
            samples.append((time.monotonic(), took))
            if jobs:
                queue.complete(QUEUE, jobs)
            return len(jobs)
    else:
        raw = RawQueue(dsn)

        def work() -> int:
            rows = raw.fetch(QUEUE, BATCH)
            took = time.perf_counter() - started
            samples.append((time.monotonic(), took))
            if rows:
                raw.complete([r[0] for r in rows])
            return len(rows)

    while not stop.is_set():
        started = time.perf_counter()
        if not work():
            time.sleep(IDLE_WAIT_S)
    out.put(samples)


def fetch_buffers(dsn: str, kind: str) -> int:
    """Shared buffers one fetch touches, measured by running it inside a transaction that is rolled back."""
    with psycopg.connect(dsn) as conn:
        if kind == "ours":
            # The function's statement as the function plans it: EXPLAIN of the call would count the
            # planning of a new session's first call in the buffers too.
            with function_statement(conn, "fetch_jobs") as execute:
                query = sql.SQL(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {execute} ({{}}, {BATCH}, NULL, NULL)")
                plan = conn.execute(query.format(QUEUE)).fetchone()[0]  # type: ignore[index]
        else:
            plan = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {RAW_FETCH}", (QUEUE, BATCH)).fetchone()[0]  # type: ignore[index]
        conn.rollback()
    top = plan[0]["Plan"]
    return int(top.get("Shared Hit Blocks", 0)) + int(top.get("Shared Read Blocks", 0))


def _waiting(dsn: str, kind: str) -> int:
    table, queued = ("jobqueue.job", "state < 'active'") if kind == "ours" else ("raw.job", "state = 'created'")
    with psycopg.connect(dsn, autocommit=True) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table} WHERE name = %s AND {queued}", (QUEUE,)).fetchone()[0])  # type: ignore[index]


def _warm_up(dsn: str, kind: str, jobs: int = 20_000) -> None:
    """A working table's statistics before the clock starts: plans made for an empty table would
    scan it whole (until autovacuum's first ANALYZE), for both sides."""
    if kind == "ours":
        with Queue(dsn) as queue:
            queue.insert(QUEUE, [{"data": PAYLOAD}] * jobs)
            while batch := queue.fetch(QUEUE, 1000):
                queue.complete(QUEUE, batch)
    else:
        raw = RawQueue(dsn)
        raw.copy(QUEUE, [PAYLOAD] * jobs)
        while rows := raw.fetch(QUEUE, 1000):
            raw.complete([r[0] for r in rows])
        raw.close()


def measure(dsn: str, kind: str, before_s: float, held_s: float, interval_s: float) -> Run:
    """One implementation: `before_s` without, then `held_s` with a snapshot held, in intervals of `interval_s`."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        if kind == "ours":
            with Queue(conn) as queue:
                queue.migrate()
                queue.delete_queue(QUEUE) if queue.get_queue(QUEUE) else None
                queue.create_queue(QUEUE)
        else:
            RawQueue(dsn).reset()
        _warm_up(dsn, kind)
        conn.execute("VACUUM ANALYZE")
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    out = context.Queue()
    workers = [context.Process(target=_producer, args=(dsn, kind, stop))]
    workers += [context.Process(target=_consumer, args=(dsn, kind, stop, out)) for _ in range(2)]
    for process in workers:
        process.start()
    holder = psycopg.connect(dsn, application_name="bench-held-snapshot")
    maintainer = Queue(dsn) if kind == "ours" else None
    run = Run(kind)
    edges: list[tuple[float, float, bool, int, int]] = []
    try:
        started = time.monotonic()
        snapshot_at = started + before_s
        end = snapshot_at + held_s
        next_edge = started + interval_s
        next_maintenance = started + MAINTAIN_EVERY_S
        held = False
        while time.monotonic() < end:
            now = time.monotonic()
            if not held and now >= snapshot_at:
                holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
                holder.execute("SELECT count(*) FROM pg_class").fetchone()  # takes the snapshot
                held = True
            if maintainer is not None and now >= next_maintenance:
                maintainer.maintain()
                next_maintenance += MAINTAIN_EVERY_S
            if now >= next_edge:
                edges.append((next_edge - interval_s, next_edge, held, fetch_buffers(dsn, kind), _waiting(dsn, kind)))
                next_edge += interval_s
            time.sleep(0.05)
    finally:
        stop.set()
        samples = [s for _ in workers[1:] for s in out.get(timeout=60)]
        for process in workers:
            process.join(timeout=30)
        holder.close()
        if maintainer is not None:
            maintainer.close()
    for start, stop_at, held_flag, buffers, waiting in edges:
        took = sorted(s * 1000 for at, s in samples if start <= at < stop_at)
        if not took:
            continue
        run.intervals.append(
            Interval(
                held=held_flag and start >= snapshot_at - 1e-6,
                p50_ms=statistics.median(took),
                p99_ms=took[min(len(took) - 1, int(len(took) * 0.99))],
                fetches=len(took),
                buffers=buffers,
                waiting=waiting,
            )
        )
    return run


def compare(dsn: str, *, quick: bool) -> dict[str, Any]:
    """Ours and the raw table, one after the other, each under its own held snapshot."""
    before_s, held_s, interval_s = (20.0, 60.0, 10.0) if quick else (60.0, 600.0, 60.0)
    runs = [measure(dsn, kind, before_s, held_s, interval_s) for kind in ("ours", "raw")]
    return {
        "held_s": held_s,
        "interval_s": interval_s,
        "runs": {
            run.name: {
                "intervals": [vars(i) for i in run.intervals],
                "p50_ratio": run.ratio("p50_ms"),
                "p99_ratio": run.ratio("p99_ms"),
                "buffers_ratio": run.ratio("buffers"),
            }
            for run in runs
        },
    }


if __name__ == "__main__":  # python -m bench.held_snapshot [--quick]: this section alone
    import sys

    from local.embedded_postgres import temporary_postgres

    with temporary_postgres({"synchronous_commit": "off", "shared_buffers": "256MB"}) as server:
        result = compare(server.url(), quick="--quick" in sys.argv)
    for name, run in result["runs"].items():
        for i in run["intervals"]:
            print(
                f"{name:5} {'held' if i['held'] else 'free'} p50 {i['p50_ms']:7.2f} ms  p99 {i['p99_ms']:7.2f} ms"
                f"  fetches {i['fetches']:5}  buffers {i['buffers']:6}  waiting {i['waiting']:6}"
            )
        print(f"{name}: p50 x{run['p50_ratio']:.2f}  p99 x{run['p99_ratio']:.2f}  buffers x{run['buffers_ratio']:.2f}")
