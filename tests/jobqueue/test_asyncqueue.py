"""AsyncQueue against the same database as Queue: a job sent one way is seen the other, errors alike."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from jobqueue import DatabaseUnavailableError, InvalidOptionError, PolicyConflictError, Queue, UnknownQueueError
from jobqueue.asyncqueue import AsyncQueue

T = TypeVar("T")


def run(dsn: str, work: Callable[[AsyncQueue], Awaitable[T]]) -> T:
    async def main() -> T:
        async with AsyncQueue(dsn) as jobs:
            return await work(jobs)

    return asyncio.run(main())


def test_a_job_sent_async_is_fetched_sync_and_the_other_way(queue: Queue, dsn: str) -> None:
    queue.create_queue("q", retry_limit=2)

    async def send(jobs: AsyncQueue) -> list[str | None]:
        return [
            await jobs.send("q", {"n": 1}, priority=5),
            await jobs.send_after("q", {"n": 2}, 3600),
            await jobs.send_throttled("q", {"n": 3}, 3600, "k"),
            await jobs.send_throttled("q", {"n": 4}, 3600, "k"),  # the slot is taken
            await jobs.send_debounced("q", {"n": 5}, 3600, "d"),
        ]

    first, delayed, throttled, refused, debounced = run(dsn, send)
    assert refused is None and None not in (first, delayed, throttled, debounced)
    [fetched] = queue.fetch("q")
    assert (fetched.id, fetched.priority, fetched.retry_limit) == (first, 5, 2)
    sync_id = queue.send("q", {"n": 6})
    seen = run(dsn, lambda jobs: jobs.get_job(str(sync_id)))
    assert seen is not None and seen.data == {"n": 6} and seen.state == "created"
    stats = run(dsn, lambda jobs: jobs.get_queue_stats())
    assert {s.name: (s.created, s.active) for s in stats}["q"] == (4, 1)


@pytest.mark.parametrize(
    "jobs",
    [
        [{"data": {"n": n}} for n in range(50)],  # data alone: COPY
        [{"data": {"n": n}, "priority": n % 3} for n in range(50)],  # with options: COPY
        [{"data": {"n": n}, "singleton_key": f"k{n}"} for n in range(50)],  # a short queue: the statement
    ],
)
def test_insert_goes_in_every_way_and_makes_batches(queue: Queue, dsn: str, jobs: list[dict[str, Any]]) -> None:
    policy = "short" if "singleton_key" in jobs[0] else "standard"
    queue.create_queue("bulk", policy=policy)
    queue.create_queue("summary")

    async def insert(aq: AsyncQueue) -> list[str]:
        return await aq.insert("bulk", jobs, batch={"id": "b-1", "on_finish": {"name": "summary", "data": {}}})

    ids = run(dsn, insert)
    assert len(ids) == 50
    fetched = queue.fetch("bulk", 100)
    assert sorted(job.id for job in fetched) == sorted(ids)
    queue.complete("bulk", fetched)
    batch = queue.get_batch("b-1")
    assert batch is not None and batch.completed == 50 and batch.finished_on is not None
    assert len(queue.fetch("summary")) == 1


def test_errors_are_queues(queue: Queue, dsn: str) -> None:
    queue.create_queue("emails")

    async def attempts(aq: AsyncQueue) -> list[BaseException]:
        caught = []
        for call in (
            lambda: aq.send("emials", {}),
            lambda: aq.send("emails", {}, priority="high"),  # type: ignore[arg-type]
            lambda: aq.send("emails", {}, dead_letter="nowhere"),
            lambda: aq.insert("emials", [{"data": {}}]),
            lambda: aq.wait("emails", "not-a-uuid", 1),
            lambda: aq.flow([{"ref": "a", "name": "emails", "depends_on": ["b"]}]),
        ):
            try:
                await call()
            except Exception as exc:
                caught.append(exc)
        return caught

    caught = run(dsn, attempts)
    # The same exceptions, with the same words, as Queue's.
    with pytest.raises(UnknownQueueError) as sync_unknown:
        queue.send("emials", {})
    assert isinstance(caught[0], UnknownQueueError) and str(caught[0]) == str(sync_unknown.value)
    assert "did you mean 'emails'" in str(caught[0])
    with pytest.raises(InvalidOptionError) as sync_bad:
        queue.send("emails", {}, priority="high")  # type: ignore[arg-type]
    assert isinstance(caught[1], InvalidOptionError) and str(caught[1]) == str(sync_bad.value)
    assert isinstance(caught[2], UnknownQueueError) and "dead letter queue" in str(caught[2])
    assert isinstance(caught[3], UnknownQueueError)
    assert isinstance(caught[4], InvalidOptionError) and isinstance(caught[5], InvalidOptionError)


def test_writes_join_the_callers_transaction(queue: Queue, dsn: str, conn: psycopg.Connection[Any]) -> None:
    queue.create_queue("a")
    queue.create_queue("b")
    queue.subscribe("e", "a")
    queue.subscribe("e", "b")

    async def rolled_back() -> None:
        async with await psycopg.AsyncConnection.connect(dsn) as own, own.transaction():
            aq = AsyncQueue(own)
            await aq.send("a", {"n": 1}, conn=own)
            await aq.insert("a", [{"data": {"n": 2}}], conn=own)
            assert len(await aq.publish("e", {"n": 3}, conn=own)) == 2
            await aq.flow([{"ref": "x", "name": "a"}, {"ref": "y", "name": "b", "depends_on": ["x"]}], conn=own)
            raise psycopg.Rollback

    asyncio.run(rolled_back())
    assert conn.execute("SELECT count(*) FROM jobqueue.job WHERE name IN ('a', 'b')").fetchone() == (0,)


def test_flows_publish_and_acting_on_jobs(queue: Queue, dsn: str) -> None:
    queue.create_queue("provision")
    queue.create_queue("check")
    queue.subscribe("pod.ready", "check")

    async def work(aq: AsyncQueue) -> tuple[dict[str, str], dict[str, str], list[str], list[str]]:
        ids = await aq.flow(
            [
                {"ref": "p", "name": "provision", "data": {"pod": 1}},
                {"ref": "c", "name": "check", "data": {"pod": 1}, "depends_on": ["p"]},
            ]
        )
        published = await aq.publish("pod.ready", {"pod": 2})
        cancelled = await aq.cancel("check", published["check"])
        resumed = await aq.resume("check", cancelled)
        return ids, published, cancelled, resumed

    ids, published, cancelled, resumed = run(dsn, work)
    assert cancelled == resumed == [published["check"]]
    [provision] = queue.fetch("provision")
    assert provision.id == ids["p"]
    assert [job.id for job in queue.fetch("check", 10)] == [published["check"]]  # the flow's waits for its parent
    queue.complete("provision", provision)
    assert [job.id for job in queue.fetch("check", 10)] == [ids["c"]]
    queue.create_queue("retried", retry_limit=0)
    failed = queue.send("retried", {})
    queue.fail("retried", queue.fetch("retried"))
    assert run(dsn, lambda aq: aq.retry("retried", str(failed))) == [failed]


def test_wait_returns_once_a_worker_finishes_the_job(queue: Queue, dsn: str) -> None:
    queue.create_queue("q")
    job_id = queue.send("q", {})
    ready = threading.Event()

    def worker() -> None:
        with Queue(dsn) as other:
            ready.wait(10)
            other.complete("q", other.fetch("q"))

    thread = threading.Thread(target=worker)
    thread.start()

    async def wait(aq: AsyncQueue) -> Any:
        ready.set()
        return await aq.wait("q", str(job_id), 20)

    done = run(dsn, wait)
    thread.join()
    assert done is not None and done.state == "completed"


def test_a_pool_you_give_and_a_database_that_does_not_answer(queue: Queue, dsn: str) -> None:
    queue.create_queue("q")

    async def pooled() -> str | None:
        async with AsyncConnectionPool(dsn, kwargs={"autocommit": True}, min_size=1, max_size=2) as pool:
            aq = AsyncQueue(pool)
            return await aq.send("q", {"pooled": True})

    sent = asyncio.run(pooled())
    assert queue.get_job(str(sent)) is not None

    async def unreachable() -> None:
        async with AsyncQueue("postgresql://nobody:secret@127.0.0.1:1/none", connect_timeout=1):
            pass

    with pytest.raises(DatabaseUnavailableError) as refused:
        asyncio.run(unreachable())
    assert "secret" not in str(refused.value) and "127.0.0.1" in str(refused.value)


def test_a_flow_refused_by_a_policy_creates_nothing(queue: Queue, dsn: str) -> None:
    queue.create_queue("once", policy="short")
    queue.send("once", {}, singleton_key="k")

    async def flow(aq: AsyncQueue) -> None:
        await aq.flow([{"ref": "a", "name": "once", "options": {"singleton_key": "k"}}])

    with pytest.raises(PolicyConflictError, match="refused job 'a'"):
        run(dsn, flow)
