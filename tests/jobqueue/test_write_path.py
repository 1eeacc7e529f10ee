"""The fast write paths: a plain send with an id made by the sender, data-only batches by COPY.

What they must keep from the statements they replace: every guarantee of insert
(all or nothing, the queue's settings, policies, ids returned, the caller's
transaction) and every payload byte for byte.
"""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobqueue import PayloadError, Policy, Queue, UnknownQueueError
from jobqueue.ids import new_id, new_ids
from tests.helpers import job_row

# What Postgres stores as jsonb unchanged: no NUL, no lone surrogate (refused before COPY, as
# before it), and no float beyond 2^53 (jsonb keeps it as an exact numeric, read back as an int).
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15)
    | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12,
)


def test_ids_are_uuid_v7_and_ascend_within_a_process() -> None:
    ids = new_ids(5000) + [new_id() for _ in range(100)] + new_ids(3)
    parsed = [uuid.UUID(text) for text in ids]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in parsed)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)  # text order is byte order: ascending
    assert [str(u) for u in parsed] == ids  # canonical form


def test_ids_from_threads_never_collide() -> None:
    found: list[list[str]] = []

    def make() -> None:
        found.append([new_id() for _ in range(2000)])

    threads = [threading.Thread(target=make) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [job_id for ids in found for job_id in ids]
    assert len(set(every)) == len(every) == 8000
    assert all(ids == sorted(ids) for ids in found)


@pytest.fixture
def work(queue: Queue) -> Queue:
    queue.create_queue("dead")
    queue.create_queue("work", retry_limit=4, retry_delay=10, expire_in=120, retention=3600, delete_after=60)
    queue.update_queue("work", dead_letter="dead")
    return queue


def test_a_copied_batch_gets_the_queues_settings_and_its_ids_in_order(
    work: Queue, conn: psycopg.Connection[Any]
) -> None:
    ids = work.insert("work", [{"data": {"n": n}} for n in range(2500)])
    assert len(ids) == 2500 and ids == sorted(ids)
    row = job_row(conn, ids[0])
    assert (row["retry_limit"], row["retry_delay"], row["expire_in"], row["delete_after"]) == (4, 10, 120, 60)
    assert row["dead_letter"] == "dead" and row["policy"] == "standard" and row["state"] == "created"
    assert row["keep_until"] - row["start_after"] == timedelta(seconds=3600)
    # Fetch order within the batch is the order given (one created_on, ascending ids).
    fetched = work.fetch("work", 2500)
    assert [job.data["n"] for job in fetched] == list(range(2500))


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(datas=st.lists(JSON, min_size=1, max_size=20))
def test_every_payload_survives_copy_byte_for_byte(
    work: Queue, conn: psycopg.Connection[Any], datas: list[Any]
) -> None:
    ids = work.insert("work", [{"data": data} for data in datas])
    stored = dict(conn.execute("SELECT id::text, data FROM jobqueue.job WHERE id = ANY(%s::uuid[])", (ids,)).fetchall())
    assert [stored[job_id] for job_id in ids] == datas


def test_payloads_copy_must_escape(work: Queue, conn: psycopg.Connection[Any]) -> None:
    tricky = ["back\\slash", "tab\there", "new\nline", "\\N", 'quote "x"', "é ✓ 𝄞", "\u2028", {"\\": "\\\\t"}, None]
    ids = work.insert("work", [{"data": data} for data in tricky])
    assert [job_row(conn, job_id)["data"] for job_id in ids] == tricky


def test_a_copied_batch_is_all_or_nothing(work: Queue, conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(PayloadError, match="not JSON-serialisable"):
        work.insert("work", [{"data": 1}, {"data": object()}])
    with pytest.raises(PayloadError, match="over the limit"):
        work.insert("work", [{"data": 1}, {"data": "x" * (work.max_payload_bytes + 1)}])
    assert conn.execute("SELECT count(*) FROM jobqueue.job").fetchone() == (0,)
    with pytest.raises(UnknownQueueError, match="wrok"):
        work.insert("wrok", [{"data": 1}])


def test_a_copied_batch_commits_and_rolls_back_with_the_callers_transaction(
    work: Queue, dsn: str, conn: psycopg.Connection[Any]
) -> None:
    with psycopg.connect(dsn) as mine:  # not autocommit: the caller's transaction
        ids = work.insert("work", [{"data": n} for n in range(10)], conn=mine)
        assert conn.execute("SELECT count(*) FROM jobqueue.job").fetchone() == (0,)  # not visible yet
        mine.rollback()
    assert conn.execute("SELECT count(*) FROM jobqueue.job WHERE id = ANY(%s::uuid[])", (ids,)).fetchone() == (0,)
    with psycopg.connect(dsn) as mine:
        ids = work.insert("work", [{"data": n} for n in range(10)], conn=mine)
        mine.commit()
    assert conn.execute("SELECT count(*) FROM jobqueue.job WHERE id = ANY(%s::uuid[])", (ids,)).fetchone() == (10,)


@pytest.mark.parametrize("policy", [Policy.SHORT, Policy.STATELY, Policy.EXCLUSIVE])
def test_policies_that_refuse_still_skip_what_they_refuse(queue: Queue, policy: Policy) -> None:
    queue.create_queue("p", policy=policy)
    first = queue.insert("p", [{"data": 1}, {"data": 2}, {"data": 3}])
    assert len(first) == 1  # one job without a key admitted, the rest skipped
    assert queue.insert("p", [{"data": 4}]) == []


def test_a_key_strict_fifo_queue_still_needs_keys(queue: Queue) -> None:
    queue.create_queue("fifo", policy=Policy.KEY_STRICT_FIFO)
    with pytest.raises(Exception, match="key"):
        queue.insert("fifo", [{"data": 1}])


def test_a_plain_send_returns_the_id_it_stored(work: Queue, conn: psycopg.Connection[Any]) -> None:
    first, second = work.send("work", {"a": 1}), work.send("work", {"a": 2})
    assert first is not None and second is not None and first < second
    assert job_row(conn, first)["data"] == {"a": 1} and uuid.UUID(first).version == 7
    with pytest.raises(UnknownQueueError):
        work.send("nope", {})
    work.create_queue("once", policy=Policy.SHORT)
    assert work.send("once", 1) is not None and work.send("once", 2) is None  # refused: no id


def test_a_batch_with_options_checks_each_distinct_set_and_keeps_every_jobs_own(
    work: Queue, conn: psycopg.Connection[Any]
) -> None:
    jobs: list[dict[str, Any]] = [{"data": n, "priority": n % 3, "singleton_key": f"k{n}"} for n in range(30)]
    jobs += [{"data": "g", "group": {"id": "t1", "tier": "small"}}, {"data": "g2", "group": {"id": "t2"}}]
    ids = work.insert("work", jobs)
    assert len(ids) == 32
    stored = conn.execute(
        "SELECT data, priority, singleton_key, group_id, group_tier FROM jobqueue.job ORDER BY id"
    ).fetchall()
    assert stored[:30] == [(n, n % 3, f"k{n}", None, None) for n in range(30)]
    assert stored[30:] == [("g", 0, None, "t1", "small"), ("g2", 0, None, "t2", None)]
    # One bad option anywhere: nothing is written.
    with pytest.raises(Exception, match="priority"):
        work.insert("work", [{"data": 1, "priority": 1}, {"data": 2, "priority": "high"}])
    assert conn.execute("SELECT count(*) FROM jobqueue.job").fetchone() == (32,)


def test_copy_and_the_insert_statement_give_the_same_rows(work: Queue, conn: psycopg.Connection[Any]) -> None:
    """rows.py computes in Python what the insert statement computes in SQL: both must agree."""
    from datetime import UTC, datetime

    from jobqueue import plans
    from jobqueue.rows import checked_jobs, copyable

    work.create_queue("twin")
    work.update_queue("twin", retry_limit=4, retry_delay=10, expire_in=120, retention=3600, delete_after=60)
    work.update_queue("twin", dead_letter="dead")
    later = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    jobs: list[dict[str, Any]] = [
        {"data": {"n": 0}},
        {"data": {"n": 1}, "priority": 5, "retry_limit": 0, "retry_delay": 3, "retry_backoff": True},
        {"data": {"n": 2}, "retry_delay_max": 30, "expire_in": 7, "retention": 10, "delete_after": 0},
        {"data": {"n": 3}, "start_after": 90},
        {"data": {"n": 4}, "start_after": timedelta(seconds=1.5)},
        {"data": {"n": 5}, "start_after": later},
        {"data": {"n": 6}, "start_after": "2031-05-06T07:08:09+02:00", "singleton_key": "tab\tkey\\"},
        {"data": {"n": 7}, "group": {"id": "g1", "tier": "small"}},
        {"data": {"n": 8}, "group": {"id": "g2"}, "singleton_key": "k"},
    ]
    checked = checked_jobs(jobs, work.max_payload_bytes)
    assert copyable(checked, "standard")
    copied = work.insert("work", jobs)
    # The same jobs through the insert statement (plans.insert_statement chooses it for a queue
    # whose policy may refuse them; here it is asked for directly).
    plan = plans.plan_insert("twin", jobs, None, work.max_payload_bytes, work._json)
    assert plan is not None
    params = plans.insert_records(plan)
    stated = [row["id"] for row in work.db.rows("insert", params)]
    columns = (
        "data, policy, priority, retry_limit, retry_delay, retry_backoff, retry_delay_max, expire_in,"
        # an absolute start as it is, a relative one in whole seconds from the sending statement (created_on)
        " CASE WHEN data->>'n' IN ('5', '6') THEN start_after END,"
        " CASE WHEN data->>'n' NOT IN ('5', '6') THEN round(extract(epoch FROM start_after - created_on)) END,"
        " singleton_key, keep_until - start_after, delete_after, dead_letter,"
        " group_id, group_tier, state, singleton_on, (start_after = %s::timestamptz)"
    )
    query = f"SELECT {columns} FROM jobqueue.job WHERE id = ANY(%s::uuid[]) ORDER BY data->>'n'"
    assert conn.execute(query, (later, copied)).fetchall() == conn.execute(query, (later, stated)).fetchall()


def dsn_of(conn: psycopg.Connection[Any]) -> str:
    info = conn.info
    return f"host={info.host} port={info.port} user={info.user} dbname={info.dbname}"
