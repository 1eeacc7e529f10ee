-- name: get_job
-- One job by id from the hot table or the archive, optionally of one queue.
SELECT {{job_columns}}
FROM {{schema}}.any_job
WHERE id = %(id)s::uuid AND (%(name)s::text IS NULL OR name = %(name)s::text)
LIMIT 1;

-- name: find_jobs
-- Jobs of a queue filtered by state, singleton key and data containment, newest first.
SELECT {{job_columns}}
FROM {{schema}}.any_job
WHERE name = %(name)s
  AND (NOT archived OR %(include_archive)s)
  AND (%(states)s::text[] IS NULL OR state::text = ANY(%(states)s::text[]))
  AND (%(key)s::text IS NULL OR singleton_key = %(key)s::text)
  AND (%(data)s::jsonb IS NULL OR data @> %(data)s::jsonb)
ORDER BY created_on DESC, id
LIMIT %(limit)s;

-- name: failed_jobs
-- The most recently failed jobs, hot and archived, optionally of one queue.
SELECT {{job_columns}}
FROM {{schema}}.any_job
WHERE state = 'failed' AND (%(name)s::text IS NULL OR name = %(name)s::text)
ORDER BY completed_on DESC NULLS LAST, id
LIMIT %(limit)s;

-- name: queued_size
-- How many jobs of a queue are queued (created or retry), counting at most `limit`: the
-- predicate is the fetch index's own, so this is an index-only count.
SELECT count(*) AS size FROM (
    SELECT 1 FROM {{schema}}.job WHERE name = %(name)s AND state < 'active' LIMIT %(limit)s
) counted;

-- name: active_size
-- How many jobs of a queue are active, counting at most `limit`: an active job has a deadline
-- (expire_at), so the expiry index finds them among the few active jobs of all queues.
SELECT count(*) AS size FROM (
    SELECT 1 FROM {{schema}}.job WHERE expire_at IS NOT NULL AND name = %(name)s LIMIT %(limit)s
) counted;

-- name: queue_size
-- How many jobs of a queue are in the given states (in the hot table), counting at most `limit`.
-- The enum array (not text) lets the planner use the partial indexes; the limit keeps a
-- caller that only needs "at least n" (scale-out) from counting a whole backlog.
SELECT count(*) AS size FROM (
    SELECT 1 FROM {{schema}}.job
    WHERE name = %(name)s AND state = ANY(%(states)s::{{schema}}.job_state[])
    LIMIT %(limit)s
) counted;

-- name: queue_stats
-- Per queue: jobs by state in the hot table and how long the oldest ready job has waited.
SELECT q.name,
       count(j.id) FILTER (WHERE j.state = 'created') AS created,
       count(j.id) FILTER (WHERE j.state = 'retry') AS retry,
       count(j.id) FILTER (WHERE j.state = 'active') AS active,
       count(j.id) FILTER (WHERE j.state = 'completed') AS completed,
       count(j.id) FILTER (WHERE j.state = 'cancelled') AS cancelled,
       count(j.id) FILTER (WHERE j.state = 'failed') AS failed,
       coalesce(extract(epoch FROM coalesce(%(now)s::timestamptz, now())
           - min(j.start_after) FILTER (WHERE j.state < 'active' AND j.start_after <= coalesce(%(now)s::timestamptz, now()))), 0
       )::double precision AS oldest_queued_seconds,
       q.paused
FROM {{schema}}.queue q
LEFT JOIN {{schema}}.job j ON j.name = q.name
GROUP BY q.name
ORDER BY q.name;

-- name: throughput
-- Per queue and time bucket since `since`: jobs completed and failed, hot and archived.
-- A lateral scan per queue keeps both lookups on the (name, completed_on) indexes.
SELECT q.name,
       date_bin(make_interval(secs => %(bucket)s), f.completed_on, %(since)s::timestamptz) AS bucket,
       count(*) FILTER (WHERE f.state = 'completed') AS completed,
       count(*) FILTER (WHERE f.state = 'failed') AS failed
FROM {{schema}}.queue q
CROSS JOIN LATERAL (
    SELECT j.state, j.completed_on FROM {{schema}}.job j
    WHERE j.name = q.name AND j.state > 'active' AND j.completed_on >= %(since)s::timestamptz
    UNION ALL
    SELECT a.state, a.completed_on FROM {{schema}}.archive a
    WHERE a.name = q.name AND a.completed_on >= %(since)s::timestamptz
) f
WHERE f.state IN ('completed', 'failed')
GROUP BY q.name, bucket
ORDER BY q.name, bucket;

-- name: blocked_keys
-- The keys of a key_strict_fifo queue held by a failed job: none of their jobs runs until it is retried or deleted.
SELECT DISTINCT singleton_key AS key FROM {{schema}}.job
WHERE name = %(name)s AND state = 'failed' AND policy = 'key_strict_fifo'
ORDER BY 1;

-- name: active_groups
-- A queue's groups with active jobs, busiest first: what a group limit is holding back.
SELECT group_id, max(group_tier) AS tier, count(*) AS active FROM {{schema}}.job
WHERE name = %(name)s AND state = 'active' AND group_id IS NOT NULL
GROUP BY group_id
ORDER BY active DESC, group_id
LIMIT %(limit)s;

-- name: group_rate_windows
-- Under a group_rate_limit: the groups with starts in their window at `now`, the fullest first, up
-- to `limit`; for each, its starts and in how many seconds the oldest leaves the window.
SELECT s.group_id, sum(s.jobs)::integer AS started,
       extract(epoch FROM min(s.started_on) + make_interval(secs => %(period)s)
               - coalesce(%(now)s::timestamptz, statement_timestamp()))::double precision AS frees_in
FROM {{schema}}.job_start s
WHERE s.name = %(name)s AND s.group_id IS NOT NULL
  AND s.started_on > coalesce(%(now)s::timestamptz, statement_timestamp()) - make_interval(secs => %(period)s)
GROUP BY s.group_id
ORDER BY started DESC, s.group_id
LIMIT %(limit)s;

-- name: get_batch
-- A batch's counts: its jobs in all, and those finished by how.
SELECT id, name, created_on, total, completed, failed, cancelled, on_finish, finished_on
FROM {{schema}}.batch WHERE id = %(id)s;

-- name: history
-- A queue's history (schema.sql: queue_history) in [`since`, `until`), in buckets of `bucket`
-- seconds (a whole number of minutes): counts summed; a bucket's percentiles are the largest of
-- its minutes' (exact for a minute, an upper bound for a wider bucket).
SELECT date_bin(make_interval(secs => %(bucket)s), h.minute, %(since)s::timestamptz) AS at,
       sum(h.sent)::integer AS sent, sum(h.started)::integer AS started,
       sum(h.completed)::integer AS completed, sum(h.failed)::integer AS failed,
       sum(h.cancelled)::integer AS cancelled, sum(h.expired)::integer AS expired,
       max(h.wait_p50) AS wait_p50, max(h.wait_p95) AS wait_p95, max(h.wait_p99) AS wait_p99,
       max(h.run_p50) AS run_p50, max(h.run_p95) AS run_p95, max(h.run_p99) AS run_p99
FROM {{schema}}.queue_history h
WHERE (h.name = %(name)s OR %(name)s::text IS NULL)
  AND h.minute >= %(since)s::timestamptz AND h.minute < %(until)s::timestamptz
GROUP BY 1
ORDER BY 1;
