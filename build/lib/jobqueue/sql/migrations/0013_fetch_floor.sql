-- The fetch floor: where a fetch starts its walk of a queue's queued jobs, so that the index
-- entries of the jobs claimed before it (dead, but kept while another session holds an old
-- snapshot) are not walked again by every fetch. README "The fetch under a held snapshot".
--
-- A job's created_on is its sending statement's time, not its transaction's: the floor may pass
-- any time before the oldest open transaction that has written, and a job sent late in a long
-- transaction is then still after it.
ALTER TABLE {{schema}}.job ALTER COLUMN created_on SET DEFAULT statement_timestamp();

-- Jobs queued at a position behind the floor (delayed, retried, released, snoozed, requeued,
-- made ready by a flow: start_after after created_on) are found here instead.
CREATE INDEX job_deferred ON {{schema}}.job (name, priority DESC, created_on, id) INCLUDE (start_after)
    WHERE state < 'active' AND start_after > created_on;

-- Written by fetches (a row at most every quarter second per queue), read newest first; rows are
-- only inserted, so a held snapshot leaves no version chain to walk. Maintenance keeps the newest.
CREATE TABLE {{schema}}.fetch_floor (
    name text NOT NULL,
    at timestamptz NOT NULL DEFAULT statement_timestamp(),
    priority integer NOT NULL,
    created_on timestamptz NOT NULL,
    id uuid NOT NULL
);
CREATE INDEX fetch_floor_newest ON {{schema}}.fetch_floor (name, at DESC);
