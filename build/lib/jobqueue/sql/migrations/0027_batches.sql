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

-- count_batches: a statement that finished jobs of batches counts them off (the fragment
-- count_batches calls it, only when there are some). Each batch's row is updated once; two
-- statements finishing a batch's last jobs at once update it one after the other (its row lock),
-- the second re-checking the row's latest version: it finds the batch finished and counts
-- nothing. The statement whose counts reach the total marks the batch finished and sends its
-- on_finish job, the counts in the job's origin. Returns how many such jobs it sent.
CREATE FUNCTION {{schema}}.count_batches(batch_ids text[], states text[]) RETURNS integer
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET jit = off
AS $$
DECLARE
    sent integer;
BEGIN
    WITH counted AS (
        UPDATE {{schema}}.batch b SET
            completed = b.completed + x.completed,
            failed = b.failed + x.failed,
            cancelled = b.cancelled + x.cancelled,
            finished_on = CASE WHEN b.completed + b.failed + b.cancelled + x.n >= b.total THEN now() END
        FROM (
            SELECT f.batch_id, count(*) AS n,
                   count(*) FILTER (WHERE f.state = 'completed') AS completed,
                   count(*) FILTER (WHERE f.state = 'failed') AS failed,
                   count(*) FILTER (WHERE f.state = 'cancelled') AS cancelled
            FROM unnest(batch_ids, states) AS f(batch_id, state)
            WHERE f.batch_id IS NOT NULL
            GROUP BY f.batch_id
        ) x
        WHERE b.id = x.batch_id AND b.finished_on IS NULL
        RETURNING b.id, b.total, b.completed, b.failed, b.cancelled, b.on_finish, b.finished_on
    ), finish AS (
        INSERT INTO {{schema}}.job (name, data, origin, policy, retry_limit, retry_delay, retry_backoff, retry_delay_max, expire_in, keep_until, delete_after, dead_letter)
        SELECT q.name, c.on_finish -> 'data',
               jsonb_build_object('batch', jsonb_build_object(
                   'id', c.id, 'total', c.total, 'completed', c.completed, 'failed', c.failed,
                   'cancelled', c.cancelled)),
               q.policy, q.retry_limit, q.retry_delay, q.retry_backoff, q.retry_delay_max, q.expire_in,
       now() + make_interval(secs => q.retention), q.delete_after, q.dead_letter
        FROM counted c JOIN {{schema}}.queue q ON q.name = c.on_finish ->> 'name'
        WHERE c.finished_on IS NOT NULL
        -- Its queue's policy was checked when the batch was made; one changed since must not fail
        -- the statement that finished the batch's last jobs.
        ON CONFLICT DO NOTHING
        RETURNING 1
    )
    SELECT count(*) INTO sent FROM finish;
    RETURN sent;
END
$$;

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
