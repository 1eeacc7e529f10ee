-- name: hold_for_parents
-- A flow's job waits for its parents: the edges, the count, and no start until they complete.
WITH edges AS (
    INSERT INTO {{schema}}.dependency (child, parent)
    SELECT %(id)s::uuid, p FROM unnest(%(parents)s::uuid[]) AS p
    ON CONFLICT DO NOTHING
    RETURNING 1
)
UPDATE {{schema}}.job SET parents_left = (SELECT count(*) FROM edges), start_after = '9999-12-31T00:00:00Z'
WHERE id = %(id)s::uuid
RETURNING id::text;

-- name: get_relatives
-- The jobs `id` depends on (up: its parents) or that depend on it (its children), hot or archived.
SELECT {{job_columns}}
FROM {{schema}}.any_job
WHERE id IN (
    SELECT parent FROM {{schema}}.dependency WHERE %(up)s AND child = %(id)s::uuid
    UNION ALL
    SELECT child FROM {{schema}}.dependency WHERE NOT %(up)s AND parent = %(id)s::uuid)
ORDER BY created_on, id;

-- fragment: resolve_dependents
-- Not a query: the CTE that complete and complete_each put after `done` (the ids they completed)
-- (the placeholder resolve_dependents in braces). Each job waiting for some of them counts them off; the one whose
-- count reaches 0 becomes ready now. Two parents completed at once by two workers update the
-- child one after the other (its row lock), the second seeing the first's count: it starts once.
-- With no flow in use this is one probe of an empty index per batch.
resolved AS (
    -- Children found by primary key (as complete finds its jobs), whatever the statistics say. The
    -- state is tested as `(...) IS TRUE` so that no partial index's predicate follows from it: with a
    -- plain `c.state < 'active'` the planner may walk the whole of job_fetch instead, which under a
    -- held snapshot keeps an entry for every job claimed since: every complete grew with them.
    UPDATE {{schema}}.job c SET (parents_left, start_after) = (
        SELECT c.parents_left - k.n, CASE WHEN c.parents_left - k.n <= 0 THEN now() ELSE c.start_after END
        FROM (SELECT count(*) AS n FROM {{schema}}.dependency dep
              WHERE dep.child = c.id AND dep.parent = ANY(ARRAY(SELECT id FROM done))) k)
    WHERE c.id = ANY(ARRAY(
            SELECT dep.child FROM {{schema}}.dependency dep WHERE dep.parent = ANY(ARRAY(SELECT id FROM done))))
      AND (c.state < 'active') IS TRUE AND c.parents_left IS NOT NULL
)

-- fragment: cancel_below
-- Not a query: the CTEs that fail and cancel put after `ended` (ids of jobs that will never
-- complete), the placeholder cancel_below in braces, in a WITH RECURSIVE: every job waiting for one of them, directly
-- or through others, is cancelled, saying which job it waited for.
below AS (
    SELECT d.child, d.parent AS cause FROM {{schema}}.dependency d JOIN ended e ON d.parent = e.id
    UNION
    SELECT d.child, b.cause FROM {{schema}}.dependency d JOIN below b ON d.parent = b.child
), cancelled_below AS (
    UPDATE {{schema}}.job j SET
        state = 'cancelled',
        completed_on = now(),
        output = (SELECT jsonb_build_object(
                     'message', 'a job it depends on will not complete: ' || min(b.cause::text),
                     'type', 'DependencyFailed', 'parent', min(b.cause::text))
                  FROM below b WHERE b.child = j.id)
    WHERE j.id = ANY(ARRAY(SELECT child FROM below)) AND (j.state < 'active') IS TRUE  -- by id (see resolved)
    RETURNING j.batch_id
)
