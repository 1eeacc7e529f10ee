"""The archive: day partitions made ahead by archiving and dropped whole by purge; queues that delete instead."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from jobqueue import Queue
from jobqueue.maintenance import ARCHIVE_DAYS_AHEAD

DAY = 86400


def _partitions(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """The archive's partitions and how many jobs each holds."""
    names = [
        row[0]
        for row in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'jobqueue.archive'::regclass ORDER BY 1"
        )
    ]
    return {name: conn.execute(f"SELECT count(*) FROM jobqueue.{name}").fetchone()[0] for name in names}  # type: ignore[index]


def _day(offset: int) -> str:
    return "archive_" + (datetime.now(UTC).date() + timedelta(days=offset)).strftime("%Y%m%d")


def _finish(queue: Queue, name: str, count: int) -> list[str]:
    queue.insert(name, [{"data": n} for n in range(count)])
    jobs = queue.fetch(name, count)
    queue.complete(name, jobs)
    return [job.id for job in jobs]


@pytest.fixture
def keeping(queue: Queue) -> Queue:
    queue.create_queue("week", archive_after=0, delete_after=7 * DAY)
    return queue


def test_archiving_makes_a_partition_per_day_the_queues_keep_jobs(
    keeping: Queue, conn: psycopg.Connection[Any]
) -> None:
    ids = _finish(keeping, "week", 3)
    assert keeping.archive() == 3
    parts = _partitions(conn)
    # Today through 7 days on, and a day more for a job archived late; then the two fixed ones.
    assert [name for name in parts if name[8:].isdigit()] == [_day(n) for n in range(9)]
    assert parts[_day(7)] == 3  # finished now, to be deleted in 7 days
    assert parts["archive_other"] == parts["archive_kept"] == 0
    assert all((job := keeping.get_job(i)) is not None and job.archived for i in ids)
    # Made once: a second run makes none.
    assert keeping.db.scalar("make_archive_days", {"most": ARCHIVE_DAYS_AHEAD}) == 0


def test_purge_drops_a_day_once_it_is_over_and_deletes_no_row_before(
    keeping: Queue, conn: psycopg.Connection[Any]
) -> None:
    ids = _finish(keeping, "week", 5)
    keeping.archive()
    day = next(name for name, jobs in _partitions(conn).items() if jobs == 5)
    end_of_day = datetime.strptime(day[8:], "%Y%m%d").replace(tzinfo=UTC) + timedelta(days=1)
    assert keeping.purge(now=end_of_day - timedelta(seconds=1)) == (0, 0)
    assert _partitions(conn)[day] == 5
    assert keeping.purge(now=end_of_day) == (5, 0)
    assert day not in _partitions(conn)
    assert all(keeping.get_job(i) is None for i in ids)


def test_a_job_past_its_delete_at_is_gone_before_its_day_is_dropped(
    keeping: Queue, conn: psycopg.Connection[Any]
) -> None:
    keeping.create_queue("slots", archive_after=0, delete_after=DAY)
    first = keeping.send("slots", {}, singleton_seconds=3600)
    assert keeping.send("slots", {}, singleton_seconds=3600) is None  # the slot is taken
    keeping.complete("slots", keeping.fetch("slots"))
    keeping.archive()
    assert keeping.send("slots", {}, singleton_seconds=3600) is None  # archived, the slot stays taken
    conn.execute("UPDATE jobqueue.archive SET delete_at = now() - interval '1 second' WHERE id = %s", (first,))
    assert keeping.get_job(str(first)) is None
    assert keeping.retry("slots", str(first)) == []
    assert keeping.send("slots", {}, singleton_seconds=3600) is not None  # deleted, the slot is free


def test_a_day_made_later_takes_its_jobs_from_archive_other(keeping: Queue, conn: psycopg.Connection[Any]) -> None:
    # A job kept longer than the days made ahead is archived in archive_other.
    keeping.create_queue("long", archive_after=0, delete_after=60 * DAY)
    _finish(keeping, "long", 2)
    keeping.archive()
    assert _partitions(conn)["archive_other"] == 2
    # Its day is made when it comes within reach: here a day made ahead is gone (dropped by
    # hand), its jobs wait in archive_other, and the next run makes the day with them in it.
    conn.execute(f"DROP TABLE jobqueue.{_day(3)}")
    conn.execute("UPDATE jobqueue.archive SET delete_at = now() + interval '3 days'")
    assert _partitions(conn)["archive_other"] == 2
    keeping.archive()
    parts = _partitions(conn)
    assert parts[_day(3)] == 2 and parts["archive_other"] == 0


def test_jobs_kept_for_good_stay_in_archive_kept(keeping: Queue, conn: psycopg.Connection[Any]) -> None:
    keeping.create_queue("forever", archive_after=0, delete_after=0)
    [job_id] = _finish(keeping, "forever", 1)
    keeping.archive()
    assert _partitions(conn)["archive_kept"] == 1
    assert keeping.purge(now=datetime.now(UTC) + timedelta(days=3650)) == (0, 0)
    assert (job := keeping.get_job(job_id)) is not None and job.archived


def test_purge_gives_up_on_a_day_whose_lock_it_cannot_have_and_drops_it_next_time(
    keeping: Queue, dsn: str, conn: psycopg.Connection[Any]
) -> None:
    _finish(keeping, "week", 4)
    keeping.archive()
    later = datetime.now(UTC) + timedelta(days=30)
    held, release = threading.Event(), threading.Event()

    def reader() -> None:
        with psycopg.connect(dsn) as other, other.transaction():
            other.execute("SELECT count(*) FROM jobqueue.archive")  # a long read holds the archive
            held.set()
            release.wait(30)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        assert held.wait(10)
        # No waiting behind the reader (which would make every later reader wait behind the drop).
        assert keeping.purge(now=later) == (0, 0)
        assert sum(_partitions(conn).values()) == 4
    finally:
        release.set()
        thread.join()
    assert keeping.purge(now=later) == (4, 0)


def test_a_queue_that_does_not_archive_deletes_its_finished_jobs_at_archive_after(
    keeping: Queue, conn: psycopg.Connection[Any]
) -> None:
    keeping.create_queue("fleeting", archive_after=60, archive=False, retry_limit=0)
    assert (info := keeping.get_queue("fleeting")) is not None and info.archive is False
    done, failed, cancelled = (str(keeping.send("fleeting", {"n": n})) for n in range(3))
    assert len(keeping.fetch("fleeting", 2)) == 2
    keeping.complete("fleeting", done)
    keeping.fail("fleeting", failed)
    keeping.cancel("fleeting", cancelled)
    kept = _finish(keeping, "week", 2)
    finished_at = datetime.now(UTC)
    # Not before archive_after.
    result = keeping.maintain(now=finished_at + timedelta(seconds=30))
    assert (result.archived, result.deleted) == (2, 0)
    result = keeping.maintain(now=finished_at + timedelta(seconds=61))
    assert (result.archived, result.deleted) == (0, 3)
    assert conn.execute("SELECT count(*) FROM jobqueue.archive WHERE name = 'fleeting'").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM jobqueue.job WHERE name = 'fleeting'").fetchone() == (0,)
    assert all(keeping.get_job(i) is None for i in (done, failed, cancelled))
    assert all((job := keeping.get_job(i)) is not None and job.archived for i in kept)
    # Whoever looks it up is told where it went.
    said = keeping.missing_job(done)
    assert said.startswith(f"no job {done}: it was never sent, or it finished and was deleted")
    assert "these queues delete finished jobs instead of archiving them: fleeting (1 min after they finish)" in said
    assert "archived jobs are deleted after their delete_after (up to 7 days)" in said
    assert f"its id was made at {finished_at:%Y-%m-%d}" in said
    # A queue can be switched either way; its next finished jobs follow the setting.
    keeping.update_queue("fleeting", archive=True)
    _finish(keeping, "fleeting", 1)
    assert keeping.maintain(now=datetime.now(UTC) + timedelta(seconds=61)).archived == 1


def test_two_callers_at_once_make_and_drop_each_day_once(
    keeping: Queue, dsn: str, conn: psycopg.Connection[Any]
) -> None:
    _finish(keeping, "week", 2)
    barrier = threading.Barrier(2)
    results: list[object] = []

    def run(step: str) -> None:
        with Queue(dsn) as mine:
            barrier.wait(10)
            try:
                if step == "archive":
                    results.append(mine.archive())
                else:
                    results.append(mine.purge(now=datetime.now(UTC) + timedelta(days=30))[0])
            except Exception as exc:  # the assertion shows what went wrong
                results.append(exc)

    for step in ("archive", "purge"):
        threads = [threading.Thread(target=run, args=(step,)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(results[:2]) == [0, 2]  # archived once, whoever made the days
    assert sorted(results[2:]) == [0, 2]  # dropped once
    assert [name for name in _partitions(conn) if name[8:].isdigit()] == []  # every day made was over
