-- name: send_plain
-- Insert one job with every option from its queue, into a queue whose policy
-- cannot refuse it (standard, singleton): the common case, kept lean. The id
-- comes from the sender (jobqueue/ids.py), so no RETURNING: one row affected
-- means sent, none that the queue does not exist. Without ON CONFLICT, a
-- policy changed meanwhile shows as a unique violation, and the caller falls
-- back to send_plain_checked.
INSERT INTO {{schema}}.job (
    id, name, data, {{queue_default_columns}}
)
SELECT %(id)s::uuid, q.name, %(data)s::jsonb, {{queue_default_values}}
FROM {{schema}}.queue q
WHERE q.name = %(name)s;

-- name: send_plain_checked
-- As send_plain, for a queue whose policy may refuse the job (short, stately): no row affected when it does.
INSERT INTO {{schema}}.job (
    id, name, data, {{queue_default_columns}}
)
SELECT %(id)s::uuid, q.name, %(data)s::jsonb, {{queue_default_values}}
FROM {{schema}}.queue q
WHERE q.name = %(name)s
ON CONFLICT DO NOTHING;

-- name: send
-- Insert one job, unset options taken from its queue; its id comes from the sender. No
-- row is affected when the queue (or the dead letter queue) does not exist or a policy
-- or throttle index rejects the job.
INSERT INTO {{schema}}.job ({{sent_columns}})
SELECT %(id)s::uuid, {{sent_values}}
FROM {{schema}}.queue q
{{send_slot}}
WHERE q.name = %(name)s
  {{send_checks}}
ON CONFLICT DO NOTHING;

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

-- name: copy_queue
-- What a batch going in by COPY takes from its queue (jobqueue/rows.py computes each row from it, as
-- the insert statement does in SQL), and the batch transaction's now(); no row for an unknown queue.
SELECT q.name, q.policy, q.retry_limit, q.retry_delay, q.retry_backoff, q.retry_delay_max, q.expire_in,
       q.retention, q.delete_after, q.dead_letter, now() AS now
FROM {{schema}}.queue q
WHERE q.name = %(name)s;

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

-- name: make_batch
-- A batch of `total` jobs just inserted, in their transaction: it is seen with them or not at all.
-- An id taken already is a unique violation (database.translate says so).
INSERT INTO {{schema}}.batch (id, name, total, on_finish)
VALUES (%(id)s, %(name)s, %(total)s, %(on_finish)s::jsonb);

-- name: batch_finish_policy
-- The policy of a batch's on_finish queue (no row: no such queue).
SELECT policy FROM {{schema}}.queue WHERE name = %(name)s;

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

-- name: update_queued
-- Change a queued job (not yet started): its data, priority or start time, each only when given
-- (a null parameter keeps the column; has_data says whether data was given, since null is data
-- too). The target is the job `id`, or the newest queued job with singleton key `key`. A later
-- start keeps the job's retention span after it, as pg-boss does.
WITH target AS (
    SELECT j.id FROM {{schema}}.job j
    WHERE j.name = %(name)s AND j.state < 'active'
      AND (%(id)s::uuid IS NULL OR j.id = %(id)s::uuid)
      AND (%(key)s::text IS NULL OR j.singleton_key = %(key)s::text)
    ORDER BY j.created_on DESC, j.id DESC
    LIMIT 1
    FOR UPDATE
), moved AS (
    SELECT j.id,
           coalesce(%(start_after)s::timestamptz,
                    coalesce(%(now)s::timestamptz, now()) + make_interval(secs => %(start_in)s::double precision),
                    j.start_after) AS start_after
    FROM {{schema}}.job j JOIN target t ON t.id = j.id
), updated AS (
    UPDATE {{schema}}.job j SET
        data = CASE WHEN %(has_data)s THEN %(data)s::jsonb ELSE j.data END,
        priority = coalesce(%(priority)s::integer, j.priority),
        keep_until = m.start_after + (j.keep_until - j.start_after),
        start_after = m.start_after
    FROM moved m
    WHERE j.id = m.id AND j.state < 'active'
    RETURNING j.id, j.priority, j.created_on, j.start_after
), {{fetch_floor}}, lowered AS (
    -- A job moved to a place before the queue's fetch floor (a new priority, or a start no
    -- longer after its created_on) takes the floor back there.
    INSERT INTO {{schema}}.fetch_floor (name, priority, created_on, id)
    SELECT %(name)s, u.priority, u.created_on, u.id
    FROM updated u, floor f
    WHERE u.start_after <= u.created_on AND u.priority = f.priority AND (u.created_on, u.id) < (f.created_on, f.id)
)
SELECT id::text FROM updated;
