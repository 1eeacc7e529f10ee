"""Creating, changing, deleting and reading queues."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final, Unpack

from jobqueue import options
from jobqueue.client import PARTITION_LOCK_TIMEOUT, Client, Conn
from jobqueue.errors import InvalidOptionError, QueueInUseError
from jobqueue.models import QueueInfo, queue_info_row
from jobqueue.settings import QUEUE_SETTINGS, QueueSettings, check_all, with_defaults


class Queues(Client):
    def create_queue(self, name: str, *, conn: Conn = None, **settings: Unpack[QueueSettings]) -> bool:
        """Create a queue; True if created, False if it already existed (left unchanged).

        Policies (each enforced by a unique index, so no race can break it):

        - ``standard``: no limit.
        - ``short``: at most one *queued* (created) job per singleton key; a
          send while one waits returns None.
        - ``singleton``: at most one *active* job per key; more may wait.
        - ``stately``: at most one job per key in each of created, retry and
          active; a send while one is created returns None.
        - ``exclusive``: at most one job per key queued or active; a send while
          one is queued or active returns None.
        - ``key_strict_fifo``: a key's jobs run one at a time in the order sent,
          and a failed job blocks its key until it is retried or deleted; every
          job needs a singleton key.

        Jobs without a singleton key share the key "" under these policies
        (but key_strict_fifo, which refuses them).
        Unset settings take the defaults declared in jobqueue.settings.
        """
        checked = with_defaults(self._checked_settings(name, settings))
        if checked["partition"]:
            if self.db.scalar("queue_exists", {"name": name}, conn):
                return False
            self._make_partition(name)
        row = self.db.execute("create_queue", {"name": name, "settings": options.to_json(checked)}, conn).fetchone()
        return row is not None

    def _make_partition(self, name: str) -> None:
        """The queue's own partition of the job table, made before its queue row exists.

        Two transactions of their own (schema.sql's make_job_partition says why), each waiting
        PARTITION_LOCK_TIMEOUT at most for its locks: LockTimeoutError then, and a later
        create_queue takes up where this one stopped. A partition left by a create_queue whose
        transaction rolled back is empty and serves the queue when it is created again.
        """
        for step in ("fence_job_partition", "make_job_partition"):
            with self.db.transaction() as tx:
                self.db.execute("set_lock_timeout", {"timeout": PARTITION_LOCK_TIMEOUT}, tx)
                self.db.execute(step, {"name": name}, tx)

    def update_queue(self, name: str, conn: Conn = None, **changes: Unpack[QueueSettings]) -> None:
        """Change some of a queue's settings; jobs already sent keep theirs.

        A setting given as None goes back to its default.
        """
        checked = self._checked_settings(name, changes)
        if "partition" in changes:
            # Chosen at creation: a caller that states every setting (a deployment's declarations)
            # may repeat it, not change it.
            info = self.get_queue(name, conn)
            if info is None:
                raise self._unknown_queue(name, conn=conn)
            if bool(checked["partition"]) != info.partition:
                raise InvalidOptionError(
                    f"queue {name!r}: partition is chosen when a queue is created; to change it, create a new queue"
                )
            changes = {key: value for key, value in changes.items() if key != "partition"}  # type: ignore[assignment]
        given = {key: checked[key] for key in changes}
        defaults = with_defaults({})
        values = {key: defaults[key] if value is None else value for key, value in given.items()}
        row = self.db.execute("update_queue", {"name": name, "changes": options.to_json(values)}, conn).fetchone()
        if row is None:
            raise self._unknown_queue(name, conn=conn)
        self.policies.forget(name)  # this client sees its own change at once; others within POLICY_TTL_S

    def _checked_settings(self, name: str, settings: Any) -> dict[str, Any]:
        options.queue_name(name)
        checked = check_all(QUEUE_SETTINGS, settings, "queue setting")
        if checked["dead_letter"] is not None and checked["dead_letter"] == name:
            raise InvalidOptionError(f"queue {name!r} cannot be its own dead letter queue")
        return checked

    def delete_queue(self, name: str, conn: Conn = None) -> int:
        """Delete a queue with all its jobs and schedules; returns the number of jobs deleted.

        A queue with a partition of its own has it dropped, its jobs with it, in one step: the
        drop waits PARTITION_LOCK_TIMEOUT at most for the job table's lock (LockTimeoutError,
        nothing deleted) when the transaction is delete_queue's own.
        """
        options.queue_name(name)
        users = [r["name"] for r in self.db.rows("dead_letter_users", {"name": name}, conn)]
        if users:
            raise QueueInUseError(f"queue {name!r} is the dead letter queue of {', '.join(users)}: change those first")
        with self.db.transaction(conn) as tx:
            info = self.get_queue(name, tx)
            if info is None:
                raise self._unknown_queue(name, conn=conn)
            dropped = 0
            if info.partition:
                if conn is None:
                    self.db.execute("set_lock_timeout", {"timeout": PARTITION_LOCK_TIMEOUT}, tx)
                dropped = int(self.db.scalar("drop_job_partition", {"name": name}, tx))
            row = self.db.execute("delete_queue", {"name": name}, tx).fetchone()
            if row is None:
                raise self._unknown_queue(name, conn=conn)
            return dropped + int(row["jobs"])

    def get_queue(self, name: str, conn: Conn = None) -> QueueInfo | None:
        rows = self.db.rows("get_queue", {"name": options.queue_name(name)}, conn, queue_info_row)
        return rows[0] if rows else None

    def get_queues(self, conn: Conn = None) -> list[QueueInfo]:
        return self.db.rows("get_queues", None, conn, queue_info_row)

    def delete_queued_jobs(self, name: str, conn: Conn = None) -> int:
        """Delete the jobs of a queue that have not started (created or retry); returns how many."""
        return self._delete_in_batches("delete_queued_jobs", name, conn)

    def delete_stored_jobs(self, name: str, conn: Conn = None) -> int:
        """Delete a queue's finished jobs (completed, cancelled, failed), archived ones too."""
        return self._delete_in_batches("delete_stored_jobs", name, conn)

    def delete_all_jobs(self, name: str, conn: Conn = None) -> int:
        """Delete every job of a queue, active and archived ones too (the queue stays)."""
        return self._delete_in_batches("delete_all_jobs", name, conn)

    def _delete_in_batches(self, query: str, name: str, conn: Conn) -> int:
        # Bounded statements: a queue of millions is not deleted in one long transaction.
        self.require_queue(name, conn)
        total = 0
        while True:
            deleted = int(self.db.scalar(query, {"name": name, "limit": DELETE_BATCH}, conn))
            total += deleted
            if deleted < DELETE_BATCH:
                return total

    def pause_queue(self, name: str, conn: Conn = None) -> None:
        """Pause a queue: its fetches claim nothing (workers return at once) until resume_queue.

        Sends and schedules go on adding jobs; active jobs finish as usual.
        """
        self._set_paused(name, True, conn)

    def resume_queue(self, name: str, conn: Conn = None) -> None:
        """Let a paused queue's jobs be fetched again."""
        self._set_paused(name, False, conn)

    def _set_paused(self, name: str, paused: bool, conn: Conn) -> None:
        row = self.db.execute("set_paused", {"name": options.queue_name(name), "paused": paused}, conn).fetchone()
        if row is None:
            raise self._unknown_queue(name, conn=conn)

    def dead_letter_sources(self, conn: Conn = None) -> dict[str, list[str]]:
        """Each dead letter queue (one that other queues' failures are copied to), with those queues.

        Its jobs are not work waiting for a worker but failures waiting for a person:
        backlog warnings and queue-age alarms leave them out and count them apart.
        """
        return dead_letter_sources(self.get_queues(conn))


DELETE_BATCH: Final = 10_000  # jobs one delete statement takes at most


def dead_letter_sources(infos: Iterable[QueueInfo]) -> dict[str, list[str]]:
    """Dead letter queue -> the queues whose failures it receives (sorted)."""
    sources: dict[str, list[str]] = {}
    for info in infos:
        if info.dead_letter:
            sources.setdefault(info.dead_letter, []).append(info.name)
    return {name: sorted(names) for name, names in sources.items()}
