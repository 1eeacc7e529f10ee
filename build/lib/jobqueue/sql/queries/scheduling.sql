-- name: upsert_schedule
-- Create or replace a schedule. Changing its cron or time zone restarts it from
-- now, so the new expression does not "catch up" fire times it never had.
INSERT INTO {{schema}}.schedule (name, key, cron, timezone, data, options, last_fire_time)
VALUES (%(name)s, %(key)s, %(cron)s, %(timezone)s, %(data)s::jsonb, %(options)s::jsonb,
        coalesce(%(now)s::timestamptz, now()))
ON CONFLICT (name, key) DO UPDATE SET
    cron = EXCLUDED.cron,
    timezone = EXCLUDED.timezone,
    data = EXCLUDED.data,
    options = EXCLUDED.options,
    updated_on = now(),
    last_fire_time = CASE
        WHEN {{schema}}.schedule.cron <> EXCLUDED.cron OR {{schema}}.schedule.timezone <> EXCLUDED.timezone
        THEN EXCLUDED.last_fire_time
        ELSE {{schema}}.schedule.last_fire_time
    END;

-- name: delete_schedule
-- Remove a schedule (one key, or all keys of a queue when key is NULL).
DELETE FROM {{schema}}.schedule
WHERE name = %(name)s AND (%(key)s::text IS NULL OR key = %(key)s::text)
RETURNING name;

-- name: get_schedules
-- The schedules, optionally of one queue.
SELECT name, key, cron, timezone, data, options, created_on, updated_on, last_fire_time
FROM {{schema}}.schedule
WHERE %(name)s::text IS NULL OR name = %(name)s::text
ORDER BY name, key;

-- name: lock_schedules
-- The schedules no other tick is processing right now, locked until commit.
SELECT name, key, cron, timezone, data, options, created_on, updated_on, last_fire_time
FROM {{schema}}.schedule
ORDER BY name, key
FOR UPDATE SKIP LOCKED;

-- name: mark_fired
-- Remember the latest fire time of a schedule that has been turned into jobs.
UPDATE {{schema}}.schedule SET last_fire_time = %(fire_time)s
WHERE name = %(name)s AND key = %(key)s;

-- name: db_now
-- The database clock, the one clock every default "now" in the queue reads.
SELECT now() AS now;
