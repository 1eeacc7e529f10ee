-- name: horizon_sessions
-- The sessions that hold the MVCC horizon back for this database, oldest first: their snapshot
-- (backend_xmin) keeps vacuum from removing what was claimed or finished since. Walsenders too: a
-- standby with hot_standby_feedback holds it through them. held_seconds is unknown (NULL) for
-- another role's session unless this role has pg_read_all_stats.
SELECT a.pid, a.usename AS username, a.application_name, host(a.client_addr) AS client_addr, a.state,
       a.backend_type, a.backend_xid IS NOT NULL AS writing,
       extract(epoch FROM statement_timestamp() - a.xact_start)::double precision AS held_seconds,
       age(a.backend_xmin) AS xmin_age
FROM pg_stat_activity a
WHERE a.backend_xmin IS NOT NULL
  AND a.pid <> pg_backend_pid()
  AND (a.datname = current_database() OR a.backend_type = 'walsender')
ORDER BY age(a.backend_xmin) DESC, a.pid
LIMIT %(limit)s;

-- name: horizon_slots
-- The replication slots that hold the horizon back (xmin: every table; catalog_xmin: the catalogs).
SELECT slot_name, slot_type, active, database, age(xmin) AS xmin_age, age(catalog_xmin) AS catalog_xmin_age
FROM pg_replication_slots
WHERE xmin IS NOT NULL OR catalog_xmin IS NOT NULL
ORDER BY greatest(age(xmin), age(catalog_xmin)) DESC, slot_name;

-- name: horizon_prepared
-- Prepared transactions not yet committed or rolled back: each holds the horizon where it began.
SELECT gid, owner AS username, database,
       extract(epoch FROM statement_timestamp() - prepared)::double precision AS held_seconds,
       age(transaction) AS xmin_age
FROM pg_prepared_xacts
ORDER BY prepared, gid;

-- name: dead_job_tuples
-- Dead and live rows of the job table and the archive, as the statistics collector counts them.
SELECT coalesce(sum(n_dead_tup), 0)::bigint AS dead, coalesce(sum(n_live_tup), 0)::bigint AS live
FROM pg_stat_user_tables
WHERE schemaname = %(schema)s AND relname IN ('job', 'archive');
