"""`make dev`: the job queue running on this machine, on embedded defaults.

Starts (or resumes) a Postgres server whose data lives in `.local/` (or
--data-dir), migrates the queue schema, creates the platform's queues and
schedules, and then keeps a small demo workload moving through the queue:
jobs are sent, drained in batches, some fail and retry, the schedules fire,
and maintenance runs, with a line of statistics per round. Ctrl-C stops
everything; the next run resumes with the same data.

`--once` runs a fixed demo to completion, prints a summary and exits 0 only
if every job ended as expected (the test suite runs it).
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jobqueue import Job, Queue
from local.embedded_postgres import EmbeddedPostgres, EmbeddedPostgresError
from runtime import platform

DEMO_QUEUE = "provision-pod"


def handle(job: Job) -> Any:
    """A stand-in handler: pods whose id ends in 7 fail on their first attempt."""
    if job.data.get("podId", "").endswith("7") and job.attempt == 1:
        raise RuntimeError(f"host agent answered 503 for {job.data['podId']}")
    return {"internalIp": f"10.0.0.{random.randint(2, 254)}"}


def drain(queue: Queue, name: str, now: datetime | None = None) -> tuple[int, int]:
    completed = failed = 0
    while jobs := queue.fetch(name, 50, now=now):
        done, errors = [], []
        for job in jobs:
            try:
                done.append((job, handle(job)))
            except Exception as exc:
                errors.append((job, exc))
        if done:
            completed += len(queue.complete(name, [j for j, _ in done], outputs=[o for _, o in done]))
        for job, error in errors:
            queue.fail(name, [job], error)
            failed += 1
    return completed, failed


def print_stats(queue: Queue) -> None:
    rows = [s for s in queue.get_queue_stats() if s.created + s.retry + s.active + s.completed + s.failed]
    line = "  ".join(f"{s.name}: {s.queued} queued, {s.completed} done, {s.failed} failed" for s in rows)
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {line or 'no jobs yet'}", flush=True)


def run_once(queue: Queue) -> int:
    """A fixed demo: 20 pods provisioned, a few failing once, all completing after one retry."""
    ids = queue.insert(DEMO_QUEUE, [{"data": {"podId": f"demo-{n}"}} for n in range(20)])
    completed, failed = drain(queue, DEMO_QUEUE)
    # The failed ones wait 30-60 s for their retry; look an hour ahead instead of waiting.
    later = datetime.now(UTC) + timedelta(hours=1)
    more, _ = drain(queue, DEMO_QUEUE, now=later)
    jobs = [queue.get_job(i) for i in ids]
    ok = all(j is not None and j.state == "completed" for j in jobs)
    print(f"demo: {len(ids)} sent, {completed + more} completed ({failed} after one retry); all completed: {ok}")
    print(f"{DEMO_QUEUE}: {queue.queue_size(DEMO_QUEUE, ['completed'])} jobs completed in this data directory")
    return 0 if ok else 1


def run_forever(queue: Queue) -> int:
    stop = False

    def request_stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, request_stop)
    serial = 0
    try:
        while not stop:
            queue.insert(DEMO_QUEUE, [{"data": {"podId": f"pod-{serial + n}"}} for n in range(10)])
            serial += 10
            queue.run_schedules()
            for name in platform.QUEUE_NAMES:
                drain(queue, name)
            queue.maintain()
            print_stats(queue)
            time.sleep(2)
    except KeyboardInterrupt:
        pass
    print("stopping")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make dev", description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=Path(".local"), help="where Postgres keeps its data")
    parser.add_argument("--once", action="store_true", help="run the demo once, print a summary, exit")
    args = parser.parse_args(argv)
    server = EmbeddedPostgres(args.data_dir / "postgres", port=0)
    try:
        server.start()
    except EmbeddedPostgresError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        server.create_database("jobs")
        url = server.url("jobs")
        print(f"Postgres is up: DATABASE_URL={url}")
        with Queue(url) as queue:
            queue.migrate()
            platform.register(queue)
            return run_once(queue) if args.once else run_forever(queue)
    finally:
        server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
