"""`AsyncQueue`: what an asyncio app does with the queue (FastAPI, Starlette, aiohttp), without a thread.

Sending (send and its delayed, throttled and debounced forms, insert, publish, flow), reading
(get_job, wait, get_queue_stats) and acting on jobs (cancel, resume, retry), on psycopg's async
connections: a pool of its own (from a conninfo), a pool you give, or a connection you own (pass
`conn=` to make a write part of your transaction). Fetching and working stay with `Queue`: the
workers are the functions.

The same named statements as `Queue` (sql/queries) and the same checks: the options are checked,
the rows rendered and the statement chosen by jobqueue.plans, jobqueue.options and jobqueue.rows,
which `Queue` runs too; the database's errors become the same exceptions (database.Translating).
A job sent here is fetched by `Queue` and the other way round.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any, Unpack

from psycopg import AsyncConnection
from psycopg.rows import RowFactory, class_row, dict_row
from psycopg_pool import AsyncConnectionPool

from jobqueue import options, plans
from jobqueue.client import JobRef, as_list, refs
from jobqueue.database import Translating, connection_target, open_async_pool, parse_conninfo
from jobqueue.errors import DatabaseUnavailableError, InvalidOptionError, PolicyConflictError, UnknownQueueError
from jobqueue.flows import checked_flow
from jobqueue.inspecting import wait_steps
from jobqueue.models import Job, QueueStats, job_row
from jobqueue.settings import BatchSpec, NewJob, SendOptions
from jobqueue.sqlfiles import queries_for, quote_schema
from jobqueue.states import CANCELLABLE, FINISHED, RESUMABLE, RETRYABLE

AsyncConn = AsyncConnection[Any] | None


class AsyncQueue:
    def __init__(
        self,
        target: str | AsyncConnectionPool | AsyncConnection[Any],
        *,
        schema: str = "jobqueue",
        max_payload_bytes: int = options.DEFAULT_MAX_PAYLOAD_BYTES,
        pool_size: int = 4,
        connect_timeout: int = 10,
        statement_timeout_ms: int | None = None,
        prepare_threshold: int | None = None,
    ) -> None:
        """`target`: a conninfo string / postgresql:// URL (the queue opens a pool of `pool_size`
        autocommit connections on `open()` or `async with`), a psycopg_pool AsyncConnectionPool of
        autocommit connections, or an AsyncConnection you manage."""
        quote_schema(schema)
        self.schema = schema
        self.queries = queries_for(schema)
        if isinstance(max_payload_bytes, bool) or not isinstance(max_payload_bytes, int) or max_payload_bytes < 1:
            raise InvalidOptionError(f"max_payload_bytes must be a positive integer, got {max_payload_bytes!r}")
        self.max_payload_bytes = max_payload_bytes
        self._connect_timeout = connect_timeout
        self._conninfo: str | None = None
        self._conn: AsyncConnection[Any] | None = None
        self._pool: AsyncConnectionPool | None = None
        self._own_pool = False
        if isinstance(target, AsyncConnection):
            self._conn = target
        elif isinstance(target, AsyncConnectionPool):
            self._pool = target
        else:
            parse_conninfo(target)
            self._conninfo = target
            conninfo = connection_target(target, connect_timeout, statement_timeout_ms)
            self._statement_timeout_ms = statement_timeout_ms
            self._pool = AsyncConnectionPool(
                conninfo,
                min_size=1,
                max_size=pool_size,
                open=False,
                kwargs={"autocommit": True, "prepare_threshold": prepare_threshold},
            )
            self._own_pool = True

    async def open(self) -> AsyncQueue:
        """Open the queue's own pool (a no-op for a pool or connection you manage)."""
        if self._own_pool and self._pool is not None and self._pool.closed:
            await open_async_pool(self._pool, self._connect_timeout, self._conninfo or "", self._statement_timeout_ms)
        return self

    async def close(self) -> None:
        if self._own_pool and self._pool is not None:
            await self._pool.close()

    async def __aenter__(self) -> AsyncQueue:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the statements -----------------------------------------------------------------------

    @asynccontextmanager
    async def _connection(self, conn: AsyncConn) -> AsyncIterator[AsyncConnection[Any]]:
        if conn is not None:
            yield conn
        elif self._conn is not None:
            if self._conn.closed:
                raise DatabaseUnavailableError("the connection given to the queue is closed")
            yield self._conn
        else:
            assert self._pool is not None
            if self._own_pool and self._pool.closed:
                await self.open()
            async with self._pool.connection() as pooled:
                yield pooled

    def _lent(self, conn: AsyncConn) -> bool:
        return conn is not None or self._conn is not None

    async def _rows(
        self, name: str, params: Any, conn: AsyncConnection[Any], lent: bool, row_factory: RowFactory[Any] = dict_row
    ) -> list[Any]:
        cursor = conn.cursor(row_factory=row_factory)
        with Translating(name, params, conn, lent=lent):
            await cursor.execute(self.queries[name], params)
            return await cursor.fetchall()

    async def _affected(self, name: str, params: Any, conn: AsyncConnection[Any], lent: bool) -> int:
        cursor = conn.cursor()
        with Translating(name, params, conn, lent=lent):
            await cursor.execute(self.queries[name], params)
        return cursor.rowcount

    async def _scalar(self, name: str, params: Any, conn: AsyncConnection[Any], lent: bool) -> Any:
        rows = await self._rows(name, params, conn, lent)
        return None if not rows else next(iter(rows[0].values()))

    async def _unknown_queue(self, name: str, role: str, conn: AsyncConnection[Any], lent: bool) -> UnknownQueueError:
        known = [row["name"] for row in await self._rows("queue_names", None, conn, lent)]
        return UnknownQueueError(name, role, known)

    def _json(self, value: Any, what: str) -> str:
        return options.to_json(value, what, self.max_payload_bytes)

    # -- sending ------------------------------------------------------------------------------

    async def send(
        self, name: str, data: Any = None, *, conn: AsyncConn = None, **send_options: Unpack[SendOptions]
    ) -> str | None:
        """As Queue.send: the job's id, or None when a policy or throttle refused it."""
        options.queue_name(name)
        params, next_slot = plans.send_params(name, self._json(data, "data"), send_options, plans.origin())
        lent = self._lent(conn)
        async with self._connection(conn) as connection:
            sent = await self._affected("send", params, connection, lent)
            if not sent and next_slot:
                params["singleton_offset"] = params["singleton_seconds"]
                sent = await self._affected("send", params, connection, lent)
            if not sent:
                if not await self._scalar("queue_exists", {"name": name}, connection, lent):
                    raise await self._unknown_queue(name, "queue", connection, lent)
                dead_letter = params["dead_letter"]
                if dead_letter is not None and not await self._scalar(
                    "queue_exists", {"name": dead_letter}, connection, lent
                ):
                    raise await self._unknown_queue(dead_letter, "dead letter queue", connection, lent)
                return None
        job_id: str = params["id"]
        return job_id

    async def send_after(
        self,
        name: str,
        data: Any,
        start_after: int | float | timedelta | datetime | str,
        /,
        **send_options: Unpack[SendOptions],
    ) -> str | None:
        delayed: SendOptions = {**send_options, "start_after": start_after}
        return await self.send(name, data, **delayed)

    async def send_throttled(
        self, name: str, data: Any, seconds: int, key: str | None = None, **send_options: Unpack[SendOptions]
    ) -> str | None:
        return await self.send(name, data, **plans.throttled(send_options, seconds, key, next_slot=False))

    async def send_debounced(
        self, name: str, data: Any, seconds: int, key: str | None = None, **send_options: Unpack[SendOptions]
    ) -> str | None:
        return await self.send(name, data, **plans.throttled(send_options, seconds, key, next_slot=True))

    async def insert(
        self, name: str, jobs: Iterable[NewJob], conn: AsyncConn = None, *, batch: BatchSpec | None = None
    ) -> list[str]:
        """As Queue.insert: the ids of the jobs inserted, all in one transaction (or the caller's)."""
        plan = plans.plan_insert(name, jobs, batch, self.max_payload_bytes, self._json)
        if plan is None:
            return []
        lent = self._lent(conn)
        async with self._connection(conn) as connection, connection.transaction():
            queue = (await self._rows("copy_queue", {"name": name}, connection, lent) or [None])[0]
            if queue is None:
                raise await self._unknown_queue(name, "queue", connection, lent)
            if plan.on_finish is not None:
                policy = await self._scalar("batch_finish_policy", {"name": plan.on_finish}, connection, lent)
                if policy is None:
                    raise await self._unknown_queue(plan.on_finish, "on_finish queue", connection, lent)
                if refusal := plans.on_finish_refusal(plan.on_finish, policy):
                    raise refusal
            statement = plans.insert_statement(plan, queue)
            if statement.copy_text is not None:
                with Translating(statement.query, None, connection, lent=lent):
                    async with connection.cursor() as cursor, cursor.copy(self.queries[statement.query]) as copy:
                        await copy.write(statement.copy_text)
                ids = statement.ids or []
            else:
                if statement.query == "insert":
                    for dead_letter in plan.dead_letters():
                        if not await self._scalar("queue_exists", {"name": dead_letter}, connection, lent):
                            raise await self._unknown_queue(dead_letter, "dead letter queue", connection, lent)
                rows = await self._rows(statement.query, statement.params, connection, lent)
                ids = [row["id"] for row in rows]
            if plan.batch_id is not None:
                await self._affected("make_batch", plan.batch_row(ids), connection, lent)
            return ids

    async def publish(
        self, event: str, data: Any = None, *, conn: AsyncConn = None, **send_options: Unpack[SendOptions]
    ) -> dict[str, str]:
        """As Queue.publish: one job per queue subscribed to `event`, in one statement."""
        params = plans.publish_params(event, self._json(data, "data"), send_options)
        async with self._connection(conn) as connection:
            rows = await self._rows("publish", params, connection, self._lent(conn))
        return {row["name"]: row["id"] for row in rows}

    async def flow(self, jobs: Sequence[Mapping[str, Any]], conn: AsyncConn = None) -> dict[str, str]:
        """As Queue.flow: the jobs across queues, all or none; {ref: job id}."""
        by_ref, order = checked_flow(jobs)
        ids: dict[str, str] = {}
        lent = self._lent(conn)
        async with self._connection(conn) as connection, connection.transaction():
            for ref in order:
                item = by_ref[ref]
                job_id = await self.send(
                    item["name"], item.get("data"), conn=connection, **dict(item.get("options") or {})
                )
                if job_id is None:
                    refused = f"flow: queue {item['name']!r} refused job {ref!r} (its policy or a throttle)"
                    raise PolicyConflictError(f"{refused}; nothing was created")
                ids[ref] = job_id
                if parents := item.get("depends_on") or []:
                    params = {"id": job_id, "parents": [ids[p] for p in parents]}
                    await self._affected("hold_for_parents", params, connection, lent)
        return ids

    # -- reading and acting on jobs ----------------------------------------------------------

    async def get_job(self, id: str, name: str | None = None, conn: AsyncConn = None) -> Job | None:
        """As Queue.get_job: from the hot table or the archive."""
        params = {"id": options.job_id(id), "name": None if name is None else options.queue_name(name)}
        async with self._connection(conn) as connection:
            rows = await self._rows("get_job", params, connection, self._lent(conn), job_row)
        return rows[0] if rows else None

    async def wait(self, name: str, id: str, timeout: float, *, conn: AsyncConn = None) -> Job | None:
        """As Queue.wait: the job once finished, or as it is after `timeout` seconds (polling,
        without holding a connection between looks)."""
        job_id, pauses = wait_steps(name, id, timeout)
        deadline = time.monotonic() + timeout
        for pause in pauses:
            job = await self.get_job(job_id, name, conn)
            left = deadline - time.monotonic()
            if job is None or job.state in FINISHED or left <= 0:
                return job
            await asyncio.sleep(min(pause, left))
        return None  # pragma: no cover - the pauses never end

    async def get_queue_stats(self, now: datetime | None = None, conn: AsyncConn = None) -> list[QueueStats]:
        """As Queue.get_queue_stats."""
        async with self._connection(conn) as connection:
            return await self._rows(
                "queue_stats", {"now": options.now_or_none(now)}, connection, self._lent(conn), class_row(QueueStats)
            )

    async def cancel(self, name: str, ids: JobRef | Sequence[JobRef], conn: AsyncConn = None) -> list[str]:
        return await self._ids_query("cancel", name, ids, conn, states=sorted(CANCELLABLE))

    async def resume(self, name: str, ids: JobRef | Sequence[JobRef], conn: AsyncConn = None) -> list[str]:
        return await self._ids_query("requeue", name, ids, conn, states=sorted(RESUMABLE))

    async def retry(self, name: str, ids: JobRef | Sequence[JobRef], conn: AsyncConn = None) -> list[str]:
        return await self._ids_query("requeue", name, ids, conn, states=sorted(RETRYABLE))

    async def _ids_query(
        self, query: str, name: str, ids: JobRef | Sequence[JobRef], conn: AsyncConn, **extra: Any
    ) -> list[str]:
        job_ids, _ = refs(as_list(ids))
        params = {"name": options.queue_name(name), "ids": job_ids, **extra}
        async with self._connection(conn) as connection:
            return [row["id"] for row in await self._rows(query, params, connection, self._lent(conn))]
