"""Redrive: move the failures waiting in a dead letter queue back to their source queues."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from jobqueue import options
from jobqueue.client import Conn
from jobqueue.errors import JobQueueError
from jobqueue.inspecting import Inspecting
from jobqueue.models import Job
from jobqueue.queues import Queues
from jobqueue.sending import Sending
from jobqueue.settings import Policy, SendOptions
from jobqueue.working import Working

REDRIVE_LIMIT: Final = 1000  # dead letters one call moves at most


@dataclass(slots=True)
class RedriveResult:
    """Dead letter id -> the job that runs again (a fresh one, or its retried original); and what stayed."""

    moved: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # dead letter id -> why it stayed


class Redriving(Queues, Sending, Working, Inspecting):
    """Part of Queue: a redrive sends, retries and completes as those parts do."""

    def redrive(self, dead_letter_queue: str, ids: Sequence[str] | None = None, conn: Conn = None) -> RedriveResult:
        """Move dead letters (all waiting ones, or `ids`) back to the queues they came from.

        Each becomes a fresh job of its source queue with the same data (and the
        original's key, priority and group while the original is still kept); on a
        key_strict_fifo queue the failed original itself is retried instead, since
        it blocks its key and a fresh job would wait behind it. The dead letter is
        then completed with `{"redriven_as": id}`, all in one transaction.
        """
        name = self.require_queue(dead_letter_queue, conn)
        wanted = None if ids is None else [options.job_id(i) for i in ids]
        result = RedriveResult()
        with self.db.transaction(conn) as tx:
            letters = self.db.rows("lock_dead_letters", {"name": name, "ids": wanted, "limit": REDRIVE_LIMIT}, tx)
            done: list[Job] = []
            stayed: list[Job] = []
            outputs: list[dict[str, str]] = []
            for letter in letters:
                held = Job(id=letter["id"], name=name, data=None, started_on=letter["started_on"])
                source = (letter["origin"] or {}).get("dead_letter_of") or {}
                try:
                    with tx.transaction():  # a savepoint: one letter's refusal undoes only its own work
                        again = self._run_again(source, letter["data"], tx)
                except JobQueueError as exc:
                    again, why = None, str(exc)
                else:
                    why = f"queue {source.get('queue')!r} refused it (its policy)"
                if again is None:
                    result.skipped[letter["id"]] = why
                    stayed.append(held)
                    continue
                result.moved[letter["id"]] = again
                done.append(held)
                outputs.append({"redriven_as": again})
            if done:
                self.complete(name, done, outputs=outputs, conn=tx)
            if stayed:
                self.release(name, stayed, conn=tx)  # waiting again, as they were
        return result

    def _run_again(self, source: dict[str, Any], data: Any, conn: Conn) -> str | None:
        source_name = source.get("queue")
        if not isinstance(source_name, str):
            raise JobQueueError("the dead letter does not say which queue it came from")
        info = self.get_queue(source_name, conn)
        if info is None:
            raise JobQueueError(f"its source queue {source_name!r} no longer exists")
        original = self.get_job(source["id"], conn=conn) if source.get("id") else None
        if original is not None and info.policy is Policy.KEY_STRICT_FIFO and original.state == "failed":
            retried = self.retry(source_name, [original.id], conn)
            return str(retried[0]) if retried else None
        again: SendOptions = {}
        if original is not None:
            again = {"priority": original.priority, "singleton_key": original.singleton_key}
            if original.group_id is not None:
                again["group"] = {"id": original.group_id, "tier": original.group_tier}
        return self.send(source_name, data, conn=conn, **again)
