-- name: subscribe
-- Subscribe a queue to an event: publish sends it a job of every event published from now on.
-- No row when the queue does not exist. Subscribing again changes nothing but updated_on.
INSERT INTO {{schema}}.subscription AS s (event, name)
SELECT %(event)s, q.name FROM {{schema}}.queue q WHERE q.name = %(name)s
ON CONFLICT (event, name) DO UPDATE SET updated_on = now()
RETURNING s.name;

-- name: unsubscribe
-- A queue's subscription to an event, ended; no row when it had none.
DELETE FROM {{schema}}.subscription WHERE event = %(event)s AND name = %(name)s
RETURNING name;

-- name: subscriptions
-- The subscriptions, by event then queue (of one event, or all).
SELECT event, name, created_on, updated_on FROM {{schema}}.subscription
WHERE event = %(event)s OR %(event)s::text IS NULL
ORDER BY event, name;

-- name: publish
-- Send one job to every queue subscribed to an event (subscribe, below),
-- as `send` sends one, in one statement: each queue's settings for the options not given; a
-- queue whose policy or throttle refuses the job is passed over. Returns the jobs sent.
INSERT INTO {{schema}}.job ({{sent_columns}})
SELECT {{schema}}.uuid_v7(), {{sent_values}}
FROM {{schema}}.subscription e
JOIN {{schema}}.queue q ON q.name = e.name
{{send_slot}}
WHERE e.event = %(event)s
  {{send_checks}}
ON CONFLICT DO NOTHING
RETURNING id::text, name;
