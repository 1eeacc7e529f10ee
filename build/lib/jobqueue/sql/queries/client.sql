-- name: queue_names
-- Every queue's name (an unknown queue's error suggests the closest).
SELECT name FROM {{schema}}.queue ORDER BY name;

-- name: queue_exists
-- Whether a queue exists (used to explain why a send inserted nothing).
SELECT EXISTS (SELECT 1 FROM {{schema}}.queue WHERE name = %(name)s) AS present;

-- name: queue_rules
-- What decides how a queue's jobs are fetched: its policy (the statements), its rate limits, its fairness.
SELECT policy, rate_limit, group_rate_limit, fairness FROM {{schema}}.queue WHERE name = %(name)s;
