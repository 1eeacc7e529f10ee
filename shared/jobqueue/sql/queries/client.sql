-- name: queue_names
-- Every queue's name (an unknown queue's error suggests the closest).
SELECT name FROM {{schema}}.queue ORDER BY name;

-- name: queue_exists
-- Whether a queue exists (used to explain why a send inserted nothing).
SELECT EXISTS (SELECT 1 FROM {{schema}}.queue WHERE name = %(name)s) AS present;

-- name: queue_policy
-- A queue's policy (fetch picks its statement by it).
SELECT policy FROM {{schema}}.queue WHERE name = %(name)s;
