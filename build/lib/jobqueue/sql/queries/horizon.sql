-- name: horizon
-- Who holds the MVCC horizon back for this database, in one statement (a plain read of the
-- statistics views: it works through PgBouncer and RDS Proxy), and the dead and live rows of the
-- job table and the archive in every row (a row with no holder when nothing holds it):
--   sessions whose snapshot (backend_xmin) keeps vacuum from removing what was claimed or finished
--   since, walsenders among them (a standby with hot_standby_feedback holds it through them), the
--   `limit` oldest; held_seconds is unknown (NULL) for another role's session unless this role has
--   pg_read_all_stats;
--   replication slots with an xmin (every table) or a catalog_xmin (the catalogs);
--   prepared transactions not yet committed or rolled back: each holds it where it began.
WITH sessions AS (
    SELECT CASE WHEN a.backend_type = 'walsender' THEN 'standby (walsender)' ELSE 'session' END AS kind,
           'pid ' || a.pid AS name,
           extract(epoch FROM statement_timestamp() - a.xact_start)::double precision AS held_seconds,
           age(a.backend_xmin) AS xmin_age,
           jsonb_strip_nulls(jsonb_build_object(
               'username', nullif(a.usename, ''), 'application_name', nullif(a.application_name, ''),
               'client_addr', host(a.client_addr), 'state', nullif(a.state, ''),
               'backend_type', nullif(a.backend_type, ''))) || jsonb_build_object('writing', a.backend_xid IS NOT NULL)
               AS details
    FROM pg_stat_activity a
    WHERE a.backend_xmin IS NOT NULL
      AND a.pid <> pg_backend_pid()
      AND (a.datname = current_database() OR a.backend_type = 'walsender')
    ORDER BY age(a.backend_xmin) DESC, a.pid
    LIMIT %(limit)s
), holders AS (
    SELECT * FROM sessions
    UNION ALL
    SELECT 'replication slot', s.slot_name::text, NULL, greatest(age(s.xmin), age(s.catalog_xmin)),
           jsonb_build_object('slot_type', s.slot_type, 'active', s.active, 'database', s.database)
           || CASE WHEN s.xmin IS NULL
                   THEN jsonb_build_object('holds', 'catalog_xmin only: the catalogs, not the job tables')
                   ELSE '{}' END
    FROM pg_replication_slots s
    WHERE s.xmin IS NOT NULL OR s.catalog_xmin IS NOT NULL
    UNION ALL
    SELECT 'prepared transaction', x.gid, extract(epoch FROM statement_timestamp() - x.prepared)::double precision,
           age(x.transaction), jsonb_build_object('username', x.owner, 'database', x.database)
    FROM pg_prepared_xacts x
), counts AS (
    SELECT coalesce(sum(n_dead_tup), 0)::bigint AS dead, coalesce(sum(n_live_tup), 0)::bigint AS live
    FROM pg_stat_user_tables
    WHERE schemaname = %(schema)s AND (relname ~ '^job_(common|[0-9a-f]{24})$' OR relname ~ '^archive_')
)
SELECT c.dead, c.live, h.kind, h.name, h.held_seconds, h.xmin_age, h.details
FROM counts c LEFT JOIN holders h ON true
ORDER BY h.xmin_age DESC NULLS LAST, h.kind, h.name;
