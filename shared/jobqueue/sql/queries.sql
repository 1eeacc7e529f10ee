-- Every statement the queue runs, each under a "-- name: <name>" header and a
-- one-line description. Loaded once at import by jobqueue/sqlfiles.py;
-- {{schema}} is replaced by the validated, quoted schema name.
--
-- Where a statement needs the current time it takes %(now)s and falls back to
-- the database clock: tests pass `now` instead of sleeping.

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

-- name: create_queue
-- Create a queue from all its settings (one JSON object); an existing queue of that name is left as it is.
-- {{queue_settings}} is the column list of the settings declared in jobqueue/settings.py.
INSERT INTO {{schema}}.queue (name, {{queue_settings}})
SELECT %(name)s, {{queue_settings}}
FROM jsonb_populate_record(NULL::{{schema}}.queue, %(settings)s::jsonb)
ON CONFLICT (name) DO NOTHING
RETURNING name;

-- name: update_queue
-- Change the settings present in `changes` (a JSON object); the others keep their values.
-- jsonb_populate_record over the row itself replaces exactly the keys given.
UPDATE {{schema}}.queue AS q
SET ({{queue_settings}}, updated_on) = (
    SELECT {{queue_settings}}, now() FROM jsonb_populate_record(q, %(changes)s::jsonb)
)
WHERE q.name = %(name)s
RETURNING q.name;

-- name: get_queue
-- One queue's settings.
SELECT name, {{queue_settings}}, created_on, updated_on, paused
FROM {{schema}}.queue WHERE name = %(name)s;

-- name: get_queues
-- Every queue's settings, by name.
SELECT name, {{queue_settings}}, created_on, updated_on, paused
FROM {{schema}}.queue ORDER BY name;

-- name: set_paused
-- Pause or resume a queue; no row when there is no such queue.
UPDATE {{schema}}.queue SET paused = %(paused)s, updated_on = now() WHERE name = %(name)s RETURNING name;

-- name: queue_names
-- Every queue's name (an unknown queue's error suggests the closest).
SELECT name FROM {{schema}}.queue ORDER BY name;

-- name: queue_exists
-- Whether a queue exists (used to explain why a send inserted nothing).
SELECT EXISTS (SELECT 1 FROM {{schema}}.queue WHERE name = %(name)s) AS present;

-- name: queue_policy
-- A queue's policy (fetch picks its statement by it).
SELECT policy FROM {{schema}}.queue WHERE name = %(name)s;

-- name: dead_letter_users
-- The queues that use this queue as their dead letter queue.
SELECT name FROM {{schema}}.queue WHERE dead_letter = %(name)s ORDER BY name;

-- name: delete_queue
-- Delete a queue with its jobs, archived jobs and schedules.
WITH jobs AS (
    DELETE FROM {{schema}}.job WHERE name = %(name)s RETURNING 1
), archived AS (
    DELETE FROM {{schema}}.archive WHERE name = %(name)s RETURNING 1
)
DELETE FROM {{schema}}.queue WHERE name = %(name)s
RETURNING name, (SELECT count(*) FROM jobs) + (SELECT count(*) FROM archived) AS jobs;

-- name: send_plain
-- Insert one job with every option from its queue, into a queue whose policy
-- cannot refuse it (standard, singleton): the common case, kept lean. The id
-- comes from the sender (jobqueue/ids.py), so no RETURNING: one row affected
-- means sent, none that the queue does not exist. Without ON CONFLICT, a
-- policy changed meanwhile shows as a unique violation, and the caller falls
-- back to send_plain_checked.
INSERT INTO {{schema}}.job (
    id, name, data, policy, retry_limit, retry_delay, retry_backoff, retry_delay_max,
    expire_in, keep_until, delete_after, dead_letter
)
SELECT %(id)s::uuid, q.name, %(data)s::jsonb, q.policy, q.retry_limit, q.retry_delay, q.retry_backoff,
       q.retry_delay_max, q.expire_in, now() + make_interval(secs => q.retention), q.delete_after, q.dead_letter
FROM {{schema}}.queue q
WHERE q.name = %(name)s;

-- name: send_plain_checked
-- As send_plain, for a queue whose policy may refuse the job (short, stately): no row affected when it does.
INSERT INTO {{schema}}.job (
    id, name, data, policy, retry_limit, retry_delay, retry_backoff, retry_delay_max,
    expire_in, keep_until, delete_after, dead_letter
)
SELECT %(id)s::uuid, q.name, %(data)s::jsonb, q.policy, q.retry_limit, q.retry_delay, q.retry_backoff,
       q.retry_delay_max, q.expire_in, now() + make_interval(secs => q.retention), q.delete_after, q.dead_letter
FROM {{schema}}.queue q
WHERE q.name = %(name)s
ON CONFLICT DO NOTHING;

-- name: send
-- Insert one job, unset options taken from its queue; its id comes from the sender. No
-- row is affected when the queue (or the dead letter queue) does not exist or a policy
-- or throttle index rejects the job.
INSERT INTO {{schema}}.job (
    id, name, priority, data, policy, retry_limit, retry_delay, retry_backoff, retry_delay_max,
    expire_in, start_after, singleton_key, singleton_on, keep_until, delete_after, dead_letter, origin,
    group_id, group_tier
)
SELECT
    %(id)s::uuid,
    q.name,
    coalesce(%(priority)s::integer, 0),
    %(data)s::jsonb,
    q.policy,
    coalesce(%(retry_limit)s::integer, q.retry_limit),
    coalesce(%(retry_delay)s::integer, q.retry_delay),
    coalesce(%(retry_backoff)s::boolean, q.retry_backoff),
    coalesce(%(retry_delay_max)s::integer, q.retry_delay_max),
    coalesce(%(expire_in)s::integer, q.expire_in),
    t.start_after,
    %(singleton_key)s::text,
    t.singleton_on,
    t.start_after + make_interval(secs => coalesce(%(retention)s::integer, q.retention)),
    coalesce(%(delete_after)s::integer, q.delete_after),
    coalesce(%(dead_letter)s::text, q.dead_letter),
    %(origin)s::jsonb,
    %(group_id)s::text,
    %(group_tier)s::text
FROM {{schema}}.queue q
CROSS JOIN LATERAL (
    -- A debounced job that lost its slot goes into the next slot and starts
    -- when that slot begins.
    SELECT greatest(s.requested, coalesce(s.slot, s.requested)) AS start_after, s.slot AS singleton_on
    FROM (
        SELECT
            coalesce(%(start_after)s::timestamptz, now() + make_interval(secs => coalesce(%(start_in)s::double precision, 0))) AS requested,
            to_timestamp(
                floor(extract(epoch FROM now()) / %(singleton_seconds)s::integer) * %(singleton_seconds)s::integer
                + coalesce(%(singleton_offset)s::integer, 0)
            ) AS slot
    ) s
) t
WHERE q.name = %(name)s
  AND (%(dead_letter)s::text IS NULL OR EXISTS (SELECT 1 FROM {{schema}}.queue d WHERE d.name = %(dead_letter)s::text))
  -- A slot stays taken while its job is archived (the unique index covers the hot table only).
  AND (t.singleton_on IS NULL OR NOT EXISTS (
      SELECT 1 FROM {{schema}}.archive a
      WHERE a.name = q.name AND a.singleton_on = t.singleton_on AND a.state <> 'cancelled'
        AND coalesce(a.singleton_key, '') = coalesce(%(singleton_key)s::text, '')))
ON CONFLICT DO NOTHING;

-- name: insert_data
-- Insert a batch of jobs given only as data (a JSON array), every option from the queue: the common case, kept lean.
INSERT INTO {{schema}}.job (
    name, data, policy, retry_limit, retry_delay, retry_backoff, retry_delay_max,
    expire_in, keep_until, delete_after, dead_letter
)
SELECT q.name, d.value, q.policy, q.retry_limit, q.retry_delay, q.retry_backoff, q.retry_delay_max,
       q.expire_in, now() + make_interval(secs => q.retention), q.delete_after, q.dead_letter
FROM {{schema}}.queue q
CROSS JOIN LATERAL jsonb_array_elements(%(data)s::jsonb) AS d
WHERE q.name = %(name)s
ON CONFLICT DO NOTHING
RETURNING id::text;

-- name: copy_queue
-- What a batch going in by COPY takes from its queue (jobqueue/rows.py computes each row from it, as
-- the insert statement does in SQL), and the batch transaction's now(); no row for an unknown queue.
SELECT q.name, q.policy, q.retry_limit, q.retry_delay, q.retry_backoff, q.retry_delay_max, q.expire_in,
       q.retention, q.delete_after, q.dead_letter, now() AS now
FROM {{schema}}.queue q
WHERE q.name = %(name)s;

-- name: copy_jobs
-- A batch of jobs by COPY: id and data, then jobqueue/rows.py's COPY_COLUMNS in their order.
COPY {{schema}}.job (
    id, data, name, policy, priority, retry_limit, retry_delay, retry_backoff, retry_delay_max,
    expire_in, start_after, keep_until, delete_after, dead_letter, group_id, group_tier, singleton_key
) FROM STDIN;

-- name: insert
-- Insert a batch of jobs given as one JSON array, in one statement: all or nothing,
-- except the jobs a policy or throttle index rejects, which are skipped.
INSERT INTO {{schema}}.job (
    id, name, priority, data, policy, retry_limit, retry_delay, retry_backoff, retry_delay_max,
    expire_in, start_after, singleton_key, singleton_on, keep_until, delete_after, dead_letter,
    group_id, group_tier
)
SELECT
    coalesce(j.id, {{schema}}.uuid_v7()),
    q.name,
    coalesce(j.priority, 0),
    j.data,
    q.policy,
    coalesce(j.retry_limit, q.retry_limit),
    coalesce(j.retry_delay, q.retry_delay),
    coalesce(j.retry_backoff, q.retry_backoff),
    coalesce(j.retry_delay_max, q.retry_delay_max),
    coalesce(j.expire_in, q.expire_in),
    t.start_after,
    j.singleton_key,
    t.singleton_on,
    t.start_after + make_interval(secs => coalesce(j.retention, q.retention)),
    coalesce(j.delete_after, q.delete_after),
    coalesce(j.dead_letter, q.dead_letter),
    j.group_id,
    j.group_tier
FROM {{schema}}.queue q
CROSS JOIN LATERAL json_to_recordset(%(jobs)s::json) AS j(
    id uuid, priority integer, data jsonb, retry_limit integer, retry_delay integer,
    retry_backoff boolean, retry_delay_max integer, expire_in integer, start_after timestamptz,
    start_in double precision, singleton_key text, singleton_seconds integer, retention integer,
    delete_after integer, dead_letter text, group_id text, group_tier text
)
CROSS JOIN LATERAL (
    SELECT
        coalesce(j.start_after, now() + make_interval(secs => coalesce(j.start_in, 0))) AS start_after,
        to_timestamp(floor(extract(epoch FROM now()) / j.singleton_seconds) * j.singleton_seconds) AS singleton_on
) t
WHERE q.name = %(name)s
  AND (t.singleton_on IS NULL OR NOT EXISTS (
      SELECT 1 FROM {{schema}}.archive a
      WHERE a.name = q.name AND a.singleton_on = t.singleton_on AND a.state <> 'cancelled'
        AND coalesce(a.singleton_key, '') = coalesce(j.singleton_key, '')))
ON CONFLICT DO NOTHING
RETURNING id::text;

-- name: fetch
-- Claim up to `limit` queued jobs of a standard or short queue, in priority order, in one statement.
--
-- The CTE is MATERIALIZED so the planner cannot fold it into the UPDATE:
-- LIMIT with FOR UPDATE SKIP LOCKED must run exactly once, or concurrent
-- fetchers could claim the same row. Rows another fetcher holds are skipped,
-- never waited for. The UPDATE finds the claimed rows with `id = ANY(ARRAY(...))`
-- rather than a join: a join's plan depends on the LIMIT's value, which made
-- Postgres plan the statement anew at every call (its generic plan hashed the
-- whole table); this form has one good plan, prepared once.
WITH next AS MATERIALIZED (
    SELECT j.id
    FROM {{schema}}.job j
    WHERE j.name = %(name)s
      AND j.state < 'active'
      AND j.start_after <= coalesce(%(now)s::timestamptz, now())
      -- A paused queue gives nothing (a one-time check of its row, not one per job).
      AND NOT EXISTS (SELECT 1 FROM {{schema}}.queue p WHERE p.name = %(name)s AND p.paused)
    ORDER BY j.priority DESC, j.created_on, j.id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE {{schema}}.job j SET
    state = 'active',
    -- retry_count counts the retries started, as in pg-boss: a job that ran before is on a retry.
    retry_count = j.retry_count + (j.started_on IS NOT NULL)::integer,
    started_on = coalesce(%(now)s::timestamptz, now()),
    expire_at = least(
        coalesce(%(now)s::timestamptz, now()) + make_interval(secs => j.expire_in),
        %(deadline)s::timestamptz
    )
WHERE j.id = ANY(ARRAY(SELECT id FROM next))
RETURNING j.id::text, j.name, j.data, j.priority, j.retry_count, j.retry_limit,
          j.started_on, j.expire_at, j.created_on, j.singleton_key, j.origin;

-- name: lock_keys
-- Keyed fetch (singleton and stately queues), first step: choose the next job of as many keys as
-- wanted, taking each key's transaction-level advisory lock without waiting; keys another fetcher
-- holds are passed over.
--
-- Only a fetcher holding a key's lock activates a job of that key, and it holds the lock until it
-- commits. So once this step holds a key, a statement that starts afterwards (claim_keyed) sees
-- every activation of it: that statement never touches a job another fetcher has claimed, and
-- never waits on its completion. Done in one statement, a fetcher whose snapshot predated another
-- fetcher's commit locked the job that fetcher had just claimed (the row lock of a rejected recheck
-- outlives the recheck), then waited on another job's completion while that completion waited on
-- the lock: a deadlock Postgres broke by cancelling one of them.
WITH candidates AS MATERIALIZED (
    SELECT j.id, j.policy, coalesce(j.singleton_key, '') AS key, j.priority, j.created_on
    FROM {{schema}}.job j
    WHERE j.name = %(name)s
      AND j.state < 'active'
      AND j.start_after <= coalesce(%(now)s::timestamptz, now())
      AND NOT EXISTS (SELECT 1 FROM {{schema}}.queue p WHERE p.name = %(name)s AND p.paused)
      -- Jobs keep the policy they were sent under; each policy's check is written out so
      -- that the planner can use the policy index (its predicate names the policies).
      AND NOT (
          (j.policy = 'singleton' AND EXISTS (
              SELECT 1 FROM {{schema}}.job a
              WHERE a.name = j.name AND a.state = 'active' AND a.policy = 'singleton'
                AND coalesce(a.singleton_key, '') = coalesce(j.singleton_key, '')))
          OR (j.policy = 'stately' AND EXISTS (
              SELECT 1 FROM {{schema}}.job a
              WHERE a.name = j.name AND a.state = 'active' AND a.policy = 'stately'
                AND coalesce(a.singleton_key, '') = coalesce(j.singleton_key, '')))
      )
      AND pg_try_advisory_xact_lock(
          hashtextextended('{{schema}}.key:' || j.name || ':' || coalesce(j.singleton_key, ''), 0))
    ORDER BY j.priority DESC, j.created_on, j.id
    LIMIT %(limit)s
)
SELECT id FROM (
    SELECT c.id, c.policy,
           row_number() OVER (PARTITION BY c.policy, c.key ORDER BY c.priority DESC, c.created_on, c.id) AS n
    FROM candidates c
) ranked
WHERE policy NOT IN ('singleton', 'stately') OR n = 1;

-- name: lock_fifo_window
-- Keyed fetch of a key_strict_fifo queue, first step, fast path: walk the first `window` ready
-- jobs in fetch order (the fetch index, as a standard fetch does) and take each job that is its
-- key's next job (one probe of the fifo index) on a key with nothing active, in retry or failed
-- (one probe of the strict-fifo index), trying the key's lock only then (CASE fixes the order),
-- until `limit` are locked. `seen` is how many jobs the window held: when it held `window` and
-- fewer than `limit` jobs were taken, heads may lie beyond it and lock_fifo_heads, which visits
-- every key, takes over. The window keeps the statement's cost, and so its plan, independent of
-- the backlog's size.
SELECT c.id, c.seen FROM (
    SELECT w.*, count(*) OVER () AS seen FROM (
        SELECT j.id, j.singleton_key FROM {{schema}}.job j
        WHERE j.name = %(name)s AND j.state < 'active'
          AND j.start_after <= coalesce(%(now)s::timestamptz, now())
          AND NOT EXISTS (SELECT 1 FROM {{schema}}.queue p WHERE p.name = %(name)s AND p.paused)
        ORDER BY j.priority DESC, j.created_on, j.id
        LIMIT %(window)s
    ) w
) c
WHERE CASE
    WHEN c.id = (
        SELECT e.id FROM {{schema}}.job e
        WHERE e.name = %(name)s AND e.policy = 'key_strict_fifo' AND e.singleton_key = c.singleton_key
          AND e.state < 'active' AND e.start_after <= coalesce(%(now)s::timestamptz, now())
        ORDER BY e.state DESC, e.created_on, e.id
        LIMIT 1)
    AND NOT EXISTS (
        SELECT 1 FROM {{schema}}.job b
        WHERE b.name = %(name)s AND b.singleton_key = c.singleton_key AND b.policy = 'key_strict_fifo'
          AND b.state IN ('active', 'retry', 'failed') AND b.id <> c.id)
    THEN pg_try_advisory_xact_lock(hashtextextended('{{schema}}.key:' || %(name)s || ':' || c.singleton_key, 0))
    ELSE false
END
LIMIT %(limit)s;

-- name: lock_fifo_heads
-- Keyed fetch of a key_strict_fifo queue, first step when lock_fifo_window's window held too few
-- heads: the next job of as many keys as wanted, each
-- key's advisory lock taken without waiting (as lock_keys). A key's next job is its job waiting for
-- a retry, else its oldest ready job; a key with a job active, waiting for its retry or failed
-- (blocked) has none to give, unless that job is the retry itself.
--
-- The keys are enumerated by skipping through the fifo index (one probe per key, not a scan of
-- every queued job), and each key's next job is the first ready one in that index's order.
WITH RECURSIVE keys AS (
    (SELECT k.singleton_key FROM {{schema}}.job k
     WHERE k.name = %(name)s AND k.policy = 'key_strict_fifo' AND k.state < 'active'
       AND NOT EXISTS (SELECT 1 FROM {{schema}}.queue p WHERE p.name = %(name)s AND p.paused)
     ORDER BY k.singleton_key LIMIT 1)
    UNION ALL
    SELECT (SELECT k.singleton_key FROM {{schema}}.job k
            WHERE k.name = %(name)s AND k.policy = 'key_strict_fifo' AND k.state < 'active'
              AND k.singleton_key > keys.singleton_key
            ORDER BY k.singleton_key LIMIT 1)
    FROM keys WHERE keys.singleton_key IS NOT NULL
), heads AS MATERIALIZED (
    SELECT h.id, h.singleton_key, h.priority, h.created_on
    FROM keys
    CROSS JOIN LATERAL (
        SELECT j.id, j.singleton_key, j.priority, j.created_on FROM {{schema}}.job j
        WHERE j.name = %(name)s AND j.policy = 'key_strict_fifo' AND j.state < 'active'
          AND j.singleton_key = keys.singleton_key
          AND j.start_after <= coalesce(%(now)s::timestamptz, now())
        ORDER BY j.state DESC, j.created_on, j.id
        LIMIT 1
    ) h
    WHERE keys.singleton_key IS NOT NULL
), ready AS MATERIALIZED (
    SELECT j.id, j.singleton_key FROM heads j
    WHERE NOT EXISTS (
        SELECT 1 FROM {{schema}}.job b
        WHERE b.name = %(name)s AND b.singleton_key = j.singleton_key AND b.policy = 'key_strict_fifo'
          AND b.state IN ('active', 'retry', 'failed') AND b.id <> j.id)
    ORDER BY j.priority DESC, j.created_on, j.id
)
-- Locks are tried in that order and only until `limit` are taken: the keys further down stay free.
SELECT r.id FROM ready r
WHERE pg_try_advisory_xact_lock(hashtextextended('{{schema}}.key:' || %(name)s || ':' || r.singleton_key, 0))
LIMIT %(limit)s;

-- name: lock_groups
-- Fetch under a group limit (group_concurrency), first step: the next jobs, passing over groups at
-- their limit, each job's group's transaction-level advisory lock taken without waiting (groups
-- another fetcher holds are passed over; a job without a group locks itself). Only a fetcher
-- holding a group's lock activates its jobs, so claim_grouped counts the group's active jobs
-- exactly: the limit is never exceeded, not even briefly.
--
-- The jobs are walked in fetch order (the fetch index, as a standard fetch does) and each is
-- checked, then locked, only when reached (CASE fixes that order): a plan that filtered every
-- ready job before sorting would count and lock every group of a small backlog.
SELECT c.id FROM (
    SELECT j.id, j.name, j.group_id, j.group_tier
    FROM {{schema}}.job j
    WHERE j.name = %(name)s
      AND j.state < 'active'
      AND j.start_after <= coalesce(%(now)s::timestamptz, now())
      AND NOT EXISTS (SELECT 1 FROM {{schema}}.queue p WHERE p.name = %(name)s AND p.paused)
    ORDER BY j.priority DESC, j.created_on, j.id
    OFFSET 0
) c
WHERE CASE
    WHEN c.group_id IS NULL OR (
        SELECT count(*) FROM {{schema}}.job a
        WHERE a.name = c.name AND a.group_id = c.group_id AND a.state = 'active'
    ) < coalesce((%(tiers)s::jsonb ->> c.group_tier)::integer, %(group_limit)s)
    THEN pg_try_advisory_xact_lock(
        hashtextextended('{{schema}}.group:' || c.name || ':' || coalesce(c.group_id, c.id::text), 0))
    ELSE false
END
LIMIT %(limit)s;

-- name: claim_grouped
-- Fetch under a group limit, last step, in the transaction that took the locks: of the jobs
-- chosen, as many of each group as its limit leaves room for now (counted with a snapshot taken
-- after the groups' locks), in priority order.
WITH chosen AS (
    SELECT j.id, j.group_id, j.group_tier,
           row_number() OVER (PARTITION BY j.group_id ORDER BY j.priority DESC, j.created_on, j.id) AS n
    FROM {{schema}}.job j
    WHERE j.id = ANY(%(ids)s::uuid[]) AND j.state < 'active'
), allowed AS (
    SELECT c.id FROM chosen c
    WHERE c.group_id IS NULL
       OR c.n <= coalesce((%(tiers)s::jsonb ->> c.group_tier)::integer, %(group_limit)s) - (
           SELECT count(*) FROM {{schema}}.job a
           WHERE a.name = %(name)s AND a.group_id = c.group_id AND a.state = 'active')
)
UPDATE {{schema}}.job j SET
    state = 'active',
    retry_count = j.retry_count + (j.started_on IS NOT NULL)::integer,
    started_on = coalesce(%(now)s::timestamptz, statement_timestamp()),
    expire_at = least(
        coalesce(%(now)s::timestamptz, statement_timestamp()) + make_interval(secs => j.expire_in),
        %(deadline)s::timestamptz
    )
WHERE j.id = ANY(ARRAY(SELECT id FROM allowed))
  AND j.state < 'active'
  -- On a keyed queue (its keys locked first, by lock_keys or lock_fifo_heads), claim_keyed's checks.
  {{keyed_claim_checks}}
RETURNING j.id::text, j.name, j.data, j.priority, j.retry_count, j.retry_limit,
          j.started_on, j.expire_at, j.created_on, j.singleton_key, j.origin;

-- name: lock_groups_of
-- Fetch of a keyed queue under a group limit, second step: of the jobs whose keys lock_keys or
-- lock_fifo_heads locked, those whose group's lock (as lock_groups takes it) is free too.
SELECT j.id FROM {{schema}}.job j
WHERE j.id = ANY(%(ids)s::uuid[])
  AND (j.group_id IS NULL OR pg_try_advisory_xact_lock(
      hashtextextended('{{schema}}.group:' || j.name || ':' || j.group_id, 0)));

-- name: fragment_keyed_claim_checks
-- Not a query: the condition claim_keyed and claim_grouped put on a job of a keyed queue (the
-- placeholder keyed_claim_checks in braces): its key has no job active (singleton, stately) or
-- active, in retry or failed other than itself (key_strict_fifo).
AND NOT (
      (j.policy = 'singleton' AND EXISTS (
          SELECT 1 FROM {{schema}}.job a
          WHERE a.name = j.name AND a.state = 'active' AND a.policy = 'singleton'
            AND coalesce(a.singleton_key, '') = coalesce(j.singleton_key, '')))
      OR (j.policy = 'stately' AND EXISTS (
          SELECT 1 FROM {{schema}}.job a
          WHERE a.name = j.name AND a.state = 'active' AND a.policy = 'stately'
            AND coalesce(a.singleton_key, '') = coalesce(j.singleton_key, '')))
      OR (j.policy = 'key_strict_fifo' AND EXISTS (
          SELECT 1 FROM {{schema}}.job b
          WHERE b.name = j.name AND b.singleton_key = j.singleton_key AND b.policy = 'key_strict_fifo'
            AND b.state IN ('active', 'retry', 'failed') AND b.id <> j.id))
  )

-- name: claim_keyed
-- Keyed fetch, second step, in lock_keys' transaction: claim the jobs it chose, checked again
-- against a snapshot taken after their keys' locks: a job that left the queue meanwhile, or whose
-- key has an active job, is left alone. The time is this statement's, not the transaction's: a
-- job's start is when it was claimed, after whatever it waited for.
UPDATE {{schema}}.job j SET
    state = 'active',
    -- retry_count counts the retries started, as in pg-boss: a job that ran before is on a retry.
    retry_count = j.retry_count + (j.started_on IS NOT NULL)::integer,
    started_on = coalesce(%(now)s::timestamptz, statement_timestamp()),
    expire_at = least(
        coalesce(%(now)s::timestamptz, statement_timestamp()) + make_interval(secs => j.expire_in),
        %(deadline)s::timestamptz
    )
WHERE j.id = ANY(%(ids)s::uuid[])
  AND j.state < 'active'
  {{keyed_claim_checks}}
RETURNING j.id::text, j.name, j.data, j.priority, j.retry_count, j.retry_limit,
          j.started_on, j.expire_at, j.created_on, j.singleton_key, j.origin;

-- name: fragment_resolve_dependents
-- Not a query: the CTE that complete and complete_each put after `done` (the ids they completed)
-- (the placeholder resolve_dependents in braces). Each job waiting for some of them counts them off; the one whose
-- count reaches 0 becomes ready now. Two parents completed at once by two workers update the
-- child one after the other (its row lock), the second seeing the first's count: it starts once.
-- With no flow in use this is one probe of an empty index per batch.
resolved AS (
    -- Children found by primary key (as complete finds its jobs), whatever the statistics say.
    UPDATE {{schema}}.job c SET (parents_left, start_after) = (
        SELECT c.parents_left - k.n, CASE WHEN c.parents_left - k.n <= 0 THEN now() ELSE c.start_after END
        FROM (SELECT count(*) AS n FROM {{schema}}.dependency dep
              WHERE dep.child = c.id AND dep.parent = ANY(ARRAY(SELECT id FROM done))) k)
    WHERE c.id = ANY(ARRAY(
            SELECT dep.child FROM {{schema}}.dependency dep WHERE dep.parent = ANY(ARRAY(SELECT id FROM done))))
      AND c.state < 'active' AND c.parents_left IS NOT NULL
)

-- name: fragment_cancel_below
-- Not a query: the CTEs that fail and cancel put after `ended` (ids of jobs that will never
-- complete), the placeholder cancel_below in braces, in a WITH RECURSIVE: every job waiting for one of them, directly
-- or through others, is cancelled, saying which job it waited for.
below AS (
    SELECT d.child, d.parent AS cause FROM {{schema}}.dependency d JOIN ended e ON d.parent = e.id
    UNION
    SELECT d.child, b.cause FROM {{schema}}.dependency d JOIN below b ON d.parent = b.child
), cancelled_below AS (
    UPDATE {{schema}}.job j SET
        state = 'cancelled',
        completed_on = now(),
        output = (SELECT jsonb_build_object(
                     'message', 'a job it depends on will not complete: ' || min(b.cause::text),
                     'type', 'DependencyFailed', 'parent', min(b.cause::text))
                  FROM below b WHERE b.child = j.id)
    WHERE j.id = ANY(ARRAY(SELECT child FROM below)) AND j.state < 'active'
    RETURNING 1
)

-- name: complete
-- Complete a batch of active jobs with one output for all (or none).
-- `started` fences the attempt: jobs fetched together share one started_on,
-- and a job that expired and was fetched again meanwhile has a later one, so
-- a run that outlived its expiry cannot complete the retry.
WITH done AS (
    UPDATE {{schema}}.job SET
        state = 'completed',
        completed_on = coalesce(%(now)s::timestamptz, now()),
        expire_at = NULL,
        output = %(output)s::jsonb
    WHERE id = ANY(%(ids)s::uuid[])
      AND name = %(name)s
      AND state = 'active'
      AND (%(started)s::timestamptz[] IS NULL OR started_on = ANY(%(started)s::timestamptz[]))
    RETURNING id
), {{resolve_dependents}}
SELECT id::text FROM done;

-- name: release
-- Put claimed jobs that never started back in the queue, the attempt not counted: a worker that
-- claimed more than it could start before its end hands them back instead of letting them expire.
-- They wait in retry (the only way back from active the state machine allows), ready at once.
UPDATE {{schema}}.job SET
    state = 'retry',
    started_on = NULL,
    expire_at = NULL,
    start_after = now()
WHERE id = ANY(%(ids)s::uuid[])
  AND name = %(name)s
  AND state = 'active'
  AND started_on = ANY(%(started)s::timestamptz[])
RETURNING id::text;

-- name: snooze
-- Put running jobs back to run again after `seconds`, the attempt not counted (as release does),
-- unless a job has snoozed `max_snoozes` times already: those are returned with allowed = false
-- for the caller to fail. A snoozed job waits in retry, so that on a key_strict_fifo queue it
-- keeps its key's place and holds back the jobs sent after it.
WITH candidates AS (
    SELECT j.id, j.snoozes < %(max_snoozes)s AS allowed
    FROM {{schema}}.job j
    WHERE j.id = ANY(%(ids)s::uuid[])
      AND j.name = %(name)s
      AND j.state = 'active'
      AND (%(started)s::timestamptz[] IS NULL OR j.started_on = ANY(%(started)s::timestamptz[]))
    FOR UPDATE
), snoozed AS (
    UPDATE {{schema}}.job j SET
        state = 'retry',
        started_on = NULL,
        expire_at = NULL,
        start_after = coalesce(%(now)s::timestamptz, now()) + make_interval(secs => %(seconds)s),
        snoozes = j.snoozes + 1
    FROM candidates c
    WHERE j.id = c.id AND c.allowed
    RETURNING j.id
)
SELECT c.id::text AS id, c.allowed FROM candidates c;

-- name: update_queued
-- Change a queued job (not yet started): its data, priority or start time, each only when given
-- (a null parameter keeps the column; has_data says whether data was given, since null is data
-- too). The target is the job `id`, or the newest queued job with singleton key `key`. A later
-- start keeps the job's retention span after it, as pg-boss does.
WITH target AS (
    SELECT j.id FROM {{schema}}.job j
    WHERE j.name = %(name)s AND j.state < 'active'
      AND (%(id)s::uuid IS NULL OR j.id = %(id)s::uuid)
      AND (%(key)s::text IS NULL OR j.singleton_key = %(key)s::text)
    ORDER BY j.created_on DESC, j.id DESC
    LIMIT 1
    FOR UPDATE
), moved AS (
    SELECT j.id,
           coalesce(%(start_after)s::timestamptz,
                    coalesce(%(now)s::timestamptz, now()) + make_interval(secs => %(start_in)s::double precision),
                    j.start_after) AS start_after
    FROM {{schema}}.job j JOIN target t ON t.id = j.id
)
UPDATE {{schema}}.job j SET
    data = CASE WHEN %(has_data)s THEN %(data)s::jsonb ELSE j.data END,
    priority = coalesce(%(priority)s::integer, j.priority),
    keep_until = m.start_after + (j.keep_until - j.start_after),
    start_after = m.start_after
FROM moved m
WHERE j.id = m.id AND j.state < 'active'
RETURNING j.id::text;

-- name: delete_queued_jobs
-- Delete up to `limit` jobs of a queue that have not started (created or retry).
WITH hot AS (
    DELETE FROM {{schema}}.job WHERE id IN (
        SELECT id FROM {{schema}}.job WHERE name = %(name)s AND state < 'active' LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
    RETURNING 1
)
SELECT count(*) AS deleted FROM hot;

-- name: delete_stored_jobs
-- Delete up to `limit` finished jobs of a queue (completed, cancelled or failed), hot then archived.
WITH hot AS (
    DELETE FROM {{schema}}.job WHERE id IN (
        SELECT id FROM {{schema}}.job WHERE name = %(name)s AND state > 'active' LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
    RETURNING 1
), cold AS (
    DELETE FROM {{schema}}.archive WHERE id IN (
        SELECT id FROM {{schema}}.archive WHERE name = %(name)s LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
    RETURNING 1
)
SELECT (SELECT count(*) FROM hot) + (SELECT count(*) FROM cold) AS deleted;

-- name: delete_all_jobs
-- Delete up to `limit` jobs of a queue whatever their state, active ones too (their workers'
-- completions then find nothing), hot then archived.
WITH hot AS (
    DELETE FROM {{schema}}.job WHERE id IN (
        SELECT id FROM {{schema}}.job WHERE name = %(name)s LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
    RETURNING 1
), cold AS (
    DELETE FROM {{schema}}.archive WHERE id IN (
        SELECT id FROM {{schema}}.archive WHERE name = %(name)s LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
    RETURNING 1
)
SELECT (SELECT count(*) FROM hot) + (SELECT count(*) FROM cold) AS deleted;

-- name: lock_dead_letters
-- The dead letters waiting in a queue (all, or `ids`), oldest first, locked for a redrive.
-- A waiting job is made active so that complete() can finish it once it has been moved.
UPDATE {{schema}}.job j SET state = 'active', started_on = now(), expire_at = now() + interval '1 hour'
WHERE j.id IN (
    SELECT d.id FROM {{schema}}.job d
    WHERE d.name = %(name)s AND d.state < 'active' AND d.origin ? 'dead_letter_of'
      AND (%(ids)s::uuid[] IS NULL OR d.id = ANY(%(ids)s::uuid[]))
    ORDER BY d.created_on, d.id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED)
RETURNING j.id::text AS id, j.data, j.origin, j.started_on;

-- name: no_longer_active
-- Of the given attempts (id, started_on), those that are not active any more: cancelled,
-- deleted, or expired and handed to another worker meanwhile.
SELECT t.id::text FROM unnest(%(ids)s::uuid[], %(started)s::timestamptz[]) AS t(id, started_on)
WHERE NOT EXISTS (
    SELECT 1 FROM {{schema}}.job j
    WHERE j.id = t.id AND j.state = 'active' AND j.started_on = t.started_on);

-- name: hold_for_parents
-- A flow's job waits for its parents: the edges, the count, and no start until they complete.
WITH edges AS (
    INSERT INTO {{schema}}.dependency (child, parent)
    SELECT %(id)s::uuid, p FROM unnest(%(parents)s::uuid[]) AS p
    ON CONFLICT DO NOTHING
    RETURNING 1
)
UPDATE {{schema}}.job SET parents_left = (SELECT count(*) FROM edges), start_after = '9999-12-31T00:00:00Z'
WHERE id = %(id)s::uuid
RETURNING id::text;

-- name: get_relatives
-- The jobs `id` depends on (up: its parents) or that depend on it (its children), hot or archived.
SELECT id::text, name, priority, data, state::text, policy, retry_limit, retry_count, retry_delay,
       retry_backoff, retry_delay_max, expire_in, start_after, started_on, expire_at, singleton_key,
       singleton_on, keep_until, delete_after, dead_letter, created_on, completed_on, output, origin, archived,
       group_id, group_tier, errors
FROM {{schema}}.any_job
WHERE id IN (
    SELECT parent FROM {{schema}}.dependency WHERE %(up)s AND child = %(id)s::uuid
    UNION ALL
    SELECT child FROM {{schema}}.dependency WHERE NOT %(up)s AND parent = %(id)s::uuid)
ORDER BY created_on, id;

-- name: purge_dependencies
-- Edges whose child is gone (deleted, or purged from the archive), up to `limit`.
DELETE FROM {{schema}}.dependency WHERE ctid IN (
    SELECT d.ctid FROM {{schema}}.dependency d
    WHERE NOT EXISTS (SELECT 1 FROM {{schema}}.job j WHERE j.id = d.child)
      AND NOT EXISTS (SELECT 1 FROM {{schema}}.archive a WHERE a.id = d.child)
    LIMIT %(limit)s);

-- name: complete_each
-- Complete a batch of active jobs, each with its own output (fenced like complete).
WITH done AS (
    UPDATE {{schema}}.job j SET
        state = 'completed',
        completed_on = coalesce(%(now)s::timestamptz, now()),
        expire_at = NULL,
        output = t.output
    FROM unnest(%(ids)s::uuid[], %(outputs)s::jsonb[]) AS t(id, output)
    WHERE j.id = ANY(%(ids)s::uuid[])
      AND j.id = t.id
      AND j.name = %(name)s
      AND j.state = 'active'
      AND (%(started)s::timestamptz[] IS NULL OR j.started_on = ANY(%(started)s::timestamptz[]))
    RETURNING j.id
), {{resolve_dependents}}
SELECT id::text FROM done;

-- name: fail
-- Fail a batch of unfinished jobs (active, or still queued as pg-boss allows), each with its own
-- error, in one statement: a job with attempts left (and a retryable error) goes to retry after its backoff,
-- any other goes to failed and, if it has a dead letter queue, a copy of it is
-- sent there. A stately job goes to failed when its key already has a job
-- waiting in retry, since the policy allows only one.
WITH RECURSIVE input AS (
    SELECT * FROM unnest(%(ids)s::uuid[], %(errors)s::jsonb[], %(retryable)s::boolean[]) AS t(id, error, retryable)
), failing AS (
    SELECT j.id, t.error,
           coalesce(t.retryable, true)
           AND j.retry_count < j.retry_limit
           AND NOT (j.policy = 'stately' AND EXISTS (
               SELECT 1 FROM {{schema}}.job r
               WHERE r.name = j.name AND r.state = 'retry' AND r.policy = 'stately' AND r.id <> j.id
                 AND coalesce(r.singleton_key, '') = coalesce(j.singleton_key, ''))) AS will_retry
    FROM {{schema}}.job j JOIN input t ON j.id = t.id
    -- Repeating the ids as an array gives the planner a primary key lookup
    -- whatever it believes about the number of active jobs.
    WHERE j.id = ANY(%(ids)s::uuid[])
      AND j.name = %(name)s
      AND j.state < 'completed'
      AND (%(started)s::timestamptz[] IS NULL OR j.started_on = ANY(%(started)s::timestamptz[]))
), updated AS (
    UPDATE {{schema}}.job j SET
        state = CASE WHEN f.will_retry THEN 'retry' ELSE 'failed' END::{{schema}}.job_state,
        start_after = CASE WHEN f.will_retry
            THEN coalesce(%(now)s::timestamptz, now()) + make_interval(secs =>
                {{schema}}.retry_delay_seconds(j.retry_count, j.retry_delay, j.retry_backoff, j.retry_delay_max, random()))
            ELSE j.start_after END,
        completed_on = CASE WHEN f.will_retry THEN NULL ELSE coalesce(%(now)s::timestamptz, now()) END,
        expire_at = NULL,
        output = f.error,
        -- The attempt's error joins the job's history (the newest 20 kept).
        errors = jsonb_path_query_array(
            coalesce(j.errors, '[]'::jsonb) || jsonb_build_array(
                jsonb_build_object('attempt', j.retry_count + 1, 'at', coalesce(%(now)s::timestamptz, now()))
                || CASE WHEN jsonb_typeof(f.error) = 'object' THEN f.error ELSE jsonb_build_object('message', f.error) END),
            '$[last - 19 to last]')
    FROM failing f
    WHERE j.id = ANY(%(ids)s::uuid[]) AND j.id = f.id AND j.state < 'completed'
    RETURNING j.id, j.name, j.data, j.state, j.output, j.dead_letter
), dead AS (
    INSERT INTO {{schema}}.job (
        name, priority, data, policy, retry_limit, retry_delay, retry_backoff, retry_delay_max,
        expire_in, keep_until, delete_after, dead_letter, origin
    )
    SELECT q.name, 0, u.data, q.policy, q.retry_limit, q.retry_delay, q.retry_backoff, q.retry_delay_max,
           q.expire_in, now() + make_interval(secs => q.retention), q.delete_after, q.dead_letter,
           jsonb_build_object('dead_letter_of', jsonb_build_object('queue', u.name, 'id', u.id::text, 'error', u.output))
    FROM updated u JOIN {{schema}}.queue q ON q.name = u.dead_letter
    WHERE u.state = 'failed'
    ON CONFLICT DO NOTHING
    RETURNING 1
), ended AS (
    SELECT id FROM updated WHERE state = 'failed'
), {{cancel_below}}
SELECT u.id::text AS id, u.state::text AS state, (SELECT count(*) FROM dead) AS dead_lettered FROM updated u;

-- name: lock_expired
-- The active jobs past their deadline, oldest first, locked for expiry.
SELECT id::text, name, started_on FROM {{schema}}.job
WHERE expire_at < coalesce(%(now)s::timestamptz, now()) AND state = 'active'
ORDER BY expire_at
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED;

-- name: cancel
-- Cancel jobs in `states` (those that have not finished; an active one's later completion is ignored).
WITH RECURSIVE ended AS (
    UPDATE {{schema}}.job SET state = 'cancelled', completed_on = now(), expire_at = NULL
    WHERE name = %(name)s AND id = ANY(%(ids)s::uuid[]) AND state = ANY(%(states)s::{{schema}}.job_state[])
    RETURNING id
), {{cancel_below}}
SELECT id::text FROM ended;

-- name: requeue
-- Put jobs in `states`, failed (retry) or cancelled (resume), back in the queue as new, with
-- a fresh set of attempts, from the hot table or the archive. A job whose key
-- already has a queued job under a short or stately policy, or a queued or active
-- one under exclusive, is left where it is.
WITH hot AS (
    UPDATE {{schema}}.job j SET
        state = 'created', retry_count = 0, start_after = now(), started_on = NULL,
        expire_at = NULL, completed_on = NULL,
        keep_until = now() + (j.keep_until - j.start_after)
    WHERE j.name = %(name)s AND j.id = ANY(%(ids)s::uuid[]) AND j.state = ANY(%(states)s::{{schema}}.job_state[])
      AND NOT (j.policy IN ('short', 'stately') AND EXISTS (
          SELECT 1 FROM {{schema}}.job c
          WHERE c.name = j.name AND c.state = 'created' AND c.policy = j.policy
            AND coalesce(c.singleton_key, '') = coalesce(j.singleton_key, '')))
      AND NOT (j.policy = 'exclusive' AND EXISTS (
          SELECT 1 FROM {{schema}}.job c
          WHERE c.name = j.name AND c.state <= 'active' AND c.policy = 'exclusive'
            AND coalesce(c.singleton_key, '') = coalesce(j.singleton_key, '')))
    RETURNING j.id
), cold AS (
    DELETE FROM {{schema}}.archive a
    WHERE a.name = %(name)s AND a.id = ANY(%(ids)s::uuid[]) AND a.state = ANY(%(states)s::{{schema}}.job_state[])
      AND NOT (a.policy IN ('short', 'stately') AND EXISTS (
          SELECT 1 FROM {{schema}}.job c
          WHERE c.name = a.name AND c.state = 'created' AND c.policy = a.policy
            AND coalesce(c.singleton_key, '') = coalesce(a.singleton_key, '')))
      AND NOT (a.policy = 'exclusive' AND EXISTS (
          SELECT 1 FROM {{schema}}.job c
          WHERE c.name = a.name AND c.state <= 'active' AND c.policy = 'exclusive'
            AND coalesce(c.singleton_key, '') = coalesce(a.singleton_key, '')))
    RETURNING a.*
), restored AS (
    INSERT INTO {{schema}}.job (
        id, name, priority, data, state, policy, retry_limit, retry_count, retry_delay, retry_backoff,
        retry_delay_max, expire_in, start_after, singleton_key, singleton_on, keep_until,
        delete_after, dead_letter, created_on, output, origin, group_id, group_tier
    )
    SELECT id, name, priority, data, 'created', policy, retry_limit, 0, retry_delay, retry_backoff,
           retry_delay_max, expire_in, now(), singleton_key, singleton_on, now() + (keep_until - start_after),
           delete_after, dead_letter, created_on, output, origin, group_id, group_tier
    FROM cold
    RETURNING id
)
SELECT id::text FROM hot UNION ALL SELECT id::text FROM restored;

-- name: delete_jobs
-- Delete jobs of a queue, wherever they are.
WITH hot AS (
    DELETE FROM {{schema}}.job WHERE name = %(name)s AND id = ANY(%(ids)s::uuid[]) RETURNING id
), cold AS (
    DELETE FROM {{schema}}.archive WHERE name = %(name)s AND id = ANY(%(ids)s::uuid[]) RETURNING id
)
SELECT id::text FROM hot UNION ALL SELECT id::text FROM cold;

-- name: get_job
-- One job by id from the hot table or the archive, optionally of one queue.
SELECT id::text, name, priority, data, state::text, policy, retry_limit, retry_count, retry_delay,
       retry_backoff, retry_delay_max, expire_in, start_after, started_on, expire_at, singleton_key,
       singleton_on, keep_until, delete_after, dead_letter, created_on, completed_on, output, origin, archived,
       group_id, group_tier, errors
FROM {{schema}}.any_job
WHERE id = %(id)s::uuid AND (%(name)s::text IS NULL OR name = %(name)s::text)
LIMIT 1;

-- name: find_jobs
-- Jobs of a queue filtered by state, singleton key and data containment, newest first.
SELECT id::text, name, priority, data, state::text, policy, retry_limit, retry_count, retry_delay,
       retry_backoff, retry_delay_max, expire_in, start_after, started_on, expire_at, singleton_key,
       singleton_on, keep_until, delete_after, dead_letter, created_on, completed_on, output, origin, archived,
       group_id, group_tier, errors
FROM {{schema}}.any_job
WHERE name = %(name)s
  AND (NOT archived OR %(include_archive)s)
  AND (%(states)s::text[] IS NULL OR state::text = ANY(%(states)s::text[]))
  AND (%(key)s::text IS NULL OR singleton_key = %(key)s::text)
  AND (%(data)s::jsonb IS NULL OR data @> %(data)s::jsonb)
ORDER BY created_on DESC, id
LIMIT %(limit)s;

-- name: failed_jobs
-- The most recently failed jobs, hot and archived, optionally of one queue.
SELECT id::text, name, priority, data, state::text, policy, retry_limit, retry_count, retry_delay,
       retry_backoff, retry_delay_max, expire_in, start_after, started_on, expire_at, singleton_key,
       singleton_on, keep_until, delete_after, dead_letter, created_on, completed_on, output, origin, archived,
       group_id, group_tier, errors
FROM {{schema}}.any_job
WHERE state = 'failed' AND (%(name)s::text IS NULL OR name = %(name)s::text)
ORDER BY completed_on DESC NULLS LAST, id
LIMIT %(limit)s;

-- name: queued_size
-- How many jobs of a queue are queued (created or retry), counting at most `limit`: the
-- predicate is the fetch index's own, so this is an index-only count.
SELECT count(*) AS size FROM (
    SELECT 1 FROM {{schema}}.job WHERE name = %(name)s AND state < 'active' LIMIT %(limit)s
) counted;

-- name: active_size
-- How many jobs of a queue are active, counting at most `limit`: an active job has a deadline
-- (expire_at), so the expiry index finds them among the few active jobs of all queues.
SELECT count(*) AS size FROM (
    SELECT 1 FROM {{schema}}.job WHERE expire_at IS NOT NULL AND name = %(name)s LIMIT %(limit)s
) counted;

-- name: queue_size
-- How many jobs of a queue are in the given states (in the hot table), counting at most `limit`.
-- The enum array (not text) lets the planner use the partial indexes; the limit keeps a
-- caller that only needs "at least n" (scale-out) from counting a whole backlog.
SELECT count(*) AS size FROM (
    SELECT 1 FROM {{schema}}.job
    WHERE name = %(name)s AND state = ANY(%(states)s::{{schema}}.job_state[])
    LIMIT %(limit)s
) counted;

-- name: queue_stats
-- Per queue: jobs by state in the hot table and how long the oldest ready job has waited.
SELECT q.name,
       count(j.id) FILTER (WHERE j.state = 'created') AS created,
       count(j.id) FILTER (WHERE j.state = 'retry') AS retry,
       count(j.id) FILTER (WHERE j.state = 'active') AS active,
       count(j.id) FILTER (WHERE j.state = 'completed') AS completed,
       count(j.id) FILTER (WHERE j.state = 'cancelled') AS cancelled,
       count(j.id) FILTER (WHERE j.state = 'failed') AS failed,
       coalesce(extract(epoch FROM coalesce(%(now)s::timestamptz, now())
           - min(j.start_after) FILTER (WHERE j.state < 'active' AND j.start_after <= coalesce(%(now)s::timestamptz, now()))), 0
       )::double precision AS oldest_queued_seconds,
       q.paused
FROM {{schema}}.queue q
LEFT JOIN {{schema}}.job j ON j.name = q.name
GROUP BY q.name
ORDER BY q.name;

-- name: throughput
-- Per queue and time bucket since `since`: jobs completed and failed, hot and archived.
-- A lateral scan per queue keeps both lookups on the (name, completed_on) indexes.
SELECT q.name,
       date_bin(make_interval(secs => %(bucket)s), f.completed_on, %(since)s::timestamptz) AS bucket,
       count(*) FILTER (WHERE f.state = 'completed') AS completed,
       count(*) FILTER (WHERE f.state = 'failed') AS failed
FROM {{schema}}.queue q
CROSS JOIN LATERAL (
    SELECT j.state, j.completed_on FROM {{schema}}.job j
    WHERE j.name = q.name AND j.state > 'active' AND j.completed_on >= %(since)s::timestamptz
    UNION ALL
    SELECT a.state, a.completed_on FROM {{schema}}.archive a
    WHERE a.name = q.name AND a.completed_on >= %(since)s::timestamptz
) f
WHERE f.state IN ('completed', 'failed')
GROUP BY q.name, bucket
ORDER BY q.name, bucket;

-- name: archive
-- Move up to `limit` finished jobs past their queue's archive_after into the archive, or past its
-- delete_after when that is shorter (purge then deletes them in the same maintenance run).
WITH due AS (
    SELECT d.id
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
        FOR UPDATE OF j SKIP LOCKED
    ) d
    LIMIT %(limit)s
), moved AS (
    DELETE FROM {{schema}}.job j USING due WHERE j.id = due.id
    RETURNING j.*
)
INSERT INTO {{schema}}.archive (
    id, name, priority, data, state, policy, retry_limit, retry_count, retry_delay, retry_backoff,
    retry_delay_max, expire_in, start_after, started_on, expire_at, singleton_key, singleton_on,
    keep_until, delete_after, dead_letter, created_on, completed_on, output, origin, group_id, group_tier,
    errors, archived_on, delete_at
)
SELECT id, name, priority, data, state, policy, retry_limit, retry_count, retry_delay, retry_backoff,
       retry_delay_max, expire_in, start_after, started_on, expire_at, singleton_key, singleton_on,
       keep_until, delete_after, dead_letter, created_on, completed_on, output, origin, group_id, group_tier,
       errors, coalesce(%(now)s::timestamptz, now()),
       -- delete_after 0 keeps the job for good, as in pg-boss.
       CASE WHEN delete_after = 0 THEN 'infinity'::timestamptz
            ELSE coalesce(completed_on, coalesce(%(now)s::timestamptz, now())) + make_interval(secs => delete_after)
       END
FROM moved;

-- name: purge_archive
-- Delete up to `limit` archived jobs past their delete_at, oldest first, from `after` on.
-- The caller passes the latest delete_at of its previous batch: without that
-- lower bound each batch would walk again over the index entries of every row
-- the batches before it deleted (dead, not yet vacuumed), and a long purge
-- would slow down batch after batch.
WITH doomed AS (
    SELECT id FROM {{schema}}.archive
    WHERE delete_at < coalesce(%(now)s::timestamptz, now())
      AND delete_at >= coalesce(%(after)s::timestamptz, '-infinity')
    ORDER BY delete_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
DELETE FROM {{schema}}.archive a USING doomed
WHERE a.id = doomed.id
RETURNING a.delete_at;

-- name: fail_unstarted
-- Fail up to `limit` queued jobs that were not started within their retention.
-- They are failed rather than deleted so that no job disappears unseen; a key_strict_fifo job is
-- cancelled instead, so that it does not block its key (and its key's one failed job may exist).
UPDATE {{schema}}.job SET
    state = CASE WHEN policy = 'key_strict_fifo' THEN 'cancelled' ELSE 'failed' END::{{schema}}.job_state,
    completed_on = coalesce(%(now)s::timestamptz, now()),
    output = jsonb_build_object('message', 'not started within its retention period', 'type', 'RetentionExpired')
WHERE id IN (
    SELECT id FROM {{schema}}.job
    WHERE state < 'active' AND keep_until < coalesce(%(now)s::timestamptz, now())
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
);

-- name: upsert_schedule
-- Create or replace a schedule. Changing its cron or time zone restarts it from
-- now, so the new expression does not "catch up" fire times it never had.
INSERT INTO {{schema}}.schedule (name, key, cron, timezone, data, options, last_fire_time)
VALUES (%(name)s, %(key)s, %(cron)s, %(timezone)s, %(data)s::jsonb, %(options)s::jsonb,
        coalesce(%(now)s::timestamptz, now()))
ON CONFLICT (name, key) DO UPDATE SET
    cron = EXCLUDED.cron,
    timezone = EXCLUDED.timezone,
    data = EXCLUDED.data,
    options = EXCLUDED.options,
    updated_on = now(),
    last_fire_time = CASE
        WHEN {{schema}}.schedule.cron <> EXCLUDED.cron OR {{schema}}.schedule.timezone <> EXCLUDED.timezone
        THEN EXCLUDED.last_fire_time
        ELSE {{schema}}.schedule.last_fire_time
    END;

-- name: delete_schedule
-- Remove a schedule (one key, or all keys of a queue when key is NULL).
DELETE FROM {{schema}}.schedule
WHERE name = %(name)s AND (%(key)s::text IS NULL OR key = %(key)s::text)
RETURNING name;

-- name: get_schedules
-- The schedules, optionally of one queue.
SELECT name, key, cron, timezone, data, options, created_on, updated_on, last_fire_time
FROM {{schema}}.schedule
WHERE %(name)s::text IS NULL OR name = %(name)s::text
ORDER BY name, key;

-- name: lock_schedules
-- The schedules no other tick is processing right now, locked until commit.
SELECT name, key, cron, timezone, data, options, created_on, updated_on, last_fire_time
FROM {{schema}}.schedule
ORDER BY name, key
FOR UPDATE SKIP LOCKED;

-- name: mark_fired
-- Remember the latest fire time of a schedule that has been turned into jobs.
UPDATE {{schema}}.schedule SET last_fire_time = %(fire_time)s
WHERE name = %(name)s AND key = %(key)s;

-- name: db_now
-- The database clock, the one clock every default "now" in the queue reads.
SELECT now() AS now;

-- name: blocked_keys
-- The keys of a key_strict_fifo queue held by a failed job: none of their jobs runs until it is retried or deleted.
SELECT DISTINCT singleton_key AS key FROM {{schema}}.job
WHERE name = %(name)s AND state = 'failed' AND policy = 'key_strict_fifo'
ORDER BY 1;

-- name: active_groups
-- A queue's groups with active jobs, busiest first: what a group limit is holding back.
SELECT group_id, max(group_tier) AS tier, count(*) AS active FROM {{schema}}.job
WHERE name = %(name)s AND state = 'active' AND group_id IS NOT NULL
GROUP BY group_id
ORDER BY active DESC, group_id
LIMIT %(limit)s;
