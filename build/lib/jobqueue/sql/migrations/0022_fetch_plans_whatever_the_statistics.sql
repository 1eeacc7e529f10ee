-- The fetch functions plan without sequential and bitmap scans (schema.sql says why): a job
-- table analyzed while nearly empty made every fetch of a session scan the whole table.
ALTER FUNCTION {{schema}}.fetch_jobs(text, integer, timestamptz, timestamptz)
    SET enable_seqscan = off SET enable_bitmapscan = off;
ALTER FUNCTION {{schema}}.lock_keys(text, integer, timestamptz)
    SET enable_seqscan = off SET enable_bitmapscan = off;
ALTER FUNCTION {{schema}}.lock_fifo_window(text, integer, integer, timestamptz)
    SET enable_seqscan = off SET enable_bitmapscan = off;
ALTER FUNCTION {{schema}}.lock_groups(text, integer, timestamptz, jsonb, integer)
    SET enable_seqscan = off SET enable_bitmapscan = off;
