-- The statements that write an insert, one of which jobqueue/plans.py chooses for each batch;
-- Queue.insert (sending.py) and AsyncQueue.insert (asyncqueue.py) run it.

-- name: insert_data
-- Insert a batch of jobs given only as data (a JSON array), every option from the queue: the common case, kept lean.
INSERT INTO {{schema}}.job (
    name, data, batch_id, origin, {{queue_default_columns}}
)
SELECT q.name, d.value, %(batch_id)s::text, %(origin)s::jsonb, {{queue_default_values}}
FROM {{schema}}.queue q
CROSS JOIN LATERAL jsonb_array_elements(%(data)s::jsonb) AS d
WHERE q.name = %(name)s
ON CONFLICT DO NOTHING
RETURNING id::text;

-- name: copy_jobs
-- A batch of jobs by COPY: id and data, then jobqueue/rows.py's COPY_COLUMNS in their order, then
-- the origin (the sender's trace context, or none).
COPY {{schema}}.job (
    id, data, name, policy, priority, retry_limit, retry_delay, retry_backoff, retry_delay_max,
    expire_in, start_after, keep_until, delete_after, dead_letter, group_id, group_tier, singleton_key, origin
) FROM STDIN;

-- name: copy_batch_jobs
-- As copy_jobs, each row ending with the batch's id (jobqueue/rows.py: in_batch).
COPY {{schema}}.job (
    id, data, name, policy, priority, retry_limit, retry_delay, retry_backoff, retry_delay_max,
    expire_in, start_after, keep_until, delete_after, dead_letter, group_id, group_tier, singleton_key, origin,
    batch_id
) FROM STDIN;

-- name: insert
-- Insert a batch of jobs given as one JSON array, in one statement: all or nothing,
-- except the jobs a policy or throttle index rejects, which are skipped.
INSERT INTO {{schema}}.job (
    id, name, priority, data, policy, retry_limit, retry_delay, retry_backoff, retry_delay_max,
    expire_in, start_after, singleton_key, singleton_on, keep_until, delete_after, dead_letter,
    group_id, group_tier, batch_id, origin
)
SELECT
    coalesce(j.id, {{schema}}.uuid_v7()),
    q.name,
    coalesce(j.priority, 0),
    j.data,
    q.policy,
    coalesce(j.retry_limit, q.retry_limit),
    coalesce(j.retry_delay, q.retry_delay),
    coalesce(j.retry_backoff, q.retry_backoff),
    coalesce(j.retry_delay_max, q.retry_delay_max),
    coalesce(j.expire_in, q.expire_in),
    t.start_after,
    j.singleton_key,
    t.singleton_on,
    t.start_after + make_interval(secs => coalesce(j.retention, q.retention)),
    coalesce(j.delete_after, q.delete_after),
    coalesce(j.dead_letter, q.dead_letter),
    j.group_id,
    j.group_tier,
    %(batch_id)s::text,
    %(origin)s::jsonb
FROM {{schema}}.queue q
CROSS JOIN LATERAL json_to_recordset(%(jobs)s::json) AS j(
    id uuid, priority integer, data jsonb, retry_limit integer, retry_delay integer,
    retry_backoff boolean, retry_delay_max integer, expire_in integer, start_after timestamptz,
    start_in double precision, singleton_key text, singleton_seconds integer, retention integer,
    delete_after integer, dead_letter text, group_id text, group_tier text
)
CROSS JOIN LATERAL (
    SELECT
        coalesce(j.start_after, now() + make_interval(secs => coalesce(j.start_in, 0))) AS start_after,
        to_timestamp(floor(extract(epoch FROM now()) / j.singleton_seconds) * j.singleton_seconds) AS singleton_on
) t
WHERE q.name = %(name)s
  AND (t.singleton_on IS NULL OR NOT EXISTS (
      SELECT 1 FROM {{schema}}.archive a
      WHERE a.name = q.name AND a.singleton_on = t.singleton_on AND a.state <> 'cancelled' AND a.delete_at > now()
        AND coalesce(a.singleton_key, '') = coalesce(j.singleton_key, '')))
ON CONFLICT DO NOTHING
RETURNING id::text;
