-- A running job's record of itself: the steps its handler ran (Job.step) and how far it got
-- (Job.set_progress), kept in the archive too.
ALTER TABLE {{schema}}.job ADD COLUMN steps jsonb, ADD COLUMN progress jsonb;
ALTER TABLE {{schema}}.archive ADD COLUMN steps jsonb, ADD COLUMN progress jsonb;

CREATE OR REPLACE VIEW {{schema}}.any_job AS
SELECT id, name, priority, data, state, policy, retry_limit, retry_count, retry_delay, retry_backoff,
       retry_delay_max, expire_in, start_after, started_on, expire_at, singleton_key, singleton_on,
       keep_until, delete_after, dead_letter, created_on, completed_on, output, origin, false AS archived,
       group_id, group_tier, errors, steps, progress FROM {{schema}}.job
UNION ALL
SELECT id, name, priority, data, state, policy, retry_limit, retry_count, retry_delay, retry_backoff,
       retry_delay_max, expire_in, start_after, started_on, expire_at, singleton_key, singleton_on,
       keep_until, delete_after, dead_letter, created_on, completed_on, output, origin, true AS archived,
       group_id, group_tier, errors, steps, progress FROM {{schema}}.archive
-- A job past its delete_at is deleted, whenever purge drops its day's partition.
WHERE delete_at > now();
