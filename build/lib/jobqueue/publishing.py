"""Publish/subscribe, as pg-boss has it: queues subscribe to events; a published event is a job in
each subscribed queue.

`publish` sends them all in one statement (sql/queries/publishing.sql), so that inside the
caller's transaction an event reaches every subscriber or none; each job takes its queue's
settings for the options not given, as a send does (the statement shares `send`'s parts).
"""

from __future__ import annotations

from typing import Any, Unpack

from psycopg.rows import class_row

from jobqueue import options, plans
from jobqueue.client import Client, Conn
from jobqueue.models import Subscription
from jobqueue.settings import SendOptions


class Publishing(Client):
    def subscribe(self, event: str, name: str, conn: Conn = None) -> None:
        """Subscribe queue `name` to `event`: every later publish of it sends the queue a job.
        Subscribing again is harmless; an unknown queue is UnknownQueueError."""
        params = {"event": options.event_name(event), "name": options.queue_name(name)}
        if not self.db.rows("subscribe", params, conn):
            raise self._unknown_queue(name, conn=conn)

    def unsubscribe(self, event: str, name: str, conn: Conn = None) -> bool:
        """End queue `name`'s subscription to `event`; False when it had none."""
        params = {"event": options.event_name(event), "name": options.queue_name(name)}
        return bool(self.db.rows("unsubscribe", params, conn))

    def get_subscriptions(self, event: str | None = None, conn: Conn = None) -> list[Subscription]:
        """The subscriptions (of one event, or all), by event then queue."""
        params = {"event": None if event is None else options.event_name(event)}
        return self.db.rows("subscriptions", params, conn, class_row(Subscription))

    def publish(
        self, event: str, data: Any = None, *, conn: Conn = None, **send_options: Unpack[SendOptions]
    ) -> dict[str, str]:
        """Send `data` to every queue subscribed to `event`, one job each, in one statement (inside
        the caller's transaction with `conn`): {queue: job id}. The options are send's, but `id`
        (each job gets its own); a queue whose policy or throttle refuses the job is left out, and
        an event without subscribers sends nothing."""
        params = plans.publish_params(event, self._json(data, "data"), send_options)
        return {row["name"]: row["id"] for row in self.db.rows("publish", params, conn)}
