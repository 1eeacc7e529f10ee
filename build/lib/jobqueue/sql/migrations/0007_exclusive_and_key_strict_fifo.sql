-- Two policies of pg-boss 11-12.
--   exclusive:       at most one job per key queued or active (created, retry, active);
--   key_strict_fifo: every job has a key; a key's jobs run one at a time in the order
--                    they were sent, and a key whose job failed is blocked until that
--                    job is retried or deleted (at most one job per key active, waiting
--                    for its retry, or failed).
ALTER TABLE {{schema}}.queue DROP CONSTRAINT queue_policy_check;
ALTER TABLE {{schema}}.queue ADD CONSTRAINT queue_policy_check
    CHECK (policy IN ('standard', 'short', 'singleton', 'stately', 'exclusive', 'key_strict_fifo'));

ALTER TABLE {{schema}}.job ADD CONSTRAINT job_strict_fifo_key
    CHECK (policy <> 'key_strict_fifo' OR singleton_key IS NOT NULL);

CREATE UNIQUE INDEX job_exclusive ON {{schema}}.job (name, COALESCE(singleton_key, ''))
    WHERE policy = 'exclusive' AND state <= 'active';
CREATE UNIQUE INDEX job_strict_fifo ON {{schema}}.job (name, singleton_key)
    WHERE policy = 'key_strict_fifo' AND state IN ('active', 'retry', 'failed');
-- The next job of each key, in the order fetch takes it (a retry before the jobs sent after it).
CREATE INDEX job_fifo ON {{schema}}.job (name, singleton_key, state DESC, created_on, id)
    WHERE policy = 'key_strict_fifo' AND state < 'active';
