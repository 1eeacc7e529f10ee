-- Maintenance is coordinated by a lease row instead of a session-level
-- advisory lock: through a pooler in transaction mode (PgBouncer, RDS Proxy)
-- a session lock and its unlock reach different server connections, so the
-- lock leaks and later runs are skipped. A lease is plain data: it works
-- through any pooler, and a holder that dies leaves a lease that runs out.
-- During a deploy, code of the previous version still takes the advisory lock;
-- a run of each at once is harmless (maintenance batches skip locked rows).
CREATE TABLE {{schema}}.lease (
    name text PRIMARY KEY,
    holder uuid NOT NULL,
    expires_on timestamptz NOT NULL
);
