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
        """Who holds the horizon back, oldest first, and the dead rows of the job tables."""
        holders: list[HorizonHolder] = []
        for row in self.db.rows("horizon_sessions", {"limit": HOLDERS_SHOWN}, conn):
            details = {
                key: row[key]
                for key in ("username", "application_name", "client_addr", "state", "backend_type")
                if row[key] not in (None, "")
            }
            details["writing"] = row["writing"]
            kind = "standby (walsender)" if row["backend_type"] == "walsender" else "session"
            holders.append(HorizonHolder(kind, f"pid {row['pid']}", row["held_seconds"], row["xmin_age"], details))
        for row in self.db.rows("horizon_slots", None, conn):
            details = {"slot_type": row["slot_type"], "active": row["active"], "database": row["database"]}
            age = max(a for a in (row["xmin_age"], row["catalog_xmin_age"]) if a is not None)
            if row["xmin_age"] is None:
                details["holds"] = "catalog_xmin only: the catalogs, not the job tables"
            holders.append(HorizonHolder("replication slot", row["slot_name"], None, age, details))
        for row in self.db.rows("horizon_prepared", None, conn):
            details = {"username": row["username"], "database": row["database"]}
            held = row["held_seconds"]
            holders.append(HorizonHolder("prepared transaction", row["gid"], held, row["xmin_age"], details))
        holders.sort(key=lambda h: (-(h.xmin_age or 0), h.kind, h.name))
        counts = self.db.rows("dead_job_tuples", {"schema": self.schema}, conn)[0]
        return Horizon(holders=holders, dead_job_tuples=int(counts["dead"]), live_job_tuples=int(counts["live"]))
