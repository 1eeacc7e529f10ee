-- name: take_lease
-- Take the named lease for `seconds`, unless another holder's has not run out yet; a row means taken.
-- The database's clock, not `now`: a lease is about real time, whatever time a test pretends.
INSERT INTO {{schema}}.lease AS l (name, holder, expires_on)
VALUES (%(name)s, %(holder)s, clock_timestamp() + make_interval(secs => %(seconds)s))
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_on = excluded.expires_on
WHERE l.expires_on <= clock_timestamp() OR l.holder = excluded.holder
RETURNING expires_on;

-- name: end_lease
-- Give up a lease taken by take_lease (a lease taken over since is not ours to end).
DELETE FROM {{schema}}.lease WHERE name = %(name)s AND holder = %(holder)s;

-- name: lock_expired
-- The active jobs past their deadline, oldest first, locked for expiry.
SELECT id::text, name, started_on FROM {{schema}}.job
WHERE expire_at < coalesce(%(now)s::timestamptz, now()) AND state = 'active'
ORDER BY expire_at
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED;

-- name: archive
-- Move up to `limit` finished jobs past their queue's archive_after into the archive, or past its
-- delete_after when that is shorter (purge then deletes them in the same maintenance run); a
-- queue that does not archive (its setting `archive`) has them deleted instead.
WITH due AS MATERIALIZED (
    SELECT d.id, q.archive
    FROM {{schema}}.queue q
    CROSS JOIN LATERAL (
        SELECT j.id FROM {{schema}}.job j
        WHERE j.name = q.name AND j.state > 'active'
          AND j.completed_on < coalesce(%(now)s::timestamptz, now())
              - make_interval(secs => least(q.archive_after, nullif(q.delete_after, 0)))
          -- A failed key_strict_fifo job blocks its key until it is retried or deleted: it stays
          -- here, where the policy's index sees it, until its delete_after (0: for good).
          AND NOT (j.policy = 'key_strict_fifo' AND j.state = 'failed' AND (j.delete_after = 0
               OR j.completed_on >= coalesce(%(now)s::timestamptz, now()) - make_interval(secs => j.delete_after)))
        ORDER BY j.completed_on
        LIMIT %(limit)s
    ) d
    LIMIT %(limit)s
), moved AS (
    -- No FOR UPDATE above: locking a row first logs a record of its own (54 bytes a job). A job
    -- changed meanwhile (retried, resumed) is rechecked against this condition on its new version
    -- and stays. The due jobs are found by primary key: the state is tested as `(...) IS TRUE`
    -- so that job_finished's predicate does not follow from it, and `due` is MATERIALIZED, or the
    -- planner may walk every finished job and look each up in `due` (seen on 10 million jobs).
    DELETE FROM {{schema}}.job j USING due WHERE j.id = due.id AND (j.state > 'active') IS TRUE
    RETURNING j.*, due.archive AS to_archive
), archived AS (
    INSERT INTO {{schema}}.archive (
        id, name, priority, data, state, policy, retry_limit, retry_count, retry_delay, retry_backoff,
        retry_delay_max, expire_in, start_after, started_on, expire_at, singleton_key, singleton_on,
        keep_until, delete_after, dead_letter, created_on, completed_on, output, origin, group_id, group_tier,
        errors, steps, progress, batch_id, delete_at
    )
    SELECT id, name, priority, data, state, policy, retry_limit, retry_count, retry_delay, retry_backoff,
           retry_delay_max, expire_in, start_after, started_on, expire_at, singleton_key, singleton_on,
           keep_until, delete_after, dead_letter, created_on, completed_on, output, origin, group_id, group_tier,
           errors, steps, progress, batch_id,
           -- delete_after 0 keeps the job for good, as in pg-boss.
           CASE WHEN delete_after = 0 THEN 'infinity'::timestamptz
                ELSE coalesce(completed_on, coalesce(%(now)s::timestamptz, now())) + make_interval(secs => delete_after)
           END
    FROM moved
    WHERE to_archive
    RETURNING 1
)
SELECT (SELECT count(*) FROM archived) AS archived,
       (SELECT count(*) FROM moved) - (SELECT count(*) FROM archived) AS deleted;

-- name: set_lock_timeout
-- How long this transaction's statements wait for a lock before giving up.
SELECT set_config('lock_timeout', %(timeout)s, true);

-- name: make_archive_days
-- The archive's day partitions from today, for as many days as the queues keep archived jobs (the
-- longest archive_after + delete_after, in whole days, and one more), at most `most` days.
SELECT {{schema}}.make_archive_days(least(%(most)s, coalesce(
    (SELECT max(ceil((archive_after + delete_after) / 86400.0))::integer + 1
     FROM {{schema}}.queue WHERE delete_after > 0), 1)));

-- name: drop_archive_days
-- Drop the archive's day partitions whose day is over; how many jobs went with them.
SELECT {{schema}}.drop_archive_days(coalesce(%(now)s::timestamptz, now()));

-- name: purge_archive
-- Delete up to `limit` archived jobs past their delete_at, oldest first, from `after` on, from the
-- partition that holds those without a day partition (the day partitions are dropped whole).
-- The caller passes the latest delete_at of its previous batch: without that
-- lower bound each batch would walk again over the index entries of every row
-- the batches before it deleted (dead, not yet vacuumed), and a long purge
-- would slow down batch after batch.
-- No FOR UPDATE: locking a row first would log a record of its own; a row deleted meanwhile
-- (retried, or its queue's jobs deleted) is passed over.
WITH doomed AS (
    SELECT ctid FROM {{schema}}.archive_other
    WHERE delete_at < coalesce(%(now)s::timestamptz, now())
      AND delete_at >= coalesce(%(after)s::timestamptz, '-infinity')
    ORDER BY delete_at
    LIMIT %(limit)s
)
DELETE FROM {{schema}}.archive_other a
WHERE a.ctid = ANY(ARRAY(SELECT ctid FROM doomed))
RETURNING a.delete_at;

-- name: trim_job_starts
-- Forget the starts that no queue's rate window holds any more: older than their queue's periods
-- (the longest allowed, a day, for a queue whose limits were removed or that was deleted).
DELETE FROM {{schema}}.job_start s
WHERE s.started_on <= coalesce(%(now)s::timestamptz, now()) - make_interval(secs => coalesce(
    (SELECT greatest((q.rate_limit ->> 'period')::integer, (q.group_rate_limit ->> 'period')::integer)
     FROM {{schema}}.queue q WHERE q.name = s.name), 86400));

-- name: trim_fair_turns
-- Forget round-robin turns older than a minute but a queue's newest, and those of queues gone.
DELETE FROM {{schema}}.fair_turn f
WHERE (f.at < statement_timestamp() - interval '1 minute'
       AND EXISTS (SELECT 1 FROM {{schema}}.fair_turn n WHERE n.name = f.name AND n.at > f.at))
   OR NOT EXISTS (SELECT 1 FROM {{schema}}.queue q WHERE q.name = f.name);

-- name: purge_batches
-- Forget batches that finished longer ago than their queue keeps archived jobs (delete_after; a
-- week for a queue that keeps them for good or is gone), up to `limit`.
DELETE FROM {{schema}}.batch b
WHERE b.ctid = ANY(ARRAY(
    SELECT x.ctid FROM {{schema}}.batch x LEFT JOIN {{schema}}.queue q ON q.name = x.name
    WHERE x.finished_on < coalesce(%(now)s::timestamptz, now())
                          - make_interval(secs => coalesce(nullif(q.delete_after, 0), 604800))
    LIMIT %(limit)s));

-- name: purge_dependencies
-- Edges whose child is gone (deleted, or purged from the archive), up to `limit`.
DELETE FROM {{schema}}.dependency WHERE ctid IN (
    SELECT d.ctid FROM {{schema}}.dependency d
    WHERE NOT EXISTS (SELECT 1 FROM {{schema}}.job j WHERE j.id = d.child)
      AND NOT EXISTS (SELECT 1 FROM {{schema}}.archive a WHERE a.id = d.child)
    LIMIT %(limit)s);

-- name: fail_unstarted
-- Fail up to `limit` queued jobs that were not started within their retention.
-- They are failed rather than deleted so that no job disappears unseen; a key_strict_fifo job is
-- cancelled instead, so that it does not block its key (and its key's one failed job may exist).
-- Returns how many; a batch counts its jobs among them.
WITH ended AS (
    UPDATE {{schema}}.job SET
        state = CASE WHEN policy = 'key_strict_fifo' THEN 'cancelled' ELSE 'failed' END::{{schema}}.job_state,
        completed_on = coalesce(%(now)s::timestamptz, now()),
        output = jsonb_build_object('message', 'not started within its retention period', 'type', 'RetentionExpired')
    WHERE id IN (
        SELECT id FROM {{schema}}.job
        WHERE state < 'active' AND keep_until < coalesce(%(now)s::timestamptz, now())
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    )
    RETURNING batch_id, state
), finished AS (
    SELECT batch_id, state::text AS state FROM ended WHERE batch_id IS NOT NULL
), {{count_batches}}
SELECT count(*) AS ended FROM ended WHERE (SELECT count(*) FROM counted) >= 0;

-- name: stray_before_floor
-- Per queue, the first job sent straight away that is queued before its newest fetch floor, in the
-- floor's band: a job the floor passed (sent in a transaction that outlived the floor's margins,
-- or let go by a fetch that rolled back after a floor moved past it). Walks what the fetches skip.
SELECT f.name, f.priority, s.created_on, s.id
FROM (
    SELECT DISTINCT ON (ff.name) ff.name, ff.priority, ff.created_on, ff.id
    FROM {{schema}}.fetch_floor ff
    ORDER BY ff.name, ff.at DESC
) f
CROSS JOIN LATERAL (
    SELECT j.created_on, j.id FROM {{schema}}.job j
    WHERE j.name = f.name AND j.state < 'active' AND j.priority = f.priority
      AND (j.created_on, j.id) < (f.created_on, f.id)
      AND j.start_after <= j.created_on
    ORDER BY j.created_on, j.id
    LIMIT 1
) s;

-- name: lower_fetch_floor
-- A fetch floor at a stray job's place: the next fetch of its queue walks from there.
INSERT INTO {{schema}}.fetch_floor (name, priority, created_on, id)
VALUES (%(name)s, %(priority)s, %(created_on)s, %(id)s);

-- name: trim_fetch_floors
-- Forget fetch floors older than a minute but a queue's newest, and those of queues gone.
DELETE FROM {{schema}}.fetch_floor f
WHERE (f.at < statement_timestamp() - interval '1 minute'
       AND EXISTS (SELECT 1 FROM {{schema}}.fetch_floor n WHERE n.name = f.name AND n.at > f.at))
   OR NOT EXISTS (SELECT 1 FROM {{schema}}.queue q WHERE q.name = f.name);

-- name: history_mark
-- Up to where the queues' history is recorded (none yet: no row).
SELECT recorded_through FROM {{schema}}.history_mark;

-- name: record_history
-- The queues' history (schema.sql: queue_history) for the minutes in [`from`, `to`), and the mark
-- moved to `to`, in one statement. Each count comes from an index range: finished jobs by
-- (name, completed_on) in the job table and the archive, attempts started from the jobs finished
-- since `from` and the active ones (job_expire), sends by their ids (the primary keys). Recording
-- a minute again gives the same counts (expired, written by expiry, is kept).
WITH range AS MATERIALIZED (
    SELECT %(from)s::timestamptz AS lo, %(to)s::timestamptz AS hi
), finished AS MATERIALIZED (
    SELECT f.name, f.state, f.completed_on, f.started_on, f.start_after FROM {{schema}}.queue q
    CROSS JOIN LATERAL (
        SELECT j.name, j.state, j.completed_on, j.started_on, j.start_after FROM {{schema}}.job j
        WHERE j.name = q.name AND j.state > 'active' AND j.completed_on >= (SELECT lo FROM range)
        UNION ALL
        SELECT a.name, a.state, a.completed_on, a.started_on, a.start_after FROM {{schema}}.archive a
        WHERE a.name = q.name AND a.completed_on >= (SELECT lo FROM range)
    ) f
), ended AS (
    SELECT f.name, date_trunc('minute', f.completed_on) AS minute,
           count(*) FILTER (WHERE f.state = 'completed') AS completed,
           count(*) FILTER (WHERE f.state = 'failed') AS failed,
           count(*) FILTER (WHERE f.state = 'cancelled') AS cancelled,
           percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (
               ORDER BY extract(epoch FROM f.completed_on - f.started_on))
               FILTER (WHERE f.started_on IS NOT NULL) AS run
    FROM finished f
    WHERE f.completed_on < (SELECT hi FROM range)
    GROUP BY 1, 2
), starts AS (
    SELECT s.name, date_trunc('minute', s.started_on) AS minute, count(*) AS started,
           percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (
               ORDER BY greatest(0, extract(epoch FROM s.started_on - s.start_after))) AS wait
    FROM (
        SELECT f.name, f.started_on, f.start_after FROM finished f
        UNION ALL
        SELECT j.name, j.started_on, j.start_after FROM {{schema}}.job j WHERE j.expire_at IS NOT NULL
    ) s
    WHERE s.started_on >= (SELECT lo FROM range) AND s.started_on < (SELECT hi FROM range)
    GROUP BY 1, 2
), sends AS (
    SELECT s.name, date_trunc('minute', {{schema}}.uuid_v7_time(s.id)) AS minute, count(*) AS sent
    FROM (
        SELECT j.name, j.id FROM {{schema}}.job j
        WHERE j.id >= {{schema}}.uuid_v7_floor((SELECT lo FROM range))
          AND j.id < {{schema}}.uuid_v7_floor((SELECT hi FROM range))
        UNION ALL
        SELECT a.name, a.id FROM {{schema}}.archive a
        WHERE a.id >= {{schema}}.uuid_v7_floor((SELECT lo FROM range))
          AND a.id < {{schema}}.uuid_v7_floor((SELECT hi FROM range))
    ) s
    GROUP BY 1, 2
), rows AS (
    SELECT coalesce(e.name, st.name, se.name) AS name, coalesce(e.minute, st.minute, se.minute) AS minute,
           coalesce(se.sent, 0) AS sent, coalesce(st.started, 0) AS started,
           coalesce(e.completed, 0) AS completed, coalesce(e.failed, 0) AS failed,
           coalesce(e.cancelled, 0) AS cancelled, st.wait, e.run
    FROM ended e
    FULL JOIN starts st ON st.name = e.name AND st.minute = e.minute
    FULL JOIN sends se ON se.name = coalesce(e.name, st.name) AND se.minute = coalesce(e.minute, st.minute)
), written AS (
    INSERT INTO {{schema}}.queue_history AS h (
        name, minute, sent, started, completed, failed, cancelled,
        wait_p50, wait_p95, wait_p99, run_p50, run_p95, run_p99)
    SELECT r.name, r.minute, r.sent, r.started, r.completed, r.failed, r.cancelled,
           r.wait[1], r.wait[2], r.wait[3], r.run[1], r.run[2], r.run[3]
    FROM rows r
    ON CONFLICT (name, minute) DO UPDATE SET
        sent = excluded.sent, started = excluded.started, completed = excluded.completed,
        failed = excluded.failed, cancelled = excluded.cancelled,
        wait_p50 = excluded.wait_p50, wait_p95 = excluded.wait_p95, wait_p99 = excluded.wait_p99,
        run_p50 = excluded.run_p50, run_p95 = excluded.run_p95, run_p99 = excluded.run_p99
    RETURNING 1
), marked AS (
    INSERT INTO {{schema}}.history_mark (only_row, recorded_through) VALUES (true, (SELECT hi FROM range))
    ON CONFLICT (only_row) DO UPDATE SET recorded_through = excluded.recorded_through
)
SELECT count(*) AS minutes FROM written;

-- name: count_expired
-- Attempts that expiry ended, per queue, in the minute of `now` (schema.sql: queue_history).
INSERT INTO {{schema}}.queue_history AS h (name, minute, expired)
SELECT name, date_trunc('minute', coalesce(%(now)s::timestamptz, statement_timestamp())), count(*)
FROM unnest(%(names)s::text[]) AS t(name)
GROUP BY name
ON CONFLICT (name, minute) DO UPDATE SET expired = h.expired + excluded.expired;

-- name: purge_history
-- Forget the queues' history older than `before`.
DELETE FROM {{schema}}.queue_history WHERE minute < %(before)s::timestamptz;
