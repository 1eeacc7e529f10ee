-- Every failed attempt's error, not only the last: {attempt, at, message, type, traceback}, the
-- newest 20 kept (a job's output still holds its last error, as in pg-boss).
ALTER TABLE {{schema}}.job ADD COLUMN errors jsonb;
ALTER TABLE {{schema}}.archive ADD COLUMN errors jsonb;

CREATE OR REPLACE VIEW {{schema}}.any_job AS
SELECT id, name, priority, data, state, policy, retry_limit, retry_count, retry_delay, retry_backoff,
       retry_delay_max, expire_in, start_after, started_on, expire_at, singleton_key, singleton_on,
       keep_until, delete_after, dead_letter, created_on, completed_on, output, origin, false AS archived,
       group_id, group_tier, errors FROM {{schema}}.job
UNION ALL
SELECT id, name, priority, data, state, policy, retry_limit, retry_count, retry_delay, retry_backoff,
       retry_delay_max, expire_in, start_after, started_on, expire_at, singleton_key, singleton_on,
       keep_until, delete_after, dead_letter, created_on, completed_on, output, origin, true AS archived,
       group_id, group_tier, errors FROM {{schema}}.archive;
