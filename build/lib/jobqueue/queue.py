"""`Queue`: the public API, pg-boss's operations with Pythonic names.

The operations live with their concern, each a part of this facade:
queues (jobqueue.queues), sending (jobqueue.sending), working
(jobqueue.working), a running job's steps and progress (jobqueue.tracking),
inspecting (jobqueue.inspecting), maintenance
(jobqueue.maintenance), cron schedules (jobqueue.scheduling), dead letter
redrive (jobqueue.redriving), flows of dependent jobs (jobqueue.flows), publish/subscribe
(jobqueue.publishing) and what holds the MVCC horizon back (jobqueue.horizon).

Each operation is one SQL statement (one round trip) unless its docstring says
otherwise; batches are finished in one statement per batch. Every write takes
`conn=`: pass your own psycopg connection and the job commits or rolls back
with your transaction ("jobs are part of database transactions").
"""

from __future__ import annotations

from jobqueue import migrations
from jobqueue.client import Conn
from jobqueue.flows import Flows
from jobqueue.horizon import Watching
from jobqueue.inspecting import Inspecting
from jobqueue.maintenance import Maintaining
from jobqueue.publishing import Publishing
from jobqueue.queues import Queues
from jobqueue.redriving import Redriving
from jobqueue.scheduling import Scheduling
from jobqueue.sending import Sending
from jobqueue.tracking import Tracking
from jobqueue.working import Working


class Queue(
    Redriving,
    Flows,
    Maintaining,
    Scheduling,
    Publishing,
    Queues,
    Sending,
    Working,
    Tracking,
    Inspecting,
    Watching,
):
    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def migrate(self, conn: Conn = None) -> int:
        """Install or upgrade the schema; safe to call from many processes at once."""
        return migrations.migrate(self.db, conn)

    def schema_version(self, conn: Conn = None) -> int:
        return migrations.current_version(self.db, conn)
