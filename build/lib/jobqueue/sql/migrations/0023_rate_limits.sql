-- Rate-limited queues (the queue setting rate_limit) and the starts their fetches record
-- (schema.sql says how the limit is enforced). Existing queues have no limit.
ALTER TABLE {{schema}}.queue ADD COLUMN rate_limit jsonb CONSTRAINT queue_rate_limit_check CHECK (
    rate_limit IS NULL OR ((rate_limit ->> 'limit')::integer >= 1 AND (rate_limit ->> 'period')::integer >= 1));

CREATE TABLE {{schema}}.job_start (
    name text NOT NULL,
    started_on timestamptz NOT NULL,
    jobs integer NOT NULL CHECK (jobs > 0)
);
CREATE INDEX job_start_window ON {{schema}}.job_start (name, started_on);
