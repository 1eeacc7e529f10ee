-- Group rate limits (the queue setting group_rate_limit): the starts a fetch records say their
-- group, and lock_groups passes over a group whose window is full (schema.sql says how).
ALTER TABLE {{schema}}.queue ADD COLUMN group_rate_limit jsonb CONSTRAINT queue_group_rate_limit_check CHECK (
    group_rate_limit IS NULL
    OR ((group_rate_limit ->> 'limit')::integer >= 1 AND (group_rate_limit ->> 'period')::integer >= 1));

ALTER TABLE {{schema}}.job_start ADD COLUMN group_id text;
CREATE INDEX job_start_group_window ON {{schema}}.job_start (name, group_id, started_on) WHERE group_id IS NOT NULL;

DROP FUNCTION {{schema}}.lock_groups(text, integer, timestamptz, jsonb, integer);

CREATE FUNCTION {{schema}}.lock_groups(
    queue_name text, batch_size integer, at_time timestamptz, tiers jsonb, group_limit integer,
    group_rate_limit integer, group_rate_period integer
)
RETURNS TABLE (id uuid)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET jit = off
SET enable_seqscan = off
SET enable_bitmapscan = off
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
    WHEN c.group_id IS NULL OR ((
        group_limit IS NULL OR (
            SELECT count(*) FROM {{schema}}.job a
            WHERE a.name = c.name AND a.group_id = c.group_id AND a.state = 'active'
        ) < coalesce((tiers ->> c.group_tier)::integer, group_limit)
    ) AND (
        group_rate_limit IS NULL OR (
            SELECT coalesce(sum(s.jobs), 0) FROM {{schema}}.job_start s
            WHERE s.name = c.name AND s.group_id = c.group_id
              AND s.started_on > coalesce(at_time, statement_timestamp())
                                 - make_interval(secs => group_rate_period)
        ) < group_rate_limit
    ))
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
    WHEN c.group_id IS NULL OR ((
        group_limit IS NULL OR (
            SELECT count(*) FROM {{schema}}.job a
            WHERE a.name = c.name AND a.group_id = c.group_id AND a.state = 'active'
        ) < coalesce((tiers ->> c.group_tier)::integer, group_limit)
    ) AND (
        group_rate_limit IS NULL OR (
            SELECT coalesce(sum(s.jobs), 0) FROM {{schema}}.job_start s
            WHERE s.name = c.name AND s.group_id = c.group_id
              AND s.started_on > coalesce(at_time, statement_timestamp())
                                 - make_interval(secs => group_rate_period)
        ) < group_rate_limit
    ))
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
    WHEN c.group_id IS NULL OR ((
        group_limit IS NULL OR (
            SELECT count(*) FROM {{schema}}.job a
            WHERE a.name = c.name AND a.group_id = c.group_id AND a.state = 'active'
        ) < coalesce((tiers ->> c.group_tier)::integer, group_limit)
    ) AND (
        group_rate_limit IS NULL OR (
            SELECT coalesce(sum(s.jobs), 0) FROM {{schema}}.job_start s
            WHERE s.name = c.name AND s.group_id = c.group_id
              AND s.started_on > coalesce(at_time, statement_timestamp())
                                 - make_interval(secs => group_rate_period)
        ) < group_rate_limit
    ))
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
    WHEN c.group_id IS NULL OR ((
        group_limit IS NULL OR (
            SELECT count(*) FROM {{schema}}.job a
            WHERE a.name = c.name AND a.group_id = c.group_id AND a.state = 'active'
        ) < coalesce((tiers ->> c.group_tier)::integer, group_limit)
    ) AND (
        group_rate_limit IS NULL OR (
            SELECT coalesce(sum(s.jobs), 0) FROM {{schema}}.job_start s
            WHERE s.name = c.name AND s.group_id = c.group_id
              AND s.started_on > coalesce(at_time, statement_timestamp())
                                 - make_interval(secs => group_rate_period)
        ) < group_rate_limit
    ))
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
