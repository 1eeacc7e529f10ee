-- The dashboard counts what each queue finished in the last hour, in the hot
-- table (job_finished) and in the archive. An index on (name, completed_on)
-- serves that and every lookup by name, so it replaces the index on name alone.
DROP INDEX {{schema}}.archive_name;
CREATE INDEX archive_finished ON {{schema}}.archive (name, completed_on);
