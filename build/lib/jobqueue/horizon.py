"""What holds the MVCC horizon back: sessions, replication slots, prepared transactions.

A job queue shares its database with the application, and something there pins the horizon
all the time: a report running for twenty minutes, a psql session left idle in a transaction,
a standby with hot_standby_feedback, a prepared transaction nobody finished. While it is
pinned, vacuum removes none of the job versions that claims and completions leave behind. The
fetch does not slow down for it (the fetch floor, README), but the tables and their indexes
grow, and the operator should know who is holding it: `horizon()` says, with plain reads of
the statistics views, so it works through PgBouncer and RDS Proxy (no session state).
"""

from __future__ import annotations

from jobqueue.client import Client, Conn
from jobqueue.models import Horizon, HorizonHolder

HOLDERS_SHOWN = 20


class Watching(Client):
    def horizon(self, conn: Conn = None) -> Horizon:
        """Who holds the horizon back, oldest first, and the dead rows of the job tables (one statement)."""
        rows = self.db.rows("horizon", {"limit": HOLDERS_SHOWN, "schema": self.schema}, conn)
        holders = [
            HorizonHolder(row["kind"], row["name"], row["held_seconds"], row["xmin_age"], row["details"])
            for row in rows
            if row["kind"] is not None
        ]
        return Horizon(holders=holders, dead_job_tuples=int(rows[0]["dead"]), live_job_tuples=int(rows[0]["live"]))
