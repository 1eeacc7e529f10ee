-- Half of each job table page is left free when jobs are sent, so that a job's fetch and its
-- completion write their new versions on the same page (schema.sql says why). Pages written
-- from now on: existing ones keep their layout until their rows are gone.
ALTER TABLE {{schema}}.job SET (fillfactor = 50);
