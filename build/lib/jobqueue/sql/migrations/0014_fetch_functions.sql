-- The fetch's first statements as PL/pgSQL functions: fetch_jobs (standard, short and exclusive
-- queues), lock_keys (singleton, stately), lock_fifo_window (key_strict_fifo) and lock_groups (a
-- group limit); working.sql calls them. A function, so that each plan is made once per database
-- session and kept: PL/pgSQL caches the plans of its statements, and plan_cache_mode makes it the
-- generic one. Planning these statements of four walks took longer than running them for a batch
-- of 100, and a statement sent as text is planned at every call. No client-side prepared
-- statement is involved, so it works through PgBouncer and RDS Proxy. A generic plan cannot go
-- wrong on a parameter's value here: every walk is an index range whose bounds are computed when
-- it runs, and the claim is a TID scan.
--
-- Each body is its statement with working.sql's fragments written out and its parameters named:
-- queue_name, batch_size, at_time (now, for tests and replays), deadline, window_size, tiers,
-- group_limit. tests/jobqueue/test_plans.py holds every fragment's text to be found in the
-- functions that use it: changing a fragment needs a migration that redefines them.

-- fetch_jobs: claim up to `batch_size` queued jobs of a standard, short or exclusive queue, in
-- priority order, in one statement.
--
-- The jobs come from four walks of the queue, merged in claim order: the fetch floor's priority
-- band from the floor on (the jobs claimed before it are not walked again, which matters while
-- another session holds an old snapshot and their index entries cannot be removed), the bands
-- above and below it, and the jobs queued behind their position (delayed, retried, released:
-- the job_deferred index). Each walk takes at most `batch_size` jobs with FOR UPDATE SKIP LOCKED:
-- rows another fetcher holds are skipped, never waited for; what a walk locked beyond the
-- `batch_size` best is let go at the end of the statement. The CTE is MATERIALIZED so that the
-- planner cannot fold it into the UPDATE: LIMIT with FOR UPDATE SKIP LOCKED must run exactly
-- once, or concurrent fetchers could claim the same row. The UPDATE finds the claimed rows by
-- their ctid, which their row locks keep from changing until the statement ends: a TID scan, the
-- one plan whatever the statistics say (a table analyzed while nearly empty made the planner
-- prefer a sequential scan to the primary key), and none to choose anew at each call.
CREATE FUNCTION {{schema}}.fetch_jobs(queue_name text, batch_size integer, deadline timestamptz, at_time timestamptz)
RETURNS TABLE (
    id text, name text, data jsonb, priority integer, retry_count integer, retry_limit integer,
    started_on timestamptz, expire_at timestamptz, created_on timestamptz, singleton_key text, origin jsonb
)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
RETURN QUERY
WITH floor AS MATERIALIZED (
    SELECT coalesce(f.priority, 0) AS priority,
           coalesce(f.created_on, '-infinity') AS created_on,
           coalesce(f.id, '00000000-0000-0000-0000-000000000000') AS id,
           EXISTS (SELECT 1 FROM {{schema}}.queue p WHERE p.name = queue_name AND p.paused) AS paused
    FROM (SELECT 1) one
    LEFT JOIN LATERAL (
        SELECT ff.priority, ff.created_on, ff.id FROM {{schema}}.fetch_floor ff
        WHERE ff.name = queue_name
        ORDER BY ff.at DESC
        LIMIT 1
    ) f ON true
), next AS MATERIALIZED (
    SELECT r.ctid, r.id, r.priority, r.created_on, r.immediate FROM (
        SELECT * FROM (
            SELECT j.ctid, j.id, j.priority, j.created_on, true AS immediate FROM {{schema}}.job j
            WHERE j.name = queue_name AND j.state < 'active' AND j.priority = (SELECT priority FROM floor)
              AND (j.created_on, j.id) >= ((SELECT created_on FROM floor), (SELECT id FROM floor))
              AND j.start_after <= j.created_on
              AND j.start_after <= coalesce(at_time, now())
              AND NOT (SELECT paused FROM floor)
            ORDER BY j.priority DESC, j.created_on, j.id LIMIT batch_size FOR UPDATE OF j SKIP LOCKED) band
        UNION ALL
        SELECT * FROM (
            SELECT j.ctid, j.id, j.priority, j.created_on, true FROM {{schema}}.job j
            WHERE j.name = queue_name AND j.state < 'active' AND j.priority > (SELECT priority FROM floor) AND j.start_after <= j.created_on
              AND j.start_after <= coalesce(at_time, now())
              AND NOT (SELECT paused FROM floor)
            ORDER BY j.priority DESC, j.created_on, j.id LIMIT batch_size FOR UPDATE OF j SKIP LOCKED) above
        UNION ALL
        SELECT * FROM (
            SELECT j.ctid, j.id, j.priority, j.created_on, true FROM {{schema}}.job j
            WHERE j.name = queue_name AND j.state < 'active' AND j.priority < (SELECT priority FROM floor) AND j.start_after <= j.created_on
              AND j.start_after <= coalesce(at_time, now())
              AND NOT (SELECT paused FROM floor)
            ORDER BY j.priority DESC, j.created_on, j.id LIMIT batch_size FOR UPDATE OF j SKIP LOCKED) below
        UNION ALL
        SELECT * FROM (
            SELECT j.ctid, j.id, j.priority, j.created_on, false FROM {{schema}}.job j
            WHERE j.name = queue_name AND j.state < 'active' AND j.start_after > j.created_on
              AND j.start_after <= coalesce(at_time, now())
              AND NOT (SELECT paused FROM floor)
            ORDER BY j.priority DESC, j.created_on, j.id LIMIT batch_size FOR UPDATE OF j SKIP LOCKED) deferred
    ) r
    ORDER BY r.priority DESC, r.created_on, r.id
    LIMIT batch_size
)
UPDATE {{schema}}.job j SET
    state = 'active',
    retry_count = j.retry_count + (j.started_on IS NOT NULL)::integer,
    started_on = coalesce(at_time, statement_timestamp()),
    expire_at = least(
        coalesce(at_time, statement_timestamp()) + make_interval(secs => j.expire_in),
        deadline
    )
WHERE j.ctid = ANY(ARRAY(SELECT ctid FROM next))
RETURNING j.id::text, j.name, j.data, j.priority, j.retry_count, j.retry_limit,
          j.started_on, j.expire_at, j.created_on, j.singleton_key, j.origin;
END
$$;

-- lock_keys: keyed fetch (singleton and stately queues), first step: choose the next job of as many keys as
-- wanted, taking each key's transaction-level advisory lock without waiting; keys another fetcher
-- holds are passed over.
--
-- Only a fetcher holding a key's lock activates a job of that key, and it holds the lock until it
-- commits. So once this step holds a key, a statement that starts afterwards (claim_keyed) sees
-- every activation of it: that statement never touches a job another fetcher has claimed, and
-- never waits on its completion. Done in one statement, a fetcher whose snapshot predated another
-- fetcher's commit locked the job that fetcher had just claimed (the row lock of a rejected recheck
-- outlives the recheck), then waited on another job's completion while that completion waited on
-- the lock: a deadlock Postgres broke by cancelling one of them.
--
-- The candidates come from the four walks a fetch merges (see fetch_jobs), each locking the keys it
-- reaches, in claim order, until it has `batch_size`; keys locked beyond the best `batch_size` stay locked
-- until the fetch's transaction ends (other fetchers pass over them meanwhile).
CREATE FUNCTION {{schema}}.lock_keys(queue_name text, batch_size integer, at_time timestamptz)
RETURNS TABLE (id uuid)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
RETURN QUERY
WITH floor AS MATERIALIZED (
    SELECT coalesce(f.priority, 0) AS priority,
           coalesce(f.created_on, '-infinity') AS created_on,
           coalesce(f.id, '00000000-0000-0000-0000-000000000000') AS id,
           EXISTS (SELECT 1 FROM {{schema}}.queue p WHERE p.name = queue_name AND p.paused) AS paused
    FROM (SELECT 1) one
    LEFT JOIN LATERAL (
        SELECT ff.priority, ff.created_on, ff.id FROM {{schema}}.fetch_floor ff
        WHERE ff.name = queue_name
        ORDER BY ff.at DESC
        LIMIT 1
    ) f ON true
), candidates AS MATERIALIZED (
    SELECT r.* FROM (
        SELECT * FROM (
            SELECT j.id, j.policy, coalesce(j.singleton_key, '') AS key, j.priority, j.created_on, true AS immediate
            FROM {{schema}}.job j
            WHERE j.name = queue_name AND j.state < 'active' AND j.priority = (SELECT priority FROM floor)
              AND (j.created_on, j.id) >= ((SELECT created_on FROM floor), (SELECT id FROM floor))
              AND j.start_after <= j.created_on
              AND j.start_after <= coalesce(at_time, now())
              AND NOT (SELECT paused FROM floor)
              AND NOT (
          (j.policy = 'singleton' AND EXISTS (
              SELECT 1 FROM {{schema}}.job a
              WHERE a.name = j.name AND a.state = 'active' AND a.policy = 'singleton'
                AND coalesce(a.singleton_key, '') = coalesce(j.singleton_key, '')
              OFFSET 0))
          OR (j.policy = 'stately' AND EXISTS (
              SELECT 1 FROM {{schema}}.job a
              WHERE a.name = j.name AND a.state = 'active' AND a.policy = 'stately'
                AND coalesce(a.singleton_key, '') = coalesce(j.singleton_key, '')
              OFFSET 0))
      ) AND pg_try_advisory_xact_lock(hashtextextended('{{schema}}.key:' || j.name || ':' || coalesce(j.singleton_key, ''), 0))
            ORDER BY j.priority DESC, j.created_on, j.id LIMIT batch_size) band
        UNION ALL
        SELECT * FROM (
            SELECT j.id, j.policy, coalesce(j.singleton_key, '') AS key, j.priority, j.created_on, true AS immediate
            FROM {{schema}}.job j
            WHERE j.name = queue_name AND j.state < 'active' AND j.priority > (SELECT priority FROM floor) AND j.start_after <= j.created_on
              AND j.start_after <= coalesce(at_time, now())
              AND NOT (SELECT paused FROM floor)
              AND NOT (
          (j.policy = 'singleton' AND EXISTS (
              SELECT 1 FROM {{schema}}.job a
              WHERE a.name = j.name AND a.state = 'active' AND a.policy = 'singleton'
                AND coalesce(a.singleton_key, '') = coalesce(j.singleton_key, '')
              OFFSET 0))
          OR (j.policy = 'stately' AND EXISTS (
              SELECT 1 FROM {{schema}}.job a
              WHERE a.name = j.name AND a.state = 'active' AND a.policy = 'stately'
                AND coalesce(a.singleton_key, '') = coalesce(j.singleton_key, '')
              OFFSET 0))
      ) AND pg_try_advisory_xact_lock(hashtextextended('{{schema}}.key:' || j.name || ':' || coalesce(j.singleton_key, ''), 0))
            ORDER BY j.priority DESC, j.created_on, j.id LIMIT batch_size) above
        UNION ALL
        SELECT * FROM (
            SELECT j.id, j.policy, coalesce(j.singleton_key, '') AS key, j.priority, j.created_on, true AS immediate
            FROM {{schema}}.job j
            WHERE j.name = queue_name AND j.state < 'active' AND j.priority < (SELECT priority FROM floor) AND j.start_after <= j.created_on
              AND j.start_after <= coalesce(at_time, now())
              AND NOT (SELECT paused FROM floor)
              AND NOT (
          (j.policy = 'singleton' AND EXISTS (
              SELECT 1 FROM {{schema}}.job a
              WHERE a.name = j.name AND a.state = 'active' AND a.policy = 'singleton'
                AND coalesce(a.singleton_key, '') = coalesce(j.singleton_key, '')
              OFFSET 0))
          OR (j.policy = 'stately' AND EXISTS (
              SELECT 1 FROM {{schema}}.job a
              WHERE a.name = j.name AND a.state = 'active' AND a.policy = 'stately'
                AND coalesce(a.singleton_key, '') = coalesce(j.singleton_key, '')
              OFFSET 0))
      ) AND pg_try_advisory_xact_lock(hashtextextended('{{schema}}.key:' || j.name || ':' || coalesce(j.singleton_key, ''), 0))
            ORDER BY j.priority DESC, j.created_on, j.id LIMIT batch_size) below
        UNION ALL
        SELECT * FROM (
            SELECT j.id, j.policy, coalesce(j.singleton_key, '') AS key, j.priority, j.created_on, false AS immediate
            FROM {{schema}}.job j
            WHERE j.name = queue_name AND j.state < 'active' AND j.start_after > j.created_on
              AND j.start_after <= coalesce(at_time, now())
              AND NOT (SELECT paused FROM floor)
              AND NOT (
          (j.policy = 'singleton' AND EXISTS (
              SELECT 1 FROM {{schema}}.job a
              WHERE a.name = j.name AND a.state = 'active' AND a.policy = 'singleton'
                AND coalesce(a.singleton_key, '') = coalesce(j.singleton_key, '')
              OFFSET 0))
          OR (j.policy = 'stately' AND EXISTS (
              SELECT 1 FROM {{schema}}.job a
              WHERE a.name = j.name AND a.state = 'active' AND a.policy = 'stately'
                AND coalesce(a.singleton_key, '') = coalesce(j.singleton_key, '')
              OFFSET 0))
      ) AND pg_try_advisory_xact_lock(hashtextextended('{{schema}}.key:' || j.name || ':' || coalesce(j.singleton_key, ''), 0))
            ORDER BY j.priority DESC, j.created_on, j.id LIMIT batch_size) deferred
    ) r
    ORDER BY r.priority DESC, r.created_on, r.id
    LIMIT batch_size
)
SELECT id FROM (
    SELECT c.id, c.policy,
           row_number() OVER (PARTITION BY c.policy, c.key ORDER BY c.priority DESC, c.created_on, c.id) AS n
    FROM candidates c
) ranked
WHERE policy NOT IN ('singleton', 'stately') OR n = 1;
END
$$;

-- lock_fifo_window: keyed fetch of a key_strict_fifo queue, first step, fast path: walk the first `window_size` ready
-- jobs in fetch order (the fetch index, as a standard fetch does) and take each job that is its
-- key's next job (one probe of the fifo index) on a key with nothing active, in retry or failed
-- (one probe of the strict-fifo index), trying the key's lock only then (CASE fixes the order),
-- until `batch_size` are locked. `seen` is how many jobs the window held: when it held `window_size` and
-- fewer than `batch_size` jobs were taken, heads may lie beyond it and lock_fifo_heads, which visits
-- every key, takes over. The window keeps the statement's cost, and so its plan, independent of
-- the backlog's size.
-- The window is the first `window_size` jobs of the four walks a fetch merges (see fetch_jobs). A row with
-- no id says how many the window held when no head was locked.
CREATE FUNCTION {{schema}}.lock_fifo_window(queue_name text, batch_size integer, window_size integer, at_time timestamptz)
RETURNS TABLE (id uuid, seen bigint)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
RETURN QUERY
WITH floor AS MATERIALIZED (
    SELECT coalesce(f.priority, 0) AS priority,
           coalesce(f.created_on, '-infinity') AS created_on,
           coalesce(f.id, '00000000-0000-0000-0000-000000000000') AS id,
           EXISTS (SELECT 1 FROM {{schema}}.queue p WHERE p.name = queue_name AND p.paused) AS paused
    FROM (SELECT 1) one
    LEFT JOIN LATERAL (
        SELECT ff.priority, ff.created_on, ff.id FROM {{schema}}.fetch_floor ff
        WHERE ff.name = queue_name
        ORDER BY ff.at DESC
        LIMIT 1
    ) f ON true
), ready AS MATERIALIZED (
    SELECT r.* FROM (
        SELECT * FROM (
            SELECT j.id, j.singleton_key, j.priority, j.created_on, true AS immediate FROM {{schema}}.job j
            WHERE j.name = queue_name AND j.state < 'active' AND j.priority = (SELECT priority FROM floor)
              AND (j.created_on, j.id) >= ((SELECT created_on FROM floor), (SELECT id FROM floor))
              AND j.start_after <= j.created_on
              AND j.start_after <= coalesce(at_time, now())
              AND NOT (SELECT paused FROM floor)
            ORDER BY j.priority DESC, j.created_on, j.id LIMIT window_size) band
        UNION ALL
        SELECT * FROM (
            SELECT j.id, j.singleton_key, j.priority, j.created_on, true AS immediate FROM {{schema}}.job j
            WHERE j.name = queue_name AND j.state < 'active' AND j.priority > (SELECT priority FROM floor) AND j.start_after <= j.created_on
              AND j.start_after <= coalesce(at_time, now())
              AND NOT (SELECT paused FROM floor)
            ORDER BY j.priority DESC, j.created_on, j.id LIMIT window_size) above
        UNION ALL
        SELECT * FROM (
            SELECT j.id, j.singleton_key, j.priority, j.created_on, true AS immediate FROM {{schema}}.job j
            WHERE j.name = queue_name AND j.state < 'active' AND j.priority < (SELECT priority FROM floor) AND j.start_after <= j.created_on
              AND j.start_after <= coalesce(at_time, now())
              AND NOT (SELECT paused FROM floor)
            ORDER BY j.priority DESC, j.created_on, j.id LIMIT window_size) below
        UNION ALL
        SELECT * FROM (
            SELECT j.id, j.singleton_key, j.priority, j.created_on, false AS immediate FROM {{schema}}.job j
            WHERE j.name = queue_name AND j.state < 'active' AND j.start_after > j.created_on
              AND j.start_after <= coalesce(at_time, now())
              AND NOT (SELECT paused FROM floor)
            ORDER BY j.priority DESC, j.created_on, j.id LIMIT window_size) deferred
    ) r
    ORDER BY r.priority DESC, r.created_on, r.id
    LIMIT window_size
), next AS MATERIALIZED (
    SELECT c.id, c.priority, c.created_on, c.immediate FROM (
        SELECT w.* FROM ready w ORDER BY w.priority DESC, w.created_on, w.id OFFSET 0
    ) c
    WHERE CASE
        WHEN c.id = (
            SELECT e.id FROM {{schema}}.job e
            WHERE e.name = queue_name AND e.policy = 'key_strict_fifo' AND e.singleton_key = c.singleton_key
              AND e.state < 'active' AND e.start_after <= coalesce(at_time, now())
            ORDER BY e.state DESC, e.created_on, e.id
            LIMIT 1)
        AND NOT EXISTS (
            SELECT 1 FROM {{schema}}.job b
            WHERE b.name = queue_name AND b.singleton_key = c.singleton_key AND b.policy = 'key_strict_fifo'
              AND b.state IN ('active', 'retry', 'failed') AND b.id <> c.id)
        THEN pg_try_advisory_xact_lock(hashtextextended('{{schema}}.key:' || queue_name || ':' || c.singleton_key, 0))
        ELSE false
    END
    LIMIT batch_size
)
SELECT n.id, (SELECT count(*) FROM ready) AS seen FROM next n
UNION ALL
SELECT NULL, (SELECT count(*) FROM ready) WHERE NOT EXISTS (SELECT 1 FROM next);
END
$$;

-- lock_groups: fetch under a group limit (group_concurrency), first step: the next jobs, passing over groups at
-- their limit, each job's group's transaction-level advisory lock taken without waiting (groups
-- another fetcher holds are passed over; a job without a group locks itself). Only a fetcher
-- holding a group's lock activates its jobs, so claim_grouped counts the group's active jobs
-- exactly: the limit is never exceeded, not even briefly.
--
-- The jobs are walked in fetch order (the fetch index, as a standard fetch does) and each is
-- checked, then locked, only when reached (CASE fixes that order): a plan that filtered every
-- ready job before sorting would count and lock every group of a small backlog.
--
-- The jobs come from the four walks a fetch merges (see fetch_jobs), each walked so, until it has
-- `batch_size`; groups locked beyond the best `batch_size` stay locked until the fetch's transaction ends.
CREATE FUNCTION {{schema}}.lock_groups(queue_name text, batch_size integer, at_time timestamptz, tiers jsonb, group_limit integer)
RETURNS TABLE (id uuid)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
RETURN QUERY
WITH floor AS MATERIALIZED (
    SELECT coalesce(f.priority, 0) AS priority,
           coalesce(f.created_on, '-infinity') AS created_on,
           coalesce(f.id, '00000000-0000-0000-0000-000000000000') AS id,
           EXISTS (SELECT 1 FROM {{schema}}.queue p WHERE p.name = queue_name AND p.paused) AS paused
    FROM (SELECT 1) one
    LEFT JOIN LATERAL (
        SELECT ff.priority, ff.created_on, ff.id FROM {{schema}}.fetch_floor ff
        WHERE ff.name = queue_name
        ORDER BY ff.at DESC
        LIMIT 1
    ) f ON true
), next AS MATERIALIZED (
    SELECT r.* FROM (
        SELECT * FROM (
            SELECT c.id, c.priority, c.created_on, true AS immediate FROM (
                SELECT j.id, j.name, j.group_id, j.group_tier, j.priority, j.created_on FROM {{schema}}.job j
                WHERE j.name = queue_name AND j.state < 'active' AND j.priority = (SELECT priority FROM floor)
              AND (j.created_on, j.id) >= ((SELECT created_on FROM floor), (SELECT id FROM floor))
              AND j.start_after <= j.created_on
              AND j.start_after <= coalesce(at_time, now())
              AND NOT (SELECT paused FROM floor)
                ORDER BY j.priority DESC, j.created_on, j.id
                OFFSET 0
            ) c
            WHERE CASE
    WHEN c.group_id IS NULL OR (
        SELECT count(*) FROM {{schema}}.job a
        WHERE a.name = c.name AND a.group_id = c.group_id AND a.state = 'active'
    ) < coalesce((tiers ->> c.group_tier)::integer, group_limit)
    THEN pg_try_advisory_xact_lock(
        hashtextextended('{{schema}}.group:' || c.name || ':' || coalesce(c.group_id, c.id::text), 0))
    ELSE false
END
            LIMIT batch_size) band
        UNION ALL
        SELECT * FROM (
            SELECT c.id, c.priority, c.created_on, true AS immediate FROM (
                SELECT j.id, j.name, j.group_id, j.group_tier, j.priority, j.created_on FROM {{schema}}.job j
                WHERE j.name = queue_name AND j.state < 'active' AND j.priority > (SELECT priority FROM floor) AND j.start_after <= j.created_on
              AND j.start_after <= coalesce(at_time, now())
              AND NOT (SELECT paused FROM floor)
                ORDER BY j.priority DESC, j.created_on, j.id
                OFFSET 0
            ) c
            WHERE CASE
    WHEN c.group_id IS NULL OR (
        SELECT count(*) FROM {{schema}}.job a
        WHERE a.name = c.name AND a.group_id = c.group_id AND a.state = 'active'
    ) < coalesce((tiers ->> c.group_tier)::integer, group_limit)
    THEN pg_try_advisory_xact_lock(
        hashtextextended('{{schema}}.group:' || c.name || ':' || coalesce(c.group_id, c.id::text), 0))
    ELSE false
END
            LIMIT batch_size) above
        UNION ALL
        SELECT * FROM (
            SELECT c.id, c.priority, c.created_on, true AS immediate FROM (
                SELECT j.id, j.name, j.group_id, j.group_tier, j.priority, j.created_on FROM {{schema}}.job j
                WHERE j.name = queue_name AND j.state < 'active' AND j.priority < (SELECT priority FROM floor) AND j.start_after <= j.created_on
              AND j.start_after <= coalesce(at_time, now())
              AND NOT (SELECT paused FROM floor)
                ORDER BY j.priority DESC, j.created_on, j.id
                OFFSET 0
            ) c
            WHERE CASE
    WHEN c.group_id IS NULL OR (
        SELECT count(*) FROM {{schema}}.job a
        WHERE a.name = c.name AND a.group_id = c.group_id AND a.state = 'active'
    ) < coalesce((tiers ->> c.group_tier)::integer, group_limit)
    THEN pg_try_advisory_xact_lock(
        hashtextextended('{{schema}}.group:' || c.name || ':' || coalesce(c.group_id, c.id::text), 0))
    ELSE false
END
            LIMIT batch_size) below
        UNION ALL
        SELECT * FROM (
            SELECT c.id, c.priority, c.created_on, false AS immediate FROM (
                SELECT j.id, j.name, j.group_id, j.group_tier, j.priority, j.created_on FROM {{schema}}.job j
                WHERE j.name = queue_name AND j.state < 'active' AND j.start_after > j.created_on
              AND j.start_after <= coalesce(at_time, now())
              AND NOT (SELECT paused FROM floor)
                ORDER BY j.priority DESC, j.created_on, j.id
                OFFSET 0
            ) c
            WHERE CASE
    WHEN c.group_id IS NULL OR (
        SELECT count(*) FROM {{schema}}.job a
        WHERE a.name = c.name AND a.group_id = c.group_id AND a.state = 'active'
    ) < coalesce((tiers ->> c.group_tier)::integer, group_limit)
    THEN pg_try_advisory_xact_lock(
        hashtextextended('{{schema}}.group:' || c.name || ':' || coalesce(c.group_id, c.id::text), 0))
    ELSE false
END
            LIMIT batch_size) deferred
    ) r
    ORDER BY r.priority DESC, r.created_on, r.id
    LIMIT batch_size
)
SELECT id FROM next;
END
$$;
