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

-- name: copy_queue
-- What a batch going in by COPY takes from its queue (jobqueue/rows.py computes each row from it, as
-- the insert statement does in SQL), and the batch transaction's now(); no row for an unknown queue.
SELECT q.name, q.policy, q.retry_limit, q.retry_delay, q.retry_backoff, q.retry_delay_max, q.expire_in,
       q.retention, q.delete_after, q.dead_letter, now() AS now
FROM {{schema}}.queue q
WHERE q.name = %(name)s;

-- name: make_batch
-- A batch of `total` jobs just inserted, in their transaction: it is seen with them or not at all.
-- An id taken already is a unique violation (database.translate says so).
INSERT INTO {{schema}}.batch (id, name, total, on_finish)
VALUES (%(id)s, %(name)s, %(total)s, %(on_finish)s::jsonb);

-- name: batch_finish_policy
-- The policy of a batch's on_finish queue (no row: no such queue).
SELECT policy FROM {{schema}}.queue WHERE name = %(name)s;

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
