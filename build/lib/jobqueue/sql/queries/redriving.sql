-- name: lock_dead_letters
-- The dead letters waiting in a queue (all, or `ids`), oldest first, locked for a redrive.
-- A waiting job is made active so that complete() can finish it once it has been moved.
UPDATE {{schema}}.job j SET state = 'active', started_on = now(), expire_at = now() + interval '1 hour'
WHERE j.id IN (
    SELECT d.id FROM {{schema}}.job d
    WHERE d.name = %(name)s AND d.state < 'active' AND d.origin ? 'dead_letter_of'
      AND (%(ids)s::uuid[] IS NULL OR d.id = ANY(%(ids)s::uuid[]))
    ORDER BY d.created_on, d.id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED)
RETURNING j.id::text AS id, j.data, j.origin, j.started_on;
