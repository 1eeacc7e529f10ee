-- name: lock_migrations
-- Serialise migrate() across processes; released at the end of the transaction.
SELECT pg_advisory_xact_lock(hashtextextended('jobqueue.migrate:' || %(schema)s, 0));

-- name: schema_version
-- The installed schema version, or no row when the schema is not installed.
SELECT max(version) AS version FROM {{schema}}.version;

-- name: version_table_exists
-- Whether the schema holds our version table (the schema may exist but be empty).
SELECT to_regclass(%(table)s) IS NOT NULL AS present;

-- name: set_version
-- Record the schema version migrate() brought the database to.
INSERT INTO {{schema}}.version (version) VALUES (%(version)s);
