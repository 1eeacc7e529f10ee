-- The archive partitioned by delete_at, a partition per UTC day, so that purge drops a day's
-- partition instead of deleting its rows one by one (schema.sql says more). Archived jobs are
-- copied over into archive_other (or archive_kept), which purge deletes from as before; the
-- jobs archived from now on go to the day partitions maintenance makes.
DROP VIEW {{schema}}.any_job;
ALTER TABLE {{schema}}.archive RENAME TO archive_before_partitions;
ALTER INDEX {{schema}}.archive_throttle RENAME TO archive_before_partitions_throttle;
ALTER INDEX {{schema}}.archive_failed RENAME TO archive_before_partitions_failed;
ALTER INDEX {{schema}}.archive_finished RENAME TO archive_before_partitions_finished;

CREATE TABLE {{schema}}.archive (
    id uuid NOT NULL,
    name text NOT NULL,
    priority integer NOT NULL,
    data jsonb,
    state {{schema}}.job_state NOT NULL CONSTRAINT archive_finished_only CHECK (state > 'active'),
    policy text NOT NULL,
    retry_limit integer NOT NULL,
    retry_count integer NOT NULL,
    retry_delay integer NOT NULL,
    retry_backoff boolean NOT NULL,
    retry_delay_max integer,
    expire_in integer NOT NULL,
    start_after timestamptz NOT NULL,
    started_on timestamptz,
    expire_at timestamptz,
    singleton_key text,
    singleton_on timestamptz,
    keep_until timestamptz NOT NULL,
    delete_after integer NOT NULL,
    dead_letter text,
    created_on timestamptz NOT NULL,
    completed_on timestamptz,
    output jsonb,
    origin jsonb,
    archived_on timestamptz NOT NULL DEFAULT now(),
    delete_at timestamptz NOT NULL,
    group_id text,
    group_tier text,
    errors jsonb
) PARTITION BY RANGE (delete_at);
CREATE TABLE {{schema}}.archive_kept PARTITION OF {{schema}}.archive FOR VALUES FROM ('infinity') TO (MAXVALUE);
CREATE TABLE {{schema}}.archive_other PARTITION OF {{schema}}.archive DEFAULT;

CREATE INDEX archive_id ON {{schema}}.archive (id);
-- Purge's row by row deletes, in the one partition that needs them.
CREATE INDEX archive_other_delete ON {{schema}}.archive_other (delete_at);
-- A throttle or debounce slot stays taken while its job is archived, until the
-- job is deleted (as in pg-boss, which keeps finished jobs in its job table).
CREATE INDEX archive_throttle ON {{schema}}.archive (name, singleton_on, COALESCE(singleton_key, ''))
    WHERE singleton_on IS NOT NULL AND state <> 'cancelled';
CREATE INDEX archive_failed ON {{schema}}.archive (completed_on) WHERE state = 'failed';
-- By queue, and by completion time within a queue: finding a queue's archived
-- jobs, and counting what each queue finished in the last hour (dashboard).
CREATE INDEX archive_finished ON {{schema}}.archive (name, completed_on);

-- make_archive_days: the archive's day partitions from today (UTC, the database's clock: they
-- are its layout, whatever time a caller pretends) to `days_ahead` days on. A day is made as a
-- table of its own, filled with the rows archive_other holds for it, then attached: attaching
-- scans archive_other once to prove it holds no more. Returns how many days were made. Every
-- lock it takes is given up after lock_timeout (the caller sets it): maintenance then tries again
-- on its next run rather than making readers of the archive wait.
-- Both functions run with the rights of the schema's owner (SECURITY DEFINER, as migrate ran
-- them): making and dropping tables needs them, and the functions' role needs none of its own.
CREATE FUNCTION {{schema}}.make_archive_days(days_ahead integer) RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    first_day date := (now() AT TIME ZONE 'UTC')::date;
    day date;
    part text;
    made integer := 0;
BEGIN
    FOR offs IN 0 .. days_ahead LOOP
        day := first_day + offs;
        part := 'archive_' || to_char(day, 'YYYYMMDD');
        CONTINUE WHEN to_regclass('{{schema}}.' || quote_ident(part)) IS NOT NULL;
        EXECUTE format('CREATE TABLE {{schema}}.%I (LIKE {{schema}}.archive INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
        EXECUTE format(
            'WITH moved AS (DELETE FROM {{schema}}.archive_other WHERE delete_at >= $1 AND delete_at < $2 RETURNING *) '
            'INSERT INTO {{schema}}.%I SELECT * FROM moved', part)
        USING day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC';
        EXECUTE format('ALTER TABLE {{schema}}.archive ATTACH PARTITION {{schema}}.%I FOR VALUES FROM (%L) TO (%L)',
                       part, day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
        made := made + 1;
    END LOOP;
    RETURN made;
END
$$;

-- drop_archive_days: drop every day partition of the archive whose day ended before `before`:
-- each of its jobs is past its delete_at. Returns how many jobs went with them.
CREATE FUNCTION {{schema}}.drop_archive_days(before timestamptz) RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    part record;
    jobs bigint;
    dropped bigint := 0;
BEGIN
    FOR part IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = '{{schema}}.archive'::regclass AND c.relname ~ '^archive_[0-9]{8}$'
          AND (to_date(substr(c.relname, 9), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC' <= before
        ORDER BY c.relname
    LOOP
        EXECUTE format('SELECT count(*) FROM {{schema}}.%I', part.relname) INTO jobs;
        EXECUTE format('DROP TABLE {{schema}}.%I', part.relname);
        dropped := dropped + jobs;
    END LOOP;
    RETURN dropped;
END
$$;

INSERT INTO {{schema}}.archive (
    id, name, priority, data, state, policy, retry_limit, retry_count, retry_delay, retry_backoff,
    retry_delay_max, expire_in, start_after, started_on, expire_at, singleton_key, singleton_on,
    keep_until, delete_after, dead_letter, created_on, completed_on, output, origin, archived_on, delete_at,
    group_id, group_tier, errors
)
SELECT id, name, priority, data, state, policy, retry_limit, retry_count, retry_delay, retry_backoff,
    retry_delay_max, expire_in, start_after, started_on, expire_at, singleton_key, singleton_on,
    keep_until, delete_after, dead_letter, created_on, completed_on, output, origin, archived_on, delete_at,
    group_id, group_tier, errors
FROM {{schema}}.archive_before_partitions;
DROP TABLE {{schema}}.archive_before_partitions;

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
