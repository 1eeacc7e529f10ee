"""A job's whole life, as production pays it: jobs/s and WAL bytes per job, phase by phase.

Three designs on the same server, one after the other, each after a CHECKPOINT
(so that each starts with the same full-page writes to pay):

- ours: insert (batches of 1,000), fetch (100 at a time), complete (100 at a
  time), archive (finished jobs move to the archive table, into the partition
  of the day they are to be deleted), purge (the day partitions dropped), the
  maintenance steps as the maintenance function runs them;
- pg-boss: insert(), fetch(), complete(), then one supervise() pass deletes the
  completed jobs (its deleteAfterSeconds; pg-boss keeps no archive);
- the raw ceiling (bench/raw_queue.py): COPY, claim, complete, one DELETE.

WAL bytes are the advance of the WAL insert position (cluster-wide; nothing
else runs meanwhile), as pg_stat_wal counts them but without its reporting lag.
They show where each design spends its writes: a claim and a completion are
row updates (a new row version each, plus index entries), archiving writes the
row a third time and deletes it, purging drops whole partitions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

from bench import peer
from bench.raw_queue import RawQueue
from jobqueue import Queue

PHASES = ("send", "fetch", "complete", "archive", "delete")
BATCH = 1000
FETCH = 100
LATER = datetime.now(UTC) + timedelta(days=3650)  # maintenance's `now`: every finished job is due


@dataclass
class Life:
    design: str
    jobs: int
    seconds: dict[str, float] = field(default_factory=dict)
    wal_bytes: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Jobs per second over the whole life (every phase's time added up)."""
        return self.jobs / sum(self.seconds.values())

    def wal_per_job(self, phase: str | None = None) -> float:
        total = self.wal_bytes.get(phase, 0) if phase else sum(self.wal_bytes.values())
        return total / self.jobs


def _wal(conn: psycopg.Connection) -> int:
    """Bytes of WAL written so far: the insert position. (pg_stat_wal's wal_bytes says the same
    but lags: each backend reports its share at most once a second.)"""
    return int(conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')").fetchone()[0])  # type: ignore[index]


def _measure(life: Life, conn: psycopg.Connection, phase: str, work: Callable[[], object]) -> None:
    before = _wal(conn)
    start = time.perf_counter()
    work()
    life.seconds[phase] = time.perf_counter() - start
    life.wal_bytes[phase] = _wal(conn) - before


def ours(dsn: str, queue_name: str, count: int, payload: object) -> Life:
    life = Life("ours", count)
    with psycopg.connect(dsn, autocommit=True) as probe, Queue(dsn, prepare_threshold=5) as queue:
        queue.db.connection().execute("DROP SCHEMA IF EXISTS jobqueue CASCADE")
        queue.migrate()
        queue.create_queue(queue_name)
        # The archive's day partitions exist in a running installation (maintenance makes them
        # days ahead): made here before the measure, so that each job pays what it does there.
        queue.archive()
        probe.execute("CHECKPOINT")
        jobs = [{"data": payload}] * BATCH
        fetched: list[list[object]] = []

        def send() -> None:
            for start in range(0, count, BATCH):
                queue.insert(queue_name, jobs[: min(BATCH, count - start)])

        def fetch() -> None:
            while batch := queue.fetch(queue_name, FETCH):
                fetched.append(batch)

        def complete() -> None:
            for batch in fetched:
                queue.complete(queue_name, batch)

        def archive() -> None:
            while queue.archive(now=LATER):
                pass

        def purge() -> None:
            while queue.purge(now=LATER + timedelta(days=3650))[0]:
                pass

        for phase, work in zip(PHASES, (send, fetch, complete, archive, purge), strict=True):
            _measure(life, probe, phase, work)
        left = probe.execute("SELECT (SELECT count(*) FROM jobqueue.job) + (SELECT count(*) FROM jobqueue.archive)")
        if (row := left.fetchone()) and row[0]:
            raise RuntimeError(f"ours: {row[0]} jobs left after the purge")
    return life


def raw(dsn: str, queue_name: str, count: int, payload: object) -> Life:
    life = Life("raw", count)
    queue = RawQueue(dsn)
    queue.reset()
    with psycopg.connect(dsn, autocommit=True) as probe:
        probe.execute("CHECKPOINT")
        fetched: list[list[int]] = []

        def send() -> None:
            for start in range(0, count, BATCH):
                queue.copy(queue_name, [payload] * min(BATCH, count - start))

        def fetch() -> None:
            while rows := queue.fetch(queue_name, FETCH):
                fetched.append([row[0] for row in rows])

        def complete() -> None:
            for ids in fetched:
                queue.complete(ids)

        def delete() -> None:
            queue.conn.execute("DELETE FROM raw.job WHERE state = 'completed'")

        for phase, work in (("send", send), ("fetch", fetch), ("complete", complete), ("delete", delete)):
            _measure(life, probe, phase, work)
    queue.close()
    return life


def pgboss(dsn: str, queue_name: str, count: int) -> Life:
    result = peer.lifecycle(dsn, queue_name, count)
    life = Life("pg-boss", count)
    for phase, figures in result.items():
        life.seconds[phase] = float(figures["seconds"])
        life.wal_bytes[phase] = int(figures["wal_bytes"])
    return life
