-- name: create_queue
-- Create a queue from all its settings (one JSON object); an existing queue of that name is left as it is.
-- {{queue_settings}} is the column list of the settings declared in jobqueue/settings.py.
INSERT INTO {{schema}}.queue (name, {{queue_settings}})
SELECT %(name)s, {{queue_settings}}
FROM jsonb_populate_record(NULL::{{schema}}.queue, %(settings)s::jsonb)
ON CONFLICT (name) DO NOTHING
RETURNING name;

-- name: fence_job_partition
-- First step of a queue's own partition (schema.sql): no job of the queue may enter job_common.
SELECT {{schema}}.fence_job_partition(%(name)s);

-- name: make_job_partition
-- Second step: check job_common holds none of its jobs, and attach the queue's partition.
SELECT {{schema}}.make_job_partition(%(name)s);

-- name: drop_job_partition
-- Drop a queue's own partition with its jobs; how many it held (0 for a queue without one).
SELECT {{schema}}.drop_job_partition(%(name)s);

-- name: update_queue
-- Change the settings present in `changes` (a JSON object); the others keep their values.
-- jsonb_populate_record over the row itself replaces exactly the keys given.
UPDATE {{schema}}.queue AS q
SET ({{queue_settings}}, updated_on) = (
    SELECT {{queue_settings}}, now() FROM jsonb_populate_record(q, %(changes)s::jsonb)
)
WHERE q.name = %(name)s
RETURNING q.name;

-- name: get_queue
-- One queue's settings.
SELECT name, {{queue_settings}}, created_on, updated_on, paused
FROM {{schema}}.queue WHERE name = %(name)s;

-- name: get_queues
-- Every queue's settings, by name.
SELECT name, {{queue_settings}}, created_on, updated_on, paused
FROM {{schema}}.queue ORDER BY name;

-- name: set_paused
-- Pause or resume a queue; no row when there is no such queue.
UPDATE {{schema}}.queue SET paused = %(paused)s, updated_on = now() WHERE name = %(name)s RETURNING name;

-- name: dead_letter_users
-- The queues that use this queue as their dead letter queue.
SELECT name FROM {{schema}}.queue WHERE dead_letter = %(name)s ORDER BY name;

-- name: delete_queue
-- Delete a queue with its jobs, archived jobs, schedules and fetch floors.
WITH jobs AS (
    DELETE FROM {{schema}}.job WHERE name = %(name)s RETURNING 1
), archived AS (
    DELETE FROM {{schema}}.archive WHERE name = %(name)s RETURNING 1
), floors AS (
    -- A queue made again under this name starts from no floor.
    DELETE FROM {{schema}}.fetch_floor WHERE name = %(name)s
)
DELETE FROM {{schema}}.queue WHERE name = %(name)s
RETURNING name, (SELECT count(*) FROM jobs) + (SELECT count(*) FROM archived) AS jobs;

-- name: delete_queued_jobs
-- Delete up to `limit` jobs of a queue that have not started (created or retry).
WITH hot AS (
    DELETE FROM {{schema}}.job WHERE id IN (
        SELECT id FROM {{schema}}.job WHERE name = %(name)s AND state < 'active' LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
    RETURNING 1
)
SELECT count(*) AS deleted FROM hot;

-- name: delete_stored_jobs
-- Delete up to `limit` finished jobs of a queue (completed, cancelled or failed), hot then archived.
WITH hot AS (
    DELETE FROM {{schema}}.job WHERE id IN (
        SELECT id FROM {{schema}}.job WHERE name = %(name)s AND state > 'active' LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
    RETURNING 1
), cold AS (
    DELETE FROM {{schema}}.archive WHERE id IN (
        SELECT id FROM {{schema}}.archive WHERE name = %(name)s LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
    RETURNING 1
)
SELECT (SELECT count(*) FROM hot) + (SELECT count(*) FROM cold) AS deleted;

-- name: delete_all_jobs
-- Delete up to `limit` jobs of a queue whatever their state, active ones too (their workers'
-- completions then find nothing), hot then archived.
WITH hot AS (
    DELETE FROM {{schema}}.job WHERE id IN (
        SELECT id FROM {{schema}}.job WHERE name = %(name)s LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
    RETURNING 1
), cold AS (
    DELETE FROM {{schema}}.archive WHERE id IN (
        SELECT id FROM {{schema}}.archive WHERE name = %(name)s LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
    RETURNING 1
)
SELECT (SELECT count(*) FROM hot) + (SELECT count(*) FROM cold) AS deleted;
