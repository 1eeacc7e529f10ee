-- retry_count now counts the retries started (it grows when a job that ran
-- before is fetched again), as in pg-boss, instead of the retries scheduled
-- (it grew when a job failed). A job waiting for its retry under the old
-- counting has already counted it: count it again at its next fetch instead.
UPDATE {{schema}}.job SET retry_count = retry_count - 1
WHERE state = 'retry' AND started_on IS NOT NULL AND retry_count > 0;
