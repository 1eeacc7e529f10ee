-- The fetch of a standard or short queue (working.sql's `fetch` calls it): claim up to
-- `batch_size` queued jobs of queue `queue_name`, in priority order, in one statement.
--
-- A function so that its plan is made once per database session and kept (PL/pgSQL caches the
-- plans of its statements; plan_cache_mode makes it the generic one): planning this statement
-- took longer than running it for a batch of 100, and a statement sent as text is planned at
-- every call. No client-side prepared statement is involved, so it works through PgBouncer and
-- RDS Proxy. The generic plan cannot go wrong on a parameter's value: every walk is an index
-- range whose bounds are computed when it runs, and the claim is a TID scan.
--
-- The jobs come from four walks of the queue, merged in claim order: the fetch floor's priority
-- band from the floor on (the jobs claimed before it are not walked again, which matters while
-- another session holds an old snapshot and their index entries cannot be removed), the bands
-- above and below it, and the jobs queued behind their position (delayed, retried, released:
-- the job_deferred index). Each walk takes at most `batch_size` jobs with FOR UPDATE SKIP
-- LOCKED: rows another fetcher holds are skipped, never waited for; what a walk locked beyond
-- the best `batch_size` is let go at the end of the statement. The CTE is MATERIALIZED so that
-- the planner cannot fold it into the UPDATE: LIMIT with FOR UPDATE SKIP LOCKED must run
-- exactly once, or concurrent fetchers could claim the same row. The UPDATE finds the claimed
-- rows by their ctid, which their row locks keep from changing until the statement ends.
-- `at_time` stands for now (tests and replays); the claim's SET list is working.sql's `claim`
-- fragment (a test holds them equal: a change to one needs a migration that redefines this).
CREATE FUNCTION {{schema}}.fetch_jobs(
    queue_name text, batch_size integer, deadline timestamptz, at_time timestamptz
) RETURNS TABLE (
    id uuid, name text, data jsonb, priority integer, retry_count integer, retry_limit integer,
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
    SELECT r.ctid, r.id, r.priority, r.created_on FROM (
        SELECT * FROM (
            SELECT j.ctid, j.id, j.priority, j.created_on FROM {{schema}}.job j
            WHERE j.name = queue_name AND j.state < 'active' AND j.priority = (SELECT priority FROM floor)
              AND (j.created_on, j.id) >= ((SELECT created_on FROM floor), (SELECT id FROM floor))
              AND j.start_after <= j.created_on AND j.start_after <= coalesce(at_time, now())
              AND NOT (SELECT paused FROM floor)
            ORDER BY j.priority DESC, j.created_on, j.id LIMIT batch_size FOR UPDATE OF j SKIP LOCKED) band
        UNION ALL
        SELECT * FROM (
            SELECT j.ctid, j.id, j.priority, j.created_on FROM {{schema}}.job j
            WHERE j.name = queue_name AND j.state < 'active' AND j.priority > (SELECT priority FROM floor)
              AND j.start_after <= j.created_on AND j.start_after <= coalesce(at_time, now())
              AND NOT (SELECT paused FROM floor)
            ORDER BY j.priority DESC, j.created_on, j.id LIMIT batch_size FOR UPDATE OF j SKIP LOCKED) above
        UNION ALL
        SELECT * FROM (
            SELECT j.ctid, j.id, j.priority, j.created_on FROM {{schema}}.job j
            WHERE j.name = queue_name AND j.state < 'active' AND j.priority < (SELECT priority FROM floor)
              AND j.start_after <= j.created_on AND j.start_after <= coalesce(at_time, now())
              AND NOT (SELECT paused FROM floor)
            ORDER BY j.priority DESC, j.created_on, j.id LIMIT batch_size FOR UPDATE OF j SKIP LOCKED) below
        UNION ALL
        SELECT * FROM (
            SELECT j.ctid, j.id, j.priority, j.created_on FROM {{schema}}.job j
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
RETURNING j.id, j.name, j.data, j.priority, j.retry_count, j.retry_limit,
          j.started_on, j.expire_at, j.created_on, j.singleton_key, j.origin;
END
$$;
