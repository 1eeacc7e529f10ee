from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from jobqueue import InvalidOptionError, PayloadError, Queue, UnknownQueueError
from tests.helpers import job_row


@pytest.fixture
def work(queue: Queue) -> Queue:
    queue.create_queue("dead")
    queue.create_queue("work", retry_limit=4, retry_delay=10, expire_in=120, retention=3600, delete_after=60)
    return queue


def test_send_takes_queue_defaults(work: Queue, conn: psycopg.Connection[Any]) -> None:
    job_id = work.send("work", {"podId": "pod-123"})
    assert job_id is not None
    row = job_row(conn, job_id)
    assert row["state"] == "created"
    assert row["data"] == {"podId": "pod-123"}
    assert (row["retry_limit"], row["retry_delay"], row["expire_in"], row["delete_after"]) == (4, 10, 120, 60)
    assert row["keep_until"] - row["start_after"] == timedelta(seconds=3600)
    assert row["priority"] == 0


def test_send_with_every_option(work: Queue, conn: psycopg.Connection[Any]) -> None:
    fixed = str(uuid.uuid4())
    job_id = work.send(
        "work",
        [1, 2],
        id=fixed,
        priority=10,
        start_after=60,
        retry_limit=1,
        retry_delay=5,
        retry_backoff=True,
        retry_delay_max=50,
        expire_in=30,
        singleton_key="pod-1",
        retention=100,
        delete_after=7,
        dead_letter="dead",
    )
    assert job_id == fixed
    row = job_row(conn, fixed)
    assert row["priority"] == 10
    assert (row["retry_limit"], row["retry_delay"], row["retry_backoff"], row["retry_delay_max"]) == (1, 5, True, 50)
    assert (row["expire_in"], row["delete_after"], row["dead_letter"], row["singleton_key"]) == (30, 7, "dead", "pod-1")
    assert timedelta(seconds=59) < row["start_after"] - row["created_on"] <= timedelta(seconds=61)
    assert row["keep_until"] - row["start_after"] == timedelta(seconds=100)


@pytest.mark.parametrize(
    "start_after",
    [
        datetime(2030, 1, 1, 9, tzinfo=UTC),
        "2030-01-01T09:00:00Z",
        "2030-01-01T10:00:00+01:00",
    ],
)
def test_start_after_absolute(work: Queue, conn: psycopg.Connection[Any], start_after: object) -> None:
    job_id = work.send_after("work", {}, start_after)  # type: ignore[arg-type]
    assert job_id is not None
    assert job_row(conn, job_id)["start_after"] == datetime(2030, 1, 1, 9, tzinfo=UTC)


def test_start_after_timedelta(work: Queue, conn: psycopg.Connection[Any]) -> None:
    job_id = work.send("work", {}, start_after=timedelta(minutes=2))
    assert job_id is not None
    row = job_row(conn, job_id)
    assert timedelta(seconds=119) < row["start_after"] - row["created_on"] <= timedelta(seconds=121)


def test_delayed_job_is_not_fetched_before_its_time(work: Queue) -> None:
    job_id = work.send("work", {}, start_after=3600)
    assert work.fetch("work", 10) == []
    assert [j.id for j in work.fetch("work", 10, now=datetime.now(UTC) + timedelta(hours=2))] == [job_id]


def test_send_to_unknown_queue_is_an_error(queue: Queue) -> None:
    with pytest.raises(UnknownQueueError, match="unknown queue 'nope'"):
        queue.send("nope", {})
    with pytest.raises(UnknownQueueError):
        queue.insert("nope", [{"data": 1}])


def test_send_with_unknown_dead_letter_queue(work: Queue) -> None:
    with pytest.raises(UnknownQueueError, match="dead letter queue 'ghost'"):
        work.send("work", {}, dead_letter="ghost")
    with pytest.raises(UnknownQueueError, match="dead letter queue 'ghost'"):
        work.insert("work", [{"data": 1, "dead_letter": "ghost"}])
    assert work.queue_size("work") == 0


def test_duplicate_id_is_refused_like_a_policy(work: Queue) -> None:
    fixed = str(uuid.uuid4())
    assert work.send("work", {}, id=fixed) == fixed
    assert work.send("work", {}, id=fixed) is None
    assert work.queue_size("work") == 1


class Unserialisable:
    pass


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        ({"x": Unserialisable()}, PayloadError, "not JSON-serialisable"),
        ({"x": float("nan")}, PayloadError, "not JSON-serialisable"),
        ({1, 2}, PayloadError, "not JSON-serialisable"),
        ({"x": "nul\x00"}, PayloadError, "NUL"),
        ("x" * 2_000_000, PayloadError, "over the limit"),
    ],
)
def test_bad_payloads(work: Queue, data: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        work.send("work", data)
    with pytest.raises(error, match=message):
        work.insert("work", [{"data": 1}, {"data": data}])
    assert work.queue_size("work") == 0


def test_payload_limit_is_configurable(dsn: str) -> None:
    with Queue(dsn, max_payload_bytes=100) as small:
        small.create_queue("work")
        assert small.send("work", "x" * 50)
        with pytest.raises(PayloadError, match="over the limit of 100 bytes"):
            small.send("work", "x" * 200)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"priority": 10**9}, "priority must be between"),
        ({"priority": "high"}, "priority must be an integer"),
        ({"retry_limit": -1}, "retry_limit must be between"),
        ({"retry_delay": -5}, "retry_delay must be between"),
        ({"retry_delay": 10**9}, "retry_delay must be between"),
        ({"expire_in": 0}, "expire_in must be between"),
        ({"start_after": -1}, "start_after in seconds must be between"),
        ({"start_after": "tomorrow"}, "not an ISO 8601"),
        ({"start_after": "2030-01-01T09:00:00"}, "must carry a time zone"),
        ({"start_after": datetime(2030, 1, 1)}, "must carry a time zone"),
        ({"start_after": float("inf")}, "start_after in seconds"),
        ({"start_after": [1]}, "start_after must be seconds"),
        ({"singleton_key": ""}, "singleton_key must be a string"),
        ({"singleton_key": "k" * 300}, "singleton_key must be a string"),
        ({"singleton_key": "a\x00b"}, "singleton_key contains a NUL character"),
        ({"singleton_key": "a\ud800"}, "singleton_key contains a lone surrogate"),
        ({"group": {"id": "g\x00"}}, "group id contains a NUL character"),
        ({"singleton_next_slot": True}, "needs singleton_seconds"),
        ({"id": "not-a-uuid"}, "job id must be a UUID"),
        ({"colour": "red"}, "unknown send option"),
        ({"dead_letter": "bad name!"}, "invalid dead letter queue name"),
    ],
)
def test_bad_send_options(work: Queue, options: dict[str, Any], message: str) -> None:
    with pytest.raises((InvalidOptionError, ValueError), match=message):
        work.send("work", {}, **options)
    assert work.queue_size("work") == 0


def test_throttle_allows_one_job_per_slot_and_key(work: Queue, conn: psycopg.Connection[Any]) -> None:
    first = work.send_throttled("work", {"n": 1}, seconds=3600, key="pod-1")
    assert first is not None
    assert work.send_throttled("work", {"n": 2}, seconds=3600, key="pod-1") is None
    assert work.send_throttled("work", {"n": 3}, seconds=3600, key="pod-2") is not None
    # The slot is over once its start lies more than a slot in the past.
    conn.execute("UPDATE jobqueue.job SET singleton_on = singleton_on - interval '1 hour' WHERE id = %s", (first,))
    assert work.send_throttled("work", {"n": 4}, seconds=3600, key="pod-1") is not None


def test_throttle_slot_frees_when_the_job_is_cancelled(work: Queue) -> None:
    first = work.send_throttled("work", {}, seconds=3600)
    assert first is not None
    work.cancel("work", [first])
    assert work.send_throttled("work", {}, seconds=3600) is not None


def test_debounce_moves_the_second_send_to_the_next_slot(work: Queue, conn: psycopg.Connection[Any]) -> None:
    first = work.send_debounced("work", {"n": 1}, seconds=600, key="k")
    second = work.send_debounced("work", {"n": 2}, seconds=600, key="k")
    third = work.send_debounced("work", {"n": 3}, seconds=600, key="k")
    assert first is not None and second is not None
    assert third is None  # both slots taken
    a, b = job_row(conn, first), job_row(conn, second)
    assert b["singleton_on"] - a["singleton_on"] == timedelta(seconds=600)
    assert b["start_after"] == b["singleton_on"]  # runs when its slot begins
    assert work.fetch("work", 10)[0].id == first


def test_insert_batch_with_options(work: Queue, conn: psycopg.Connection[Any]) -> None:
    fixed = str(uuid.uuid4())
    ids = work.insert(
        "work",
        [
            {"data": {"to": "user1@example.com"}},
            {"data": {"to": "user2@example.com"}, "priority": 5, "retry_limit": 0, "id": fixed},
            {"data": {"to": "user3@example.com"}, "start_after": "2030-01-01T00:00:00Z", "singleton_key": "k"},
            {"data": None, "start_after": 30, "dead_letter": "dead", "expire_in": 5},
        ],
    )
    assert len(ids) == 4 and fixed in ids
    row = job_row(conn, fixed)
    assert (row["priority"], row["retry_limit"], row["retry_delay"]) == (5, 0, 10)
    rows = {r[0]: r for r in conn.execute("SELECT data->>'to', start_after, singleton_key FROM jobqueue.job")}
    assert rows["user3@example.com"][1] == datetime(2030, 1, 1, tzinfo=UTC)
    assert rows["user3@example.com"][2] == "k"
    assert work.fetch("work", 10)[0].id == fixed  # priority first


def test_insert_thousands_in_one_call(work: Queue) -> None:
    ids = work.insert("work", ({"data": {"n": n}} for n in range(5000)))
    assert len(set(ids)) == 5000
    assert work.queue_size("work") == 5000


def test_insert_skips_jobs_a_policy_refuses(queue: Queue) -> None:
    queue.create_queue("short", policy="short")
    ids = queue.insert("short", [{"data": 1, "singleton_key": "a"}, {"data": 2, "singleton_key": "a"}, {"data": 3}])
    assert len(ids) == 2
    assert queue.insert("short", []) == []


def test_failed_batch_insert_inserts_nothing(work: Queue) -> None:
    with pytest.raises(InvalidOptionError):
        work.insert("work", [{"data": 1}, {"data": 2, "priority": "urgent"}])
    with pytest.raises(InvalidOptionError, match="must be a mapping"):
        work.insert("work", [{"data": 1}, "just a string"])  # type: ignore[list-item]
    # A duplicate id inside one batch is skipped like any conflict, not an error.
    fixed = str(uuid.uuid4())
    assert work.insert("work", [{"data": 1, "id": fixed}, {"data": 2, "id": fixed}]) == [fixed]
    work.delete_job("work", [fixed])


def test_database_error_mid_batch_inserts_nothing(work: Queue, conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        """CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN RAISE EXCEPTION 'refused'; END $$;
           CREATE TRIGGER refuse BEFORE INSERT ON jobqueue.job FOR EACH ROW
           WHEN (NEW.data = '"poison"'::jsonb) EXECUTE FUNCTION refuse()"""
    )
    with pytest.raises(psycopg.errors.RaiseException):
        work.insert("work", [{"data": 1}, {"data": 2}, {"data": "poison"}, {"data": 4}])
    assert work.queue_size("work") == 0


def test_transactional_send_rolls_back_with_the_caller(work: Queue, dsn: str) -> None:
    with psycopg.connect(dsn) as mine:
        mine.execute("CREATE TABLE pods (id text PRIMARY KEY)")
        mine.commit()
        with mine.transaction():
            mine.execute("INSERT INTO pods VALUES ('pod-1')")
            committed = work.send("work", {"podId": "pod-1"}, conn=mine)
            work.insert("work", [{"data": {"podId": "pod-1", "n": 2}}], conn=mine)

        def fail_midway() -> None:
            with mine.transaction():
                mine.execute("INSERT INTO pods VALUES ('pod-2')")
                work.send("work", {"podId": "pod-2"}, conn=mine)
                work.insert("work", [{"data": {"podId": "pod-2", "n": 2}}], conn=mine)
                raise ZeroDivisionError

        with pytest.raises(ZeroDivisionError):
            fail_midway()
    pods = {job.data["podId"] for job in work.find_jobs("work")}
    assert pods == {"pod-1"}
    assert work.get_job(str(committed)) is not None
    assert work.queue_size("work") == 2


def test_uncommitted_send_is_invisible_to_workers(work: Queue, dsn: str) -> None:
    with psycopg.connect(dsn) as mine:
        work.send("work", {}, conn=mine)
        assert work.fetch("work", 10) == []  # the worker's connection cannot see it yet
        mine.commit()
    assert len(work.fetch("work", 10)) == 1
