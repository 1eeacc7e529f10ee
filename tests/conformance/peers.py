"""The two queues under comparison, behind one interface: ours, and pg-boss driven through Node.

Both run on the same Postgres database, each in its own schema. Operations go
through each library's own API; observations are read with SQL from each
schema, so that what is compared is what a user would find in the database.
Time passes by backdating every timestamp of a schema's jobs (`advance`),
never by sleeping.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psycopg
from psycopg.rows import dict_row

from jobqueue import Queue

DRIVER = Path(__file__).parent / "pgboss_driver.mjs"
PGBOSS_SCHEMA = "pgboss"

# Our option names -> pg-boss's.
PGBOSS_NAMES = {
    "policy": "policy",
    "retry_limit": "retryLimit",
    "retry_delay": "retryDelay",
    "retry_backoff": "retryBackoff",
    "retry_delay_max": "retryDelayMax",
    "expire_in": "expireInSeconds",
    "retention": "retentionSeconds",
    "delete_after": "deleteAfterSeconds",
    "dead_letter": "deadLetter",
    "priority": "priority",
    "singleton_key": "singletonKey",
    "start_after": "startAfter",
    "singleton_seconds": "singletonSeconds",
    "singleton_next_slot": "singletonNextSlot",
    "group": "group",
}


@dataclass(frozen=True)
class JobView:
    """A job as a user finds it: what both libraries store alike."""

    id: str
    data: Any
    state: str
    retry_count: int
    waits_s: float  # start_after - now, in seconds (negative: ready)
    output: Any
    singleton_key: str | None
    priority: int


class Peer(Protocol):
    label: str

    def create_queue(self, name: str, **settings: Any) -> None: ...
    def send(self, name: str, data: Any, **options: Any) -> str | None: ...
    def send_throttled(self, name: str, data: Any, seconds: int, key: str | None) -> str | None: ...
    def send_debounced(self, name: str, data: Any, seconds: int, key: str | None) -> str | None: ...
    def insert(self, name: str, jobs: list[dict[str, Any]]) -> None: ...
    def fetch(self, name: str, batch_size: int = 1, group_concurrency: Any = None) -> list[str]: ...
    def complete(self, name: str, ids: list[str]) -> None: ...
    def fail(self, name: str, ids: list[str], error: dict[str, Any]) -> None: ...
    def cancel(self, name: str, ids: list[str]) -> None: ...
    def resume(self, name: str, ids: list[str]) -> None: ...
    def retry(self, name: str, ids: list[str]) -> None: ...
    def maintain(self) -> None: ...
    def subscribe(self, event: str, name: str) -> None: ...
    def unsubscribe(self, event: str, name: str) -> None: ...
    def publish(self, event: str, data: Any, **options: Any) -> None: ...
    def advance(self, seconds: float) -> None: ...
    def jobs(self, name: str) -> list[JobView]: ...


VIEW = """
SELECT id::text, data, state::text, retry_count, extract(epoch FROM start_after - now())::float AS waits_s,
       output, singleton_key, priority
FROM {table} WHERE name = %s ORDER BY created_on, id
"""


def _views(conn: psycopg.Connection[Any], table: str, name: str) -> list[JobView]:
    with conn.cursor(row_factory=dict_row) as cur:
        return [JobView(**row) for row in cur.execute(VIEW.format(table=table), (name,))]


class Ours:
    label = "ours"

    def __init__(self, dsn: str, conn: psycopg.Connection[Any]) -> None:
        self.queue = Queue(dsn)
        self.conn = conn

    def create_queue(self, name: str, **settings: Any) -> None:
        self.queue.create_queue(name, **settings)

    def send(self, name: str, data: Any, **options: Any) -> str | None:
        return self.queue.send(name, data, **options)

    def send_throttled(self, name: str, data: Any, seconds: int, key: str | None) -> str | None:
        return self.queue.send_throttled(name, data, seconds, key)

    def send_debounced(self, name: str, data: Any, seconds: int, key: str | None) -> str | None:
        return self.queue.send_debounced(name, data, seconds, key)

    def insert(self, name: str, jobs: list[dict[str, Any]]) -> None:
        self.queue.insert(name, jobs)  # type: ignore[arg-type]

    def fetch(self, name: str, batch_size: int = 1, group_concurrency: Any = None) -> list[str]:
        return [job.id for job in self.queue.fetch(name, batch_size, group_concurrency=group_concurrency)]

    def complete(self, name: str, ids: list[str]) -> None:
        self.queue.complete(name, ids)

    def fail(self, name: str, ids: list[str], error: dict[str, Any]) -> None:
        self.queue.fail(name, ids, error)

    def cancel(self, name: str, ids: list[str]) -> None:
        self.queue.cancel(name, ids)

    def resume(self, name: str, ids: list[str]) -> None:
        self.queue.resume(name, ids)

    def retry(self, name: str, ids: list[str]) -> None:
        self.queue.retry(name, ids)

    def maintain(self) -> None:
        result = self.queue.maintain()
        assert not result.skipped

    def subscribe(self, event: str, name: str) -> None:
        self.queue.subscribe(event, name)

    def unsubscribe(self, event: str, name: str) -> None:
        self.queue.unsubscribe(event, name)

    def publish(self, event: str, data: Any, **options: Any) -> None:
        self.queue.publish(event, data, **options)

    def advance(self, seconds: float) -> None:
        shift = {"s": seconds}
        self.conn.execute(
            "UPDATE jobqueue.job SET created_on = created_on - make_interval(secs => %(s)s),"
            " start_after = start_after - make_interval(secs => %(s)s),"
            " started_on = started_on - make_interval(secs => %(s)s),"
            " completed_on = completed_on - make_interval(secs => %(s)s),"
            " expire_at = expire_at - make_interval(secs => %(s)s),"
            " keep_until = keep_until - make_interval(secs => %(s)s)",
            shift,
        )
        # The fetch floors are places in time too: they move back with the jobs.
        self.conn.execute(
            "UPDATE jobqueue.fetch_floor SET created_on = created_on - make_interval(secs => %(s)s),"
            " at = at - make_interval(secs => %(s)s)",
            shift,
        )
        self.conn.execute(
            "UPDATE jobqueue.archive SET created_on = created_on - make_interval(secs => %(s)s),"
            " start_after = start_after - make_interval(secs => %(s)s),"
            " started_on = started_on - make_interval(secs => %(s)s),"
            " completed_on = completed_on - make_interval(secs => %(s)s),"
            " keep_until = keep_until - make_interval(secs => %(s)s),"
            " delete_at = delete_at - make_interval(secs => %(s)s)",
            shift,
        )
        # So are leases: the retention sweep's runs out as the time passes.
        self.conn.execute("UPDATE jobqueue.lease SET expires_on = expires_on - make_interval(secs => %(s)s)", shift)

    def jobs(self, name: str) -> list[JobView]:
        return _views(self.conn, "jobqueue.any_job", name)

    def close(self) -> None:
        self.queue.close()


class DriverError(RuntimeError):
    """pg-boss refused a call (the message is pg-boss's)."""


class PgBoss:
    label = "pg-boss"

    def __init__(self, dsn: str, conn: psycopg.Connection[Any]) -> None:
        url = psycopg.conninfo.make_conninfo(dsn)
        self.process = subprocess.Popen(
            ["node", str(DRIVER), _as_url(url), PGBOSS_SCHEMA],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None and self.process.stdin is not None
        ready = self.process.stdout.readline()
        if not ready.startswith('{"ready":true}'):
            self.process.kill()
            raise RuntimeError(f"the pg-boss driver did not start: {ready!r}")
        self.conn = conn

    def call(self, op: str, *args: Any) -> Any:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"op": op, "args": list(args)}) + "\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        if not answer["ok"]:
            raise DriverError(answer["error"])
        return answer["result"]

    @staticmethod
    def _options(options: dict[str, Any]) -> dict[str, Any]:
        return {PGBOSS_NAMES[key]: value for key, value in options.items() if value is not None}

    def create_queue(self, name: str, **settings: Any) -> None:
        self.call("createQueue", name, self._options(settings))

    def send(self, name: str, data: Any, **options: Any) -> str | None:
        result: str | None = self.call("send", name, data, self._options(options))
        return result

    def send_throttled(self, name: str, data: Any, seconds: int, key: str | None) -> str | None:
        result: str | None = self.call("sendThrottled", name, data, {}, seconds, key)
        return result

    def send_debounced(self, name: str, data: Any, seconds: int, key: str | None) -> str | None:
        result: str | None = self.call("sendDebounced", name, data, {}, seconds, key)
        return result

    def insert(self, name: str, jobs: list[dict[str, Any]]) -> None:
        rows = [
            {"data": job.get("data"), **self._options({k: v for k, v in job.items() if k != "data"})} for job in jobs
        ]
        self.call("insert", name, rows)

    def fetch(self, name: str, batch_size: int = 1, group_concurrency: Any = None) -> list[str]:
        options: dict[str, Any] = {"batchSize": batch_size}
        if group_concurrency is not None:
            options["groupConcurrency"] = group_concurrency
        result: list[str] = self.call("fetch", name, options)
        return result

    def complete(self, name: str, ids: list[str]) -> None:
        self.call("complete", name, ids)

    def fail(self, name: str, ids: list[str], error: dict[str, Any]) -> None:
        self.call("fail", name, ids, error)

    def cancel(self, name: str, ids: list[str]) -> None:
        self.call("cancel", name, ids)

    def resume(self, name: str, ids: list[str]) -> None:
        self.call("resume", name, ids)

    def retry(self, name: str, ids: list[str]) -> None:
        self.call("retry", name, ids)

    def maintain(self) -> None:
        self.call("supervise", None)

    def subscribe(self, event: str, name: str) -> None:
        self.call("subscribe", event, name)

    def unsubscribe(self, event: str, name: str) -> None:
        self.call("unsubscribe", event, name)

    def publish(self, event: str, data: Any, **options: Any) -> None:
        self.call("publish", event, data, self._options(options))

    def advance(self, seconds: float) -> None:
        self.conn.execute(
            f"UPDATE {PGBOSS_SCHEMA}.job SET created_on = created_on - make_interval(secs => %(s)s),"
            " start_after = start_after - make_interval(secs => %(s)s),"
            " started_on = started_on - make_interval(secs => %(s)s),"
            " completed_on = completed_on - make_interval(secs => %(s)s),"
            " keep_until = keep_until - make_interval(secs => %(s)s)",
            {"s": seconds},
        )

    def jobs(self, name: str) -> list[JobView]:
        return _views(self.conn, f"{PGBOSS_SCHEMA}.job", name)

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _as_url(conninfo: str) -> str:
    """node-postgres takes a URL: build one from a libpq conninfo string."""
    parts = psycopg.conninfo.conninfo_to_dict(conninfo)
    user, host, port, dbname = parts.get("user", "postgres"), parts["host"], parts.get("port", 5432), parts["dbname"]
    return f"postgresql://{user}@{host}:{port}/{dbname}"
