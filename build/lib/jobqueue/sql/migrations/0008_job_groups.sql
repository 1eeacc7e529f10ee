-- Groups (pg-boss's `group: {id, tier}`): a fetch may cap how many jobs of one
-- group of a queue are active at once (`group_concurrency`), for all workers.
ALTER TABLE {{schema}}.job ADD COLUMN group_id text, ADD COLUMN group_tier text;
ALTER TABLE {{schema}}.archive ADD COLUMN group_id text, ADD COLUMN group_tier text;
-- Counting a group's active jobs when fetching under a group limit.
CREATE INDEX job_group_active ON {{schema}}.job (name, group_id) WHERE state = 'active' AND group_id IS NOT NULL;

CREATE OR REPLACE VIEW {{schema}}.any_job AS
SELECT id, name, priority, data, state, policy, retry_limit, retry_count, retry_delay, retry_backoff,
       retry_delay_max, expire_in, start_after, started_on, expire_at, singleton_key, singleton_on,
       keep_until, delete_after, dead_letter, created_on, completed_on, output, origin, false AS archived,
       group_id, group_tier FROM {{schema}}.job
UNION ALL
SELECT id, name, priority, data, state, policy, retry_limit, retry_count, retry_delay, retry_backoff,
       retry_delay_max, expire_in, start_after, started_on, expire_at, singleton_key, singleton_on,
       keep_until, delete_after, dead_letter, created_on, completed_on, output, origin, true AS archived,
       group_id, group_tier FROM {{schema}}.archive;
