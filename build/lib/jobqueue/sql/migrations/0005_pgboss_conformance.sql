-- What pg-boss 12 does, where a pg-boss user relies on it (tests/conformance
-- runs both side by side).
--
-- fail() takes queued jobs too (created or retry), as pg-boss's does: a created
-- job with attempts left goes to retry.
DROP TRIGGER job_state_transition ON {{schema}}.job;
CREATE TRIGGER job_state_transition AFTER UPDATE OF state ON {{schema}}.job
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state AND NOT CASE OLD.state
        WHEN 'created' THEN NEW.state IN ('active', 'retry', 'cancelled', 'failed')
        WHEN 'retry' THEN NEW.state IN ('active', 'cancelled', 'failed')
        WHEN 'active' THEN NEW.state IN ('completed', 'retry', 'failed', 'cancelled')
        WHEN 'failed' THEN NEW.state = 'created'
        WHEN 'cancelled' THEN NEW.state = 'created'
        ELSE false
    END)
    EXECUTE FUNCTION {{schema}}.refuse_transition();

-- Backoff as pg-boss computes it: retry n waits between 1x and 2x of
-- retry_delay * 2^(n-1) (retry_delay a minimum, at least 1 s), capped by
-- retry_delay_max after the jitter.
CREATE OR REPLACE FUNCTION {{schema}}.retry_delay_seconds(
    retry_count integer, retry_delay integer, retry_backoff boolean, retry_delay_max integer, jitter double precision
) RETURNS double precision
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN NOT retry_backoff THEN retry_delay::double precision
        ELSE least(
            coalesce(retry_delay_max, 2147483647)::double precision,
            greatest(retry_delay, 1) * power(2, least(retry_count, 15))::double precision * (1 + jitter)
        )
    END
$$;

-- A throttle or debounce slot stays taken while its job is archived, until the
-- job is deleted: send looks for it here too.
CREATE INDEX archive_throttle ON {{schema}}.archive (name, singleton_on, COALESCE(singleton_key, ''))
    WHERE singleton_on IS NOT NULL AND state <> 'cancelled';
