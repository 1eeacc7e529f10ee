-- Making and dropping the archive's days take a lock first: two callers at once (archive() called
-- by two processes) would both make, or both drop, the same day, and the second would fail.
CREATE OR REPLACE FUNCTION {{schema}}.make_archive_days(days_ahead integer) RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    first_day date := (now() AT TIME ZONE 'UTC')::date;
    day date;
    part text;
    made integer := 0;
BEGIN
    -- One caller at a time (two would both make, or both drop, the same day).
    PERFORM pg_advisory_xact_lock(hashtextextended('{{schema}}.archive days', 0));
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

CREATE OR REPLACE FUNCTION {{schema}}.drop_archive_days(before timestamptz) RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    part record;
    jobs bigint;
    dropped bigint := 0;
BEGIN
    -- One caller at a time (two would both make, or both drop, the same day).
    PERFORM pg_advisory_xact_lock(hashtextextended('{{schema}}.archive days', 0));
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
