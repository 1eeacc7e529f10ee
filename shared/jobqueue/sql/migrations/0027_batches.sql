-- Batches of jobs (Queue.insert's batch): the jobs say their batch, and the batch counts them as
-- they finish (schema.sql says how).
ALTER TABLE {{schema}}.job ADD COLUMN batch_id text;
ALTER TABLE {{schema}}.archive ADD COLUMN batch_id text;

-- A batch of jobs (Queue.insert(..., batch=...)): how many it has, how many finished in each way,
-- and the job it sends when the last of them finishes (on_finish: {name, data}; the counts go in
-- that job's origin). The statements that finish jobs count theirs here (the fragment
-- count_batches): a row update per statement and batch, whatever the batch's size, and the
-- statement whose counts reach the total, one only (the row's lock orders them), marks it
-- finished and sends the job. A finished batch counts no more; maintenance forgets it with its
-- jobs (its queue's delete_after after it finished).
CREATE TABLE {{schema}}.batch (
    id text PRIMARY KEY,
    name text NOT NULL,
    created_on timestamptz NOT NULL DEFAULT now(),
    total integer NOT NULL CHECK (total >= 0),
    completed integer NOT NULL DEFAULT 0,
    failed integer NOT NULL DEFAULT 0,
    cancelled integer NOT NULL DEFAULT 0,
    on_finish jsonb,
    finished_on timestamptz
);

CREATE OR REPLACE VIEW {{schema}}.any_job AS
SELECT id, name, priority, data, state, policy, retry_limit, retry_count, retry_delay, retry_backoff,
       retry_delay_max, expire_in, start_after, started_on, expire_at, singleton_key, singleton_on,
       keep_until, delete_after, dead_letter, created_on, completed_on, output, origin, false AS archived,
       group_id, group_tier, errors, steps, progress, batch_id FROM {{schema}}.job
UNION ALL
SELECT id, name, priority, data, state, policy, retry_limit, retry_count, retry_delay, retry_backoff,
       retry_delay_max, expire_in, start_after, started_on, expire_at, singleton_key, singleton_on,
       keep_until, delete_after, dead_letter, created_on, completed_on, output, origin, true AS archived,
       group_id, group_tier, errors, steps, progress, batch_id FROM {{schema}}.archive
-- A job past its delete_at is deleted, whenever purge drops its day's partition.
WHERE delete_at > now();
