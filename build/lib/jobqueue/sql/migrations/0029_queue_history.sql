-- Queue history (Queue.history): a row per queue and minute, recorded by maintenance (schema.sql says how).
-- A queue's history (Queue.history): per queue and minute, what happened to its jobs, recorded by
-- maintenance once the minute is over (record_history, in sql/queries/maintenance.sql) and kept
-- 14 days. A row only for a queue that had something happen in the minute: an idle queue costs
-- nothing. Counts: jobs sent (by their ids' time: a UUIDv7 holds the millisecond it was made; an
-- id given by the sender counts where its bits fall), attempts started (of the jobs finished or
-- running when the minute is recorded: an attempt that failed or expired and waits for its retry
-- is not, its retry is), jobs completed, failed and cancelled, attempts ended by expiry (written
-- by maintenance's expiry as it happens). Wait: seconds from ready (sent, or its delay or retry
-- delay over) to start, of the attempts started in the minute; run: seconds from start to end, of
-- the jobs finished in the minute; each as p50, p95 and p99.
CREATE TABLE {{schema}}.queue_history (
    name text NOT NULL,
    minute timestamptz NOT NULL,
    sent integer NOT NULL DEFAULT 0,
    started integer NOT NULL DEFAULT 0,
    completed integer NOT NULL DEFAULT 0,
    failed integer NOT NULL DEFAULT 0,
    cancelled integer NOT NULL DEFAULT 0,
    expired integer NOT NULL DEFAULT 0,
    wait_p50 real,
    wait_p95 real,
    wait_p99 real,
    run_p50 real,
    run_p95 real,
    run_p99 real,
    PRIMARY KEY (name, minute)
);
CREATE INDEX queue_history_minute ON {{schema}}.queue_history (minute);

-- Up to where record_history has recorded the minutes (one row).
CREATE TABLE {{schema}}.history_mark (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    recorded_through timestamptz NOT NULL
);

-- The smallest UUIDv7 (uuid_v7, above) made at `at` or later: ids in [uuid_v7_floor(a),
-- uuid_v7_floor(b)) were made between a and b, so that an index range on ids counts sends.
CREATE FUNCTION {{schema}}.uuid_v7_floor(at timestamptz) RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT encode(
        substring(int8send(ceil(extract(epoch FROM at) * 1000)::bigint) FROM 3) || '\x00000000000000000000'::bytea,
        'hex')::uuid
$$;

-- The time a UUIDv7 (uuid_v7, above) was made, to the millisecond.
CREATE FUNCTION {{schema}}.uuid_v7_time(id uuid) RETURNS timestamptz
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT to_timestamp(('x' || substr(replace(id::text, '-', ''), 1, 12))::bit(48)::bigint / 1000.0)
$$;
