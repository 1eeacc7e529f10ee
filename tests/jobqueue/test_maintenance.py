"""expire, archive, purge and maintain, driven by `now` instead of waiting."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from jobqueue import Queue
from tests.helpers import job_row


def _in(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


@pytest.fixture
def work(queue: Queue) -> Queue:
    queue.create_queue("dead")
    queue.create_queue(
        "work", retry_limit=1, expire_in=60, archive_after=3600, delete_after=86400, retention=7200, dead_letter="dead"
    )
    return queue


def test_expire_retries_then_fails_and_dead_letters(work: Queue, conn: psycopg.Connection[Any]) -> None:
    job_id = str(work.send("work", {"podId": "p"}))
    work.fetch("work")
    assert work.expire(now=_in(30)) == (0, 0)  # not yet past its deadline
    assert work.expire(now=_in(61)) == (1, 0)
    row = job_row(conn, job_id)
    assert row["state"] == "retry" and row["output"]["type"] == "JobExpired"
    work.fetch("work", now=_in(62))
    assert work.expire(now=_in(200)) == (0, 1)
    assert job_row(conn, job_id)["state"] == "failed"
    [dead] = work.fetch("dead")
    assert dead.origin is not None and dead.origin["dead_letter_of"]["id"] == job_id


def test_expire_uses_the_callers_deadline(work: Queue) -> None:
    work.send("work", {}, expire_in=3600)
    work.fetch("work", deadline=_in(5))
    assert work.expire(now=_in(10)) == (1, 0)


def test_expire_in_bounded_batches(work: Queue) -> None:
    work.insert("work", [{"data": n} for n in range(25)])
    work.fetch("work", 25)
    assert work.expire(batch_size=10, now=_in(61)) == (25, 0)


def test_archive_moves_finished_jobs_after_archive_after(work: Queue, conn: psycopg.Connection[Any]) -> None:
    done, failed, cancelled, queued = (str(work.send("work", {"n": n})) for n in range(4))
    jobs = {j.id: j for j in work.fetch("work", 2)}
    work.complete("work", [jobs[done]])
    work.fail("work", [jobs[failed]], "boom", retryable=False)
    work.cancel("work", [cancelled])
    assert work.archive(now=_in(1800)) == 0
    assert work.archive(now=_in(3700)) == 3
    remaining = conn.execute("SELECT id::text FROM jobqueue.job WHERE name = 'work'").fetchall()
    assert remaining == [(queued,)]
    archived = work.get_job(done)
    assert archived is not None and archived.archived and archived.state == "completed"
    delete_at = conn.execute("SELECT delete_at - completed_on FROM jobqueue.archive WHERE id = %s", (done,)).fetchone()
    assert delete_at == (timedelta(days=1),)


def test_purge_deletes_archived_jobs_after_delete_after(work: Queue) -> None:
    work.insert("work", [{"data": n} for n in range(5)])
    work.complete("work", work.fetch("work", 5))
    work.insert("work", [{"data": n, "delete_after": 10 * 86400} for n in range(2)])
    work.complete("work", work.fetch("work", 2))
    assert work.archive(now=_in(3700)) == 7
    assert work.purge(now=_in(3700)) == (0, 0)
    assert work.purge(now=_in(2 * 86400), batch_size=2) == (5, 0)
    assert len(work.find_jobs("work")) == 2
    assert work.purge(now=_in(11 * 86400)) == (2, 0)
    assert work.find_jobs("work") == []


def test_archive_continues_batch_after_batch_per_queue(work: Queue, conn: psycopg.Connection[Any]) -> None:
    # Two queues, finish times shared across batch boundaries: every finished job is moved, once.
    work.create_queue("other", archive_after=60)
    for name in ("work", "other"):
        work.insert(name, [{"data": n} for n in range(13)])
        work.complete(name, work.fetch(name, 13))
    conn.execute(
        "UPDATE jobqueue.job SET completed_on = now() - make_interval(mins => (n % 3)::int) "
        "FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM jobqueue.job) o WHERE job.id = o.id"
    )
    assert work.archive(batch_size=4, now=_in(3700)) == 26
    assert conn.execute("SELECT count(*) FROM jobqueue.job").fetchone() == (0,)
    assert conn.execute("SELECT count(DISTINCT id) FROM jobqueue.archive").fetchone() == (26,)


def test_purge_continues_batch_after_batch_through_equal_delete_times(
    work: Queue, conn: psycopg.Connection[Any]
) -> None:
    # Each batch starts where the previous one ended; rows sharing a delete_at
    # across a batch boundary must still all go.
    work.insert("work", [{"data": n} for n in range(25)])
    work.complete("work", work.fetch("work", 25))
    assert work.archive(now=_in(3700)) == 25
    # Days without a partition of their own (archive_other): their jobs are deleted row by row.
    conn.execute(
        "UPDATE jobqueue.archive SET delete_at = now() - interval '2 days' - make_interval(hours => (n % 3)::int) "
        "FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM jobqueue.archive) o "
        "WHERE archive.id = o.id"
    )
    assert work.purge(batch_size=4) == (25, 0)
    assert conn.execute("SELECT count(*) FROM jobqueue.archive").fetchone() == (0,)


def test_purge_fails_jobs_never_started_within_retention(work: Queue, conn: psycopg.Connection[Any]) -> None:
    stale = str(work.send("work", {}))
    fresh = str(work.send("work", {}, retention=30 * 86400))
    assert work.purge(now=_in(7300)) == (0, 1)
    row = job_row(conn, stale)
    assert row["state"] == "failed" and row["output"]["type"] == "RetentionExpired"
    assert job_row(conn, fresh)["state"] == "created"
    assert [j.id for j in work.failed_jobs()] == [stale]


def test_maintain_sweeps_retention_once_per_period_whatever_the_runs(
    work: Queue, conn: psycopg.Connection[Any]
) -> None:
    work.send("work", {})
    assert work.maintain(now=_in(60)).unstarted_failed == 0  # swept: nothing past its retention
    work.send("work", {})
    # Within the period no run sweeps again, even one that would find jobs to fail.
    assert work.maintain(now=_in(86400 * 3)).unstarted_failed == 0
    conn.execute("UPDATE jobqueue.lease SET expires_on = clock_timestamp() WHERE name = 'retention sweep'")
    assert work.maintain(now=_in(86400 * 3)).unstarted_failed == 2
    # purge() itself sweeps whenever it is asked to.
    work.send("work", {})
    assert work.purge(now=_in(86400 * 3)) == (0, 1)


def test_maintain_runs_everything_and_reports(work: Queue) -> None:
    work.insert("work", [{"data": n} for n in range(3)])
    work.fetch("work", 1)
    result = work.maintain(now=_in(86400 * 3))
    assert result.expired_retried == 1
    assert result.unstarted_failed == 2 + 1  # the two never started, and the retry (due after expiry) too
    assert not result.skipped


def test_maintain_is_skipped_while_another_process_holds_the_lease(work: Queue, conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        "INSERT INTO jobqueue.lease VALUES ('maintenance', gen_random_uuid(), clock_timestamp() + interval '1 minute')"
    )
    assert work.maintain().skipped
    conn.execute("UPDATE jobqueue.lease SET expires_on = clock_timestamp() - interval '1 second'")  # its holder died
    assert not work.maintain().skipped
    given_up = conn.execute("SELECT count(*) FROM jobqueue.lease WHERE name = 'maintenance'").fetchone()
    assert given_up == (0,)  # when done


def test_maintain_holds_no_session_state(work: Queue, conn: psycopg.Connection[Any]) -> None:
    """Run after run from one client, none skipped and nothing left on the server (poolers need both)."""
    for _ in range(6):
        assert not work.maintain().skipped
    assert conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM jobqueue.lease WHERE name = 'maintenance'").fetchone() == (0,)


def test_a_failed_maintenance_run_gives_its_lease_up(
    work: Queue, conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any) -> tuple[int, int]:
        raise RuntimeError("archive failed")

    monkeypatch.setattr(work, "_archive", broken)
    with pytest.raises(RuntimeError, match="archive failed"):
        work.maintain()
    assert conn.execute("SELECT count(*) FROM jobqueue.lease WHERE name = 'maintenance'").fetchone() == (0,)
    monkeypatch.undo()
    assert not work.maintain().skipped


def test_overlapping_expiry_never_expires_a_job_twice(work: Queue, dsn: str, conn: psycopg.Connection[Any]) -> None:
    work.create_queue("many", retry_limit=5, expire_in=1)
    work.insert("many", [{"data": n} for n in range(2000)])
    while work.fetch("many", 500):
        pass
    results: list[tuple[int, int]] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        with Queue(dsn) as q:
            barrier.wait()
            results.append(q.expire(batch_size=100, now=_in(5)))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r for r, _ in results) == 2000
    counts = conn.execute(
        "SELECT state::text, retry_count, count(*) FROM jobqueue.job WHERE name = 'many' GROUP BY 1, 2"
    ).fetchall()
    assert counts == [("retry", 0, 2000)]  # each waits for one retry, counted when it starts
