"""What every part of the `Queue` facade shares: the database, the payload limit, the policy cache."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from psycopg import Connection

from jobqueue import options
from jobqueue.database import Database
from jobqueue.errors import InvalidOptionError, UnknownQueueError
from jobqueue.models import Job, RateWindow
from jobqueue.settings import Fairness, Policy, RateLimit

Conn = Connection[Any] | None
JobRef = str | Job

# How long a queue's policy and rate limit are trusted before they are read again: a change
# reaches running workers within this time (a policy change at once, on a conflict).
POLICY_TTL_S: Final = 60.0
# How long a statement that changes the job or archive tables' layout (partitions) waits for
# its lock. Past deadlock_timeout (1 s), so that an autovacuum holding the table is cancelled;
# short, because every statement on the table queues up behind a waiting ALTER or DROP.
PARTITION_LOCK_TIMEOUT: Final = "2s"


@dataclass(frozen=True, slots=True)
class QueueRules:
    """What decides how a queue's jobs are fetched."""

    policy: Policy
    rate_limit: RateLimit | None = None
    group_rate_limit: RateLimit | None = None
    fairness: Fairness = "fifo"


class PolicyCache:
    """Queue name -> its QueueRules, read from the database at most once per POLICY_TTL_S."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._entries: dict[str, tuple[QueueRules, float]] = {}

    def rules(self, name: str, conn: Connection[Any]) -> QueueRules:
        cached = self._entries.get(name)
        now = time.monotonic()
        if cached is None or now - cached[1] > POLICY_TTL_S:
            # An unknown queue reads as standard without a limit: fetch then simply finds nothing.
            row = self._db.execute("queue_rules", {"name": name}, conn).fetchone()
            rules = (
                QueueRules(Policy.STANDARD)
                if row is None
                else QueueRules(Policy(row["policy"]), row["rate_limit"], row["group_rate_limit"], row["fairness"])
            )
            cached = (rules, now)
            self._entries[name] = cached
        return cached[0]

    def get(self, name: str, conn: Connection[Any]) -> Policy:
        return self.rules(name, conn).policy

    def rate_limit(self, name: str, conn: Connection[Any]) -> RateLimit | None:
        return self.rules(name, conn).rate_limit

    def forget(self, name: str) -> None:
        """The policy changed under us (a conflict said so): read it again next time."""
        self._entries.pop(name, None)


class Client:
    """A client of the job queue in one Postgres schema.

    `target` is a conninfo string / postgresql:// URL (the queue then owns one
    autocommit connection, re-opened when broken) or a psycopg connection you
    manage. Not safe for concurrent use from several threads at once: give each
    worker thread its own `Queue`.

    The defaults suit a pooler in transaction mode as well as a direct
    connection. On a direct connection (or PgBouncer 1.21+ with
    max_prepared_statements), `prepare_threshold=5` lets psycopg prepare the
    statements a client repeats; `statement_timeout_ms` sends the timeout as a
    startup option, which poolers refuse (set it on the role there).
    """

    def __init__(
        self,
        target: str | Connection[Any],
        *,
        schema: str = "jobqueue",
        max_payload_bytes: int = options.DEFAULT_MAX_PAYLOAD_BYTES,
        statement_timeout_ms: int | None = None,
        prepare_threshold: int | None = None,
        connect_timeout: int = 10,
    ) -> None:
        self.db = Database(
            target,
            schema,
            connect_timeout=connect_timeout,
            statement_timeout_ms=statement_timeout_ms,
            prepare_threshold=prepare_threshold,
        )
        if isinstance(max_payload_bytes, bool) or not isinstance(max_payload_bytes, int) or max_payload_bytes < 1:
            raise InvalidOptionError(f"max_payload_bytes must be a positive integer, got {max_payload_bytes!r}")
        self.max_payload_bytes = max_payload_bytes
        self.policies = PolicyCache(self.db)
        self._floor_advanced: dict[str, float] = {}  # Working's: when this client last moved a queue's fetch floor

    @property
    def schema(self) -> str:
        return self.db.schema

    def close(self) -> None:
        self.db.close()

    def _json(self, value: Any, what: str) -> str:
        return options.to_json(value, what, self.max_payload_bytes)

    def _require_queue(self, name: str, conn: Conn, dead_letter: str | None = None) -> None:
        """Explain why a write touched nothing: a missing queue is an error, a policy is not."""
        if not self.db.scalar("queue_exists", {"name": name}, conn):
            raise self._unknown_queue(name, conn=conn)
        if dead_letter is not None and not self.db.scalar("queue_exists", {"name": dead_letter}, conn):
            raise self._unknown_queue(dead_letter, "dead letter queue", conn)

    def require_queue(self, name: str, conn: Conn = None) -> str:
        """The name, if such a queue exists; else UnknownQueueError suggesting the closest name.

        Reads (stats, failed jobs, finding jobs) answer an unknown queue with nothing, as
        pg-boss does; operator tools call this first so that a typo is an error, not an
        empty list.
        """
        options.queue_name(name)
        if not self.db.scalar("queue_exists", {"name": name}, conn):
            raise self._unknown_queue(name, conn=conn)
        return name

    def _rate_window(self, name: str, now: datetime | None, connection: Connection[Any]) -> RateWindow | None:
        """The queue's rate window at `now` (sql/queries/working.sql: rate_window); None without a limit."""
        rate = self.policies.rate_limit(name, connection)
        if rate is None:
            return None
        params = {"name": name, "period": rate["period"], "now": options.now_or_none(now), "lock_timeout": None}
        row = self.db.execute("rate_window", params, connection).fetchone()
        started = int(row["started"]) if row else 0
        frees_in = max(0.0, float(row["frees_in"])) if row and started else 0.0
        return RateWindow(rate["limit"], rate["period"], started, frees_in)

    def _unknown_queue(self, name: str, role: str = "queue", conn: Conn = None) -> UnknownQueueError:
        known = [row["name"] for row in self.db.rows("queue_names", None, conn)]
        return UnknownQueueError(name, role, known)


def as_list(ids: JobRef | Sequence[JobRef]) -> list[JobRef]:
    if isinstance(ids, str | Job):
        return [ids]
    if not isinstance(ids, Sequence) and not isinstance(ids, set | frozenset):
        raise InvalidOptionError(f"ids must be a job id, a Job or a list of them, got {ids!r}")
    return list(ids)


def refs(items: list[JobRef]) -> tuple[list[str], list[datetime] | None]:
    """The ids, and the attempts (started_on) that fence them when all are fetched Jobs.

    Jobs fetched together share one started_on, so the fence is a short list.
    Ids of Job objects come from the database and are not parsed again.
    """
    ids = [ref.id if isinstance(ref, Job) else options.job_id(ref) for ref in items]
    started = {ref.started_on if isinstance(ref, Job) else None for ref in items}
    if not started or None in started:
        return ids, None
    return ids, sorted(s for s in started if s is not None)
