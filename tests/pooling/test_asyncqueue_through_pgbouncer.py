"""AsyncQueue through PgBouncer in transaction mode: more async clients than server connections,
each of send, insert (COPY, in its transaction), publish and wait, and nothing left in a session."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import psycopg

from jobqueue import AsyncQueue, Queue
from tests.pooling.conftest import POOL_SIZE
from tests.pooling.test_core_through_pgbouncer import server_leftovers

CLIENTS = 3
POOL_PER_CLIENT = 4
assert CLIENTS * POOL_PER_CLIENT > POOL_SIZE


def test_async_clients_sharing_a_pool_send_every_job_once(pooled_dsn: str, conn: psycopg.Connection[Any]) -> None:
    with Queue(pooled_dsn) as setup:
        setup.create_queue("async-pooled")
        setup.create_queue("async-keyed", policy="singleton")
        setup.create_queue("async-events")
        setup.subscribe("thing.happened", "async-events")

    async def client(index: int) -> list[str]:
        async with AsyncQueue(pooled_dsn, pool_size=POOL_PER_CLIENT) as q:
            sends = [q.send("async-pooled", {"client": index, "n": n}) for n in range(100)]
            keyed = [q.send("async-keyed", {"n": n}, singleton_key=f"k{n % 5}") for n in range(20)]
            sent = [job_id for job_id in await asyncio.gather(*sends) if job_id]
            await asyncio.gather(*keyed)  # refused duplicates come back as None, never as an error
            sent += await q.insert("async-pooled", [{"data": {"client": index, "bulk": n}} for n in range(300)])
            published = await q.publish("thing.happened", {"client": index})
            sent.append(published["async-events"])
            return sent

    async def clients() -> list[list[str]]:
        return await asyncio.gather(*(client(i) for i in range(CLIENTS)))

    sent = [job_id for ids in asyncio.run(clients()) for job_id in ids]
    assert len(sent) == CLIENTS * (100 + 300 + 1)
    with Queue(pooled_dsn) as worker:
        done: list[str] = []
        for name in ("async-pooled", "async-events"):
            while jobs := worker.fetch(name, 100):
                done += worker.complete(name, jobs)
        # Keys refused their second job while the first waited: one job per key, across clients.
        keyed = worker.fetch("async-keyed", 100)
        assert sorted(job.singleton_key or "" for job in keyed) == [f"k{n}" for n in range(5)]

    async def waited() -> str:
        async with AsyncQueue(pooled_dsn, pool_size=2) as q:
            job = await q.wait("async-pooled", sent[0], timeout=5)
            assert job is not None
            return job.state

    assert asyncio.run(waited()) == "completed"
    assert Counter(done) == Counter(sent)  # each job sent once and completed once
    assert server_leftovers(conn) == (0, 0)
