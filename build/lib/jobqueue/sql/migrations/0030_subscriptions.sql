-- Publish/subscribe: the queues subscribed to each event (schema.sql says how).
-- Publish/subscribe (jobqueue/publishing.py), as pg-boss: a queue subscribed to an event gets a
-- job of every event published, in the statement that publishes it. A queue's subscriptions go
-- with it.
CREATE TABLE {{schema}}.subscription (
    event text NOT NULL CHECK (event <> ''),
    name text NOT NULL REFERENCES {{schema}}.queue (name) ON DELETE CASCADE,
    created_on timestamptz NOT NULL DEFAULT now(),
    updated_on timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event, name)
);
