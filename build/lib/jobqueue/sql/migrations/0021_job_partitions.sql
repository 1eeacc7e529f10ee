-- The job table partitioned by queue name (schema.sql says why): the table so far becomes
-- job_common, the DEFAULT partition, with every job it holds, whatever its state; its indexes
-- take the partition's names and become the partitions of the new parent's indexes, which are
-- made from them without a build. Attaching the only partition scans nothing. Queues created
-- from now on with `partition` get a table of their own; existing queues stay in job_common.
ALTER TABLE {{schema}}.queue ADD COLUMN partition boolean NOT NULL DEFAULT false;
ALTER TABLE {{schema}}.queue ALTER COLUMN partition DROP DEFAULT;

DROP VIEW {{schema}}.any_job;
DROP TRIGGER job_state_transition ON {{schema}}.job;
ALTER TABLE {{schema}}.job RENAME TO job_common;
ALTER TABLE {{schema}}.job_common RENAME CONSTRAINT job_pkey TO job_common_pkey;
ALTER INDEX {{schema}}.job_fetch RENAME TO job_common_fetch;
ALTER INDEX {{schema}}.job_deferred RENAME TO job_common_deferred;
ALTER INDEX {{schema}}.job_expire RENAME TO job_common_expire;
ALTER INDEX {{schema}}.job_finished RENAME TO job_common_finished;
ALTER INDEX {{schema}}.job_group_active RENAME TO job_common_group_active;
ALTER INDEX {{schema}}.job_policy RENAME TO job_common_policy;
ALTER INDEX {{schema}}.job_exclusive RENAME TO job_common_exclusive;
ALTER INDEX {{schema}}.job_strict_fifo RENAME TO job_common_strict_fifo;
ALTER INDEX {{schema}}.job_fifo RENAME TO job_common_fifo;
ALTER INDEX {{schema}}.job_throttle RENAME TO job_common_throttle;

CREATE TABLE {{schema}}.job (LIKE {{schema}}.job_common INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
    PARTITION BY LIST (name);
ALTER TABLE {{schema}}.job ATTACH PARTITION {{schema}}.job_common DEFAULT;

CREATE INDEX job_fetch ON {{schema}}.job (name, priority DESC, created_on, id)
    INCLUDE (start_after, keep_until) WHERE state < 'active';
CREATE INDEX job_deferred ON {{schema}}.job (name, priority DESC, created_on, id) INCLUDE (start_after)
    WHERE state < 'active' AND start_after > created_on;
CREATE INDEX job_expire ON {{schema}}.job (expire_at) WHERE expire_at IS NOT NULL;
CREATE INDEX job_finished ON {{schema}}.job (name, completed_on) WHERE state > 'active';
CREATE INDEX job_group_active ON {{schema}}.job (name, group_id) WHERE state = 'active' AND group_id IS NOT NULL;
CREATE UNIQUE INDEX job_policy ON {{schema}}.job (name, policy, COALESCE(singleton_key, ''), state)
    WHERE (policy = 'short' AND state = 'created')
       OR (policy = 'singleton' AND state = 'active')
       OR (policy = 'stately' AND state <= 'active');
CREATE UNIQUE INDEX job_exclusive ON {{schema}}.job (name, COALESCE(singleton_key, ''))
    WHERE policy = 'exclusive' AND state <= 'active';
CREATE UNIQUE INDEX job_strict_fifo ON {{schema}}.job (name, singleton_key)
    WHERE policy = 'key_strict_fifo' AND state IN ('active', 'retry', 'failed');
CREATE INDEX job_fifo ON {{schema}}.job (name, singleton_key, state DESC, created_on, id)
    WHERE policy = 'key_strict_fifo' AND state < 'active';
CREATE UNIQUE INDEX job_throttle ON {{schema}}.job (name, singleton_on, COALESCE(singleton_key, ''))
    WHERE state <> 'cancelled' AND singleton_on IS NOT NULL;

CREATE FUNCTION {{schema}}.job_partition(queue_name text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'job_' || left(encode(sha224(convert_to(queue_name, 'UTF8')), 'hex'), 24)
$$;

CREATE FUNCTION {{schema}}.name_partition_indexes(part text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    idx record;
BEGIN
    FOR idx IN
        SELECT c.relname AS leaf, p.relname AS parent FROM pg_index x
        JOIN pg_class c ON c.oid = x.indexrelid
        JOIN pg_inherits i ON i.inhrelid = x.indexrelid
        JOIN pg_class p ON p.oid = i.inhparent
        WHERE x.indrelid = ('{{schema}}.' || quote_ident(part))::regclass
    LOOP
        CONTINUE WHEN idx.leaf = part || substr(idx.parent, 4);
        EXECUTE format('ALTER INDEX {{schema}}.%I RENAME TO %I', idx.leaf, part || substr(idx.parent, 4));
    END LOOP;
END
$$;

CREATE FUNCTION {{schema}}.fence_job_partition(queue_name text) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    part text := {{schema}}.job_partition(queue_name);
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('{{schema}}.job partitions', 0));
    IF to_regclass('{{schema}}.' || quote_ident(part)) IS NOT NULL OR EXISTS (
        SELECT 1 FROM pg_constraint
        WHERE conrelid = '{{schema}}.job_common'::regclass AND conname = part || '_fence') THEN
        RETURN;
    END IF;
    EXECUTE format('ALTER TABLE {{schema}}.job_common ADD CONSTRAINT %I CHECK (name <> %L) NOT VALID',
                   part || '_fence', queue_name);
END
$$;

CREATE FUNCTION {{schema}}.make_job_partition(queue_name text) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    part text := {{schema}}.job_partition(queue_name);
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('{{schema}}.job partitions', 0));
    IF to_regclass('{{schema}}.' || quote_ident(part)) IS NOT NULL THEN
        RETURN;
    END IF;
    EXECUTE format('ALTER TABLE {{schema}}.job_common VALIDATE CONSTRAINT %I', part || '_fence');
    EXECUTE format('CREATE TABLE {{schema}}.%I (LIKE {{schema}}.job INCLUDING DEFAULTS INCLUDING CONSTRAINTS) '
                   'WITH (fillfactor = 50)', part);
    EXECUTE format('ALTER TABLE {{schema}}.%I ADD CONSTRAINT %I PRIMARY KEY (id)', part, part || '_pkey');
    EXECUTE format('ALTER TABLE {{schema}}.job ATTACH PARTITION {{schema}}.%I FOR VALUES IN (%L)', part, queue_name);
    PERFORM {{schema}}.name_partition_indexes(part);
    EXECUTE format('ALTER TABLE {{schema}}.job_common DROP CONSTRAINT %I', part || '_fence');
END
$$;

CREATE FUNCTION {{schema}}.drop_job_partition(queue_name text) RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    part text := {{schema}}.job_partition(queue_name);
    jobs bigint := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('{{schema}}.job partitions', 0));
    -- Only when there is one: altering job_common locks out every queue's statements.
    IF EXISTS (SELECT 1 FROM pg_constraint
               WHERE conrelid = '{{schema}}.job_common'::regclass AND conname = part || '_fence') THEN
        EXECUTE format('ALTER TABLE {{schema}}.job_common DROP CONSTRAINT %I', part || '_fence');
    END IF;
    IF to_regclass('{{schema}}.' || quote_ident(part)) IS NOT NULL THEN
        EXECUTE format('SELECT count(*) FROM {{schema}}.%I', part) INTO jobs;
        EXECUTE format('DROP TABLE {{schema}}.%I', part);
    END IF;
    RETURN jobs;
END
$$;

CREATE TRIGGER job_state_transition AFTER UPDATE OF state ON {{schema}}.job
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state AND NOT CASE OLD.state
        WHEN 'created' THEN NEW.state IN ('active', 'retry', 'cancelled', 'failed')
        WHEN 'retry' THEN NEW.state IN ('active', 'cancelled', 'failed')
        WHEN 'active' THEN NEW.state IN ('completed', 'retry', 'failed', 'cancelled')
        WHEN 'failed' THEN NEW.state = 'created'
        WHEN 'cancelled' THEN NEW.state = 'created'
        ELSE false
    END)
    EXECUTE FUNCTION {{schema}}.refuse_transition();

CREATE VIEW {{schema}}.any_job AS
SELECT id, name, priority, data, state, policy, retry_limit, retry_count, retry_delay, retry_backoff,
       retry_delay_max, expire_in, start_after, started_on, expire_at, singleton_key, singleton_on,
       keep_until, delete_after, dead_letter, created_on, completed_on, output, origin, false AS archived,
       group_id, group_tier, errors FROM {{schema}}.job
UNION ALL
SELECT id, name, priority, data, state, policy, retry_limit, retry_count, retry_delay, retry_backoff,
       retry_delay_max, expire_in, start_after, started_on, expire_at, singleton_key, singleton_on,
       keep_until, delete_after, dead_letter, created_on, completed_on, output, origin, true AS archived,
       group_id, group_tier, errors FROM {{schema}}.archive
-- A job past its delete_at is deleted, whenever purge drops its day's partition.
WHERE delete_at > now();

CREATE OR REPLACE FUNCTION {{schema}}.fetch_jobs(queue_name text, batch_size integer, deadline timestamptz, at_time timestamptz)
RETURNS TABLE (
    id text, name text, data jsonb, priority integer, retry_count integer, retry_limit integer,
    started_on timestamptz, expire_at timestamptz, created_on timestamptz, singleton_key text, origin jsonb
)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET jit = off
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
WHERE j.name = queue_name AND j.ctid = ANY(ARRAY(SELECT ctid FROM next))
RETURNING j.id::text, j.name, j.data, j.priority, j.retry_count, j.retry_limit,
          j.started_on, j.expire_at, j.created_on, j.singleton_key, j.origin;
END
$$;
