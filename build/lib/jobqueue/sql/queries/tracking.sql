-- name: job_steps
-- The steps a job's handler ran so far (any attempt): [{name, result, at, ms, attempt}].
SELECT steps FROM {{schema}}.job WHERE id = %(id)s::uuid AND name = %(name)s;

-- name: record_step
-- Store one step a running job's handler finished, fenced to the attempt that ran it (a job that
-- expired and was fetched again meanwhile, or was cancelled, is left alone: no row).
UPDATE {{schema}}.job SET steps = coalesce(steps, '[]'::jsonb) || jsonb_build_array(%(step)s::jsonb)
WHERE id = %(id)s::uuid AND name = %(name)s AND state = 'active' AND started_on = %(started)s
RETURNING id::text;

-- name: record_progress
-- Store how far running jobs got, each fenced to its attempt, in one statement for a batch.
UPDATE {{schema}}.job j SET progress = t.progress
FROM unnest(%(ids)s::uuid[], %(started)s::timestamptz[], %(values)s::jsonb[]) AS t(id, started_on, progress)
WHERE j.id = ANY(%(ids)s::uuid[]) AND j.name = %(name)s AND j.id = t.id
  AND j.state = 'active' AND j.started_on = t.started_on
RETURNING j.id::text;
