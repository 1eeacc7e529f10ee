"""Queues with a partition of the job table of their own (create_queue(partition=True))."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from jobqueue import InvalidOptionError, PolicyConflictError, Queue
from jobqueue.database import _on_parent


def _partition(conn: psycopg.Connection[Any], name: str) -> str:
    return str(conn.execute("SELECT jobqueue.job_partition(%s)", (name,)).fetchone()[0])  # type: ignore[index]


def _partitions(conn: psycopg.Connection[Any]) -> list[str]:
    return [
        row[0]
        for row in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'jobqueue.job'::regclass ORDER BY 1"
        )
    ]


def _where(conn: psycopg.Connection[Any], name: str) -> set[str]:
    """The tables that hold the queue's jobs."""
    rows = conn.execute("SELECT DISTINCT tableoid::regclass::text FROM jobqueue.job WHERE name = %s", (name,))
    return {row[0].removeprefix("jobqueue.") for row in rows}


def _fences(conn: psycopg.Connection[Any]) -> list[str]:
    rows = conn.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = 'jobqueue.job_common'::regclass AND conname LIKE '%%_fence'"
    )
    return [row[0] for row in rows]


def test_a_partitioned_queue_keeps_its_jobs_in_a_table_of_its_own(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    assert queue.create_queue("big", partition=True)
    queue.create_queue("small")
    part = _partition(conn, "big")
    assert part.startswith("job_") and len(part) == 28
    assert _partitions(conn) == sorted(["job_common", part])
    info = queue.get_queue("big")
    assert info is not None and info.partition
    assert queue.get_queue("small").partition is False  # type: ignore[union-attr]
    queue.insert("big", [{"data": n} for n in range(5)])
    queue.send("small", {})
    assert _where(conn, "big") == {part}
    assert _where(conn, "small") == {"job_common"}
    # Its indexes are named after it, each for the parent index it stands for.
    indexes = {
        row[0]
        for row in conn.execute(
            "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = %s::regclass", (f"jobqueue.{part}",)
        )
    }
    assert f"jobqueue.{part}_pkey" in indexes and f"jobqueue.{part}_fetch" in indexes
    assert f"jobqueue.{part}_policy" in indexes and len(indexes) == 12
    assert _fences(conn) == []


def test_fetching_one_queue_never_claims_another_partitions_jobs(queue: Queue) -> None:
    """A fetch claims its rows by their place in a table (ctid): the same place in two partitions
    holds two queues' jobs, and only the fetched queue's may be claimed."""
    queue.create_queue("big", partition=True)
    queue.create_queue("small")
    queue.insert("big", [{"data": n} for n in range(20)])
    queue.insert("small", [{"data": n} for n in range(20)])
    fetched = queue.fetch("small", 10)
    assert len(fetched) == 10 and {job.name for job in fetched} == {"small"}
    assert queue.queue_size("big") == 20 and queue.queue_size("small") == 10
    fetched = queue.fetch("big", 20)
    assert len(fetched) == 20 and {job.name for job in fetched} == {"big"}
    assert queue.queue_size("small") == 10


def test_a_partitioned_queue_lives_the_whole_life_of_its_jobs(queue: Queue) -> None:
    queue.create_queue("big", partition=True, retry_limit=1, archive_after=0, expire_in=60)
    done, failing, expiring = (str(queue.send("big", {"n": n})) for n in range(3))
    jobs = {job.id: job for job in queue.fetch("big", 3)}
    queue.complete("big", [jobs[done]], {"ok": True})
    queue.fail("big", [jobs[failing]], "boom")
    later = datetime.now(UTC) + timedelta(seconds=120)
    assert queue.expire(now=later) == (1, 0)  # retried: one attempt left
    assert {job.id for job in queue.fetch("big", 5, now=later)} == {failing, expiring}
    assert queue.archive() == 1
    archived = queue.get_job(done)
    assert archived is not None and archived.archived and archived.output == {"ok": True}
    assert queue.get_job(failing, "big") is not None


def test_the_policies_hold_in_a_partition(queue: Queue) -> None:
    queue.create_queue("short", policy="short", partition=True, retry_limit=0)
    first = str(queue.send("short", {}, singleton_key="k"))
    assert queue.send("short", {}, singleton_key="k") is None  # one queued per key
    queue.fail("short", queue.fetch("short"), "boom")
    a = first
    b = str(queue.send("short", {}, singleton_key="k"))
    queue.fail("short", queue.fetch("short"), "boom")
    # The partition's unique index reports under its own name; the error is the policy's.
    with pytest.raises(PolicyConflictError, match="one queued job per key"):
        queue.retry("short", [a, b])
    queue.create_queue("fifo", policy="key_strict_fifo", partition=True)
    with pytest.raises(InvalidOptionError, match="every job needs a singleton_key"):
        queue.send("fifo", {})


def test_a_partition_index_maps_to_the_job_tables_name() -> None:
    assert _on_parent("job_common_policy") == "job_policy"
    assert _on_parent("job_0123456789abcdef01234567_strict_fifo") == "job_strict_fifo"
    assert _on_parent("job_strict_fifo_key") == "job_strict_fifo_key"  # a check constraint keeps its name
    assert _on_parent("queue_dead_letter_fkey") == "queue_dead_letter_fkey"


def test_partition_is_chosen_at_creation_only(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("q")
    assert queue.create_queue("q", partition=True) is False  # left as it is
    assert _partitions(conn) == ["job_common"]
    with pytest.raises(InvalidOptionError, match="partition is chosen when a queue is created"):
        queue.update_queue("q", partition=True)
    queue.update_queue("q", partition=False, retry_limit=5)  # stated again unchanged: fine
    assert queue.get_queue("q").retry_limit == 5  # type: ignore[union-attr]
    with pytest.raises(InvalidOptionError, match="partition must be true or false"):
        queue.create_queue("r", partition="yes")  # type: ignore[arg-type]


def test_deleting_a_partitioned_queue_drops_its_table(queue: Queue, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("big", partition=True, archive_after=0)
    queue.create_queue("small")
    queue.insert("big", [{"data": n} for n in range(30)])
    queue.complete("big", queue.fetch("big", 10))
    assert queue.archive() == 10
    queue.send("small", {})
    assert queue.delete_queue("big") == 30  # 20 queued in its table, 10 archived
    assert _partitions(conn) == ["job_common"]
    assert queue.get_queue("big") is None and queue.queue_size("small") == 1
    # Made again, it starts empty in a new table.
    queue.create_queue("big", partition=True)
    assert queue.queue_size("big") == 0 and len(_partitions(conn)) == 2


def test_a_creation_stopped_after_its_fence_is_finished_by_the_next(
    queue: Queue, conn: psycopg.Connection[Any]
) -> None:
    """The fence (a CHECK on job_common) is the first of two transactions: until the second, no job
    of the queue may enter job_common, and a create_queue that stopped between them is finished by
    the next one."""
    queue.db.execute("fence_job_partition", {"name": "big"})
    assert _fences(conn) == [_partition(conn, "big") + "_fence"]
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "INSERT INTO jobqueue.job (name, retry_limit, retry_delay, retry_backoff, expire_in, keep_until, "
            "delete_after) VALUES ('big', 0, 0, false, 60, now() + interval '1 day', 0)"
        )
    assert queue.create_queue("big", partition=True)
    assert _fences(conn) == [] and _partition(conn, "big") in _partitions(conn)


def test_attaching_a_partition_does_not_scan_job_common_under_its_lock(
    queue: Queue, conn: psycopg.Connection[Any]
) -> None:
    """Postgres proves job_common holds none of the queue's jobs from the validated fence, not by a
    scan while every queue's statements wait: it says so at DEBUG1."""
    queue.create_queue("small")
    queue.insert("small", [{"data": n} for n in range(100)])
    notices: list[str] = []
    conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
    conn.execute("SET client_min_messages = debug1")
    conn.execute("SELECT jobqueue.fence_job_partition('big')")
    conn.execute("SELECT jobqueue.make_job_partition('big')")
    assert any('partition constraint for default partition "job_common" is implied' in n for n in notices), notices
    assert not any("validating" in n and "job_common" in n and "default" in n for n in notices)
