-- name: fetch
-- Claim up to `limit` queued jobs of a standard, short or exclusive queue, in priority order, in
-- one statement: the function fetch_jobs (schema.sql; a function so that its plan is kept).
SELECT * FROM {{schema}}.fetch_jobs(%(name)s, %(limit)s, %(deadline)s::timestamptz, %(now)s::timestamptz);

-- name: lock_rate_window
-- Take a rate-limited queue's turn (schema.sql: job_start): until this transaction ends, no other
-- fetch of the queue counts its window. A turn lasts a few milliseconds; a holder that does not
-- end its transaction (its network stalled) must not hold up every fetcher of the queue, so the
-- wait is given up after `timeout` (lock_timeout, set first: the target list is evaluated in
-- order). Returns the lock_timeout before, which rate_window puts back.
SELECT current_setting('lock_timeout') AS lock_timeout_before,
       set_config('lock_timeout', %(timeout)s, true) AS lock_timeout,
       pg_advisory_xact_lock(hashtextextended('{{schema}}.rate:' || %(name)s, 0)) AS locked;

-- name: rate_window
-- A rate-limited queue's window at `now`: the jobs started in the last `period` seconds (and
-- any later: a start recorded by a fetch given a later `now`), and in how many seconds the oldest
-- of them leaves it. The index range starts at the window: older rows are never read. After
-- lock_rate_window, `lock_timeout` puts back the lock timeout it changed (else NULL: unchanged).
SELECT coalesce(sum(s.jobs), 0)::integer AS started,
       CASE WHEN %(lock_timeout)s::text IS NOT NULL
            THEN set_config('lock_timeout', %(lock_timeout)s::text, true) END AS lock_timeout,
       coalesce(extract(epoch FROM min(s.started_on) + make_interval(secs => %(period)s)
                - coalesce(%(now)s::timestamptz, statement_timestamp())), 0)::double precision AS frees_in
FROM {{schema}}.job_start s
WHERE s.name = %(name)s
  AND s.started_on > coalesce(%(now)s::timestamptz, statement_timestamp()) - make_interval(secs => %(period)s);

-- name: record_starts
-- The jobs a fetch of a rate-limited queue started, in the same transaction as the claim.
INSERT INTO {{schema}}.job_start (name, started_on, jobs)
SELECT %(name)s, started_on, count(*)::integer FROM unnest(%(started)s::timestamptz[]) AS t(started_on)
GROUP BY started_on;

-- name: ready_job_exists
-- Whether a queue has a job that a fetch could claim now (paused or not).
SELECT EXISTS (
    SELECT 1 FROM {{schema}}.job
    WHERE name = %(name)s AND state < 'active' AND start_after <= coalesce(%(now)s::timestamptz, now())
) AS ready;

-- name: advance_fetch_floor
-- Move a queue's fetch floor on, after a fetch (working.py: at most every quarter second per client
-- and queue, and at most every quarter second per queue here; never for a fetch given `now`). The
-- band is `band` (the priority of the first job the fetch took), else the floor's. The new floor is
-- the first job sent straight away that this statement's snapshot sees queued in the band (jobs
-- other fetchers hold and might still let go included), but no later than the start of the oldest
-- open transaction that has written (it may still send a job: created_on is the sending
-- statement's time), nor than a quarter second ago (a sending statement that has not written yet).
-- When an open writer's start cannot be read (another role's, without pg_read_all_stats), the floor
-- stays where it is. The band and the place to look from are values computed once (InitPlans), so
-- that the look is an index range from there, not a walk of the whole band.
WITH {{fetch_floor}}, band AS MATERIALIZED (
    SELECT coalesce(%(band)s::integer, (SELECT priority FROM floor)) AS priority
), base AS MATERIALIZED (
    SELECT CASE WHEN b.priority = f.priority THEN f.created_on ELSE '-infinity' END AS created_on,
           CASE WHEN b.priority = f.priority THEN f.id ELSE '00000000-0000-0000-0000-000000000000' END AS id
    FROM band b, floor f
)
INSERT INTO {{schema}}.fetch_floor (name, priority, created_on, id)
SELECT %(name)s, (SELECT priority FROM band),
       CASE WHEN q.created_on < w.pin THEN q.created_on ELSE w.pin END,
       CASE WHEN q.created_on < w.pin THEN q.id ELSE '00000000-0000-0000-0000-000000000000' END
FROM (
    SELECT CASE WHEN bool_or(a.xact_start IS NULL) THEN NULL ELSE least(
               statement_timestamp() - interval '250 milliseconds',
               min(a.xact_start),
               (SELECT min(x.prepared) FROM pg_prepared_xacts x WHERE x.database = current_database()))
           END AS pin
    FROM pg_stat_activity a
    WHERE a.datname = current_database() AND a.backend_xid IS NOT NULL AND a.pid <> pg_backend_pid()
) w
LEFT JOIN (
    SELECT j.created_on, j.id FROM {{schema}}.job j
    WHERE j.name = %(name)s AND j.state < 'active' AND j.priority = (SELECT priority FROM band)
      AND (j.created_on, j.id) >= ((SELECT created_on FROM base), (SELECT id FROM base))
      AND j.start_after <= j.created_on
    ORDER BY j.created_on, j.id
    LIMIT 1
) q ON true
WHERE w.pin IS NOT NULL
  AND NOT EXISTS (
      SELECT 1 FROM {{schema}}.fetch_floor r
      WHERE r.name = %(name)s AND r.at > statement_timestamp() - interval '250 milliseconds');

-- name: lock_keys
-- Keyed fetch (singleton and stately queues), first step: choose the next job of as many keys as
-- wanted, taking each key's transaction-level advisory lock without waiting (the function
-- lock_keys, schema.sql, says why two steps). claim_keyed, in the same transaction, claims them.
SELECT id FROM {{schema}}.lock_keys(%(name)s, %(limit)s, %(now)s::timestamptz);

-- name: lock_fifo_window
-- Keyed fetch of a key_strict_fifo queue, first step, fast path: the heads among the first
-- `window` ready jobs, their keys locked, and how many jobs the window held (the function
-- lock_fifo_window, schema.sql; a row with no id when no head was locked).
SELECT id, seen FROM {{schema}}.lock_fifo_window(%(name)s, %(limit)s, %(window)s, %(now)s::timestamptz);

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
-- their limit, each job's group's advisory lock taken without waiting (the function lock_groups,
-- schema.sql). claim_grouped (claim_groups), in the same transaction, claims as many as each group has room for.
SELECT id FROM {{schema}}.lock_groups(
    %(name)s, %(limit)s, %(now)s::timestamptz, %(tiers)s::jsonb, %(group_limit)s,
    %(group_rate_limit)s, %(group_rate_period)s);

-- name: fetch_turns
-- Fetch of a round-robin queue: the groups' next jobs, taken in turns, and claimed, in one
-- statement (the function fetch_turns, schema.sql).
SELECT * FROM {{schema}}.fetch_turns(
    %(name)s, %(limit)s, %(deadline)s::timestamptz, %(now)s::timestamptz, %(weights)s::jsonb,
    %(tiers)s::jsonb, %(group_limit)s, %(group_rate_limit)s, %(group_rate_period)s);

-- name: lock_groups_of
-- Fetch of a keyed queue under a group limit, second step: of the jobs whose keys lock_keys or
-- lock_fifo_heads locked, those whose group's lock (as lock_groups takes it) is free too.
SELECT j.id FROM {{schema}}.job j
WHERE j.id = ANY(%(ids)s::uuid[])
  AND (j.group_id IS NULL OR pg_try_advisory_xact_lock(
      hashtextextended('{{schema}}.group:' || j.name || ':' || j.group_id, 0)));

-- name: claim_grouped
-- Fetch under group limits or in turns, last step, in the transaction that took the locks: claim
-- as many of the jobs chosen as each group has room for (the function claim_groups, schema.sql),
-- recording their starts under a group_rate_limit.
SELECT * FROM {{schema}}.claim_groups(
    %(name)s, %(ids)s::uuid[], %(deadline)s::timestamptz, %(now)s::timestamptz, %(tiers)s::jsonb,
    %(group_limit)s, %(group_rate_limit)s, %(group_rate_period)s);

-- name: claim_keyed
-- Keyed fetch, second step, in lock_keys' transaction: claim the jobs it chose, checked again
-- against a snapshot taken after their keys' locks: a job that left the queue meanwhile, or whose
-- key has an active job, is left alone. The time is this statement's, not the transaction's: a
-- job's start is when it was claimed, after whatever it waited for.
UPDATE {{schema}}.job j SET
    {{claim}}
WHERE j.id = ANY(%(ids)s::uuid[])
  AND j.state < 'active'
  {{keyed_claim_checks}}
RETURNING {{claimed_columns}};

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
    RETURNING id, batch_id
), {{resolve_dependents}}, finished AS (
    SELECT batch_id, 'completed' AS state FROM done WHERE batch_id IS NOT NULL
), {{count_batches}}
SELECT id::text FROM done WHERE (SELECT count(*) FROM counted) >= 0;

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
    RETURNING j.id, j.batch_id
), {{resolve_dependents}}, finished AS (
    SELECT batch_id, 'completed' AS state FROM done WHERE batch_id IS NOT NULL
), {{count_batches}}
SELECT id::text FROM done WHERE (SELECT count(*) FROM counted) >= 0;

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
    RETURNING j.id, j.name, j.data, j.state, j.output, j.dead_letter, j.batch_id
), dead AS (
    INSERT INTO {{schema}}.job (
        name, priority, data, origin, {{queue_default_columns}}
    )
    SELECT q.name, 0, u.data,
           jsonb_build_object('dead_letter_of', jsonb_build_object('queue', u.name, 'id', u.id::text, 'error', u.output)),
           {{queue_default_values}}
    FROM updated u JOIN {{schema}}.queue q ON q.name = u.dead_letter
    WHERE u.state = 'failed'
    ON CONFLICT DO NOTHING
    RETURNING 1
), ended AS (
    SELECT id FROM updated WHERE state = 'failed'
), {{cancel_below}}, finished AS (
    SELECT batch_id, 'failed' AS state FROM updated WHERE state = 'failed' AND batch_id IS NOT NULL
    UNION ALL
    SELECT batch_id, 'cancelled' FROM cancelled_below WHERE batch_id IS NOT NULL
), {{count_batches}}
SELECT u.id::text AS id, u.state::text AS state, (SELECT count(*) FROM dead) AS dead_lettered FROM updated u
WHERE (SELECT count(*) FROM counted) >= 0;

-- name: no_longer_active
-- Of the given attempts (id, started_on), those that are not active any more: cancelled,
-- deleted, or expired and handed to another worker meanwhile.
SELECT t.id::text FROM unnest(%(ids)s::uuid[], %(started)s::timestamptz[]) AS t(id, started_on)
WHERE NOT EXISTS (
    SELECT 1 FROM {{schema}}.job j
    WHERE j.id = t.id AND j.state = 'active' AND j.started_on = t.started_on);

-- name: cancel
-- Cancel jobs in `states` (those that have not finished; an active one's later completion is ignored).
WITH RECURSIVE ended AS (
    UPDATE {{schema}}.job SET state = 'cancelled', completed_on = now(), expire_at = NULL
    WHERE name = %(name)s AND id = ANY(%(ids)s::uuid[]) AND state = ANY(%(states)s::{{schema}}.job_state[])
    RETURNING id, batch_id
), {{cancel_below}}, finished AS (
    SELECT batch_id, 'cancelled' AS state FROM ended WHERE batch_id IS NOT NULL
    UNION ALL
    SELECT batch_id, 'cancelled' FROM cancelled_below WHERE batch_id IS NOT NULL
), {{count_batches}}
SELECT id::text FROM ended WHERE (SELECT count(*) FROM counted) >= 0;

-- name: requeue
-- Put jobs in `states`, failed (retry) or cancelled (resume), back in the queue as new, with
-- a fresh set of attempts, from the hot table or the archive. A job whose key
-- already has a queued job under a short or stately policy, or a queued or active
-- one under exclusive, is left where it is.
WITH was AS (
    SELECT j.id, j.state, j.batch_id FROM {{schema}}.job j
    WHERE j.name = %(name)s AND j.id = ANY(%(ids)s::uuid[]) AND j.state = ANY(%(states)s::{{schema}}.job_state[])
), hot AS (
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
      AND a.delete_at > now()
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
        delete_after, dead_letter, created_on, output, origin, group_id, group_tier, batch_id
    )
    SELECT id, name, priority, data, 'created', policy, retry_limit, 0, retry_delay, retry_backoff,
           retry_delay_max, expire_in, now(), singleton_key, singleton_on, now() + (keep_until - start_after),
           delete_after, dead_letter, created_on, output, origin, group_id, group_tier, batch_id
    FROM cold
    RETURNING id
), uncounted AS (
    -- A batch still counting takes them back off its failed or cancelled (a finished one keeps its counts).
    UPDATE {{schema}}.batch b SET failed = b.failed - x.failed, cancelled = b.cancelled - x.cancelled
    FROM (
        SELECT r.batch_id,
               count(*) FILTER (WHERE r.was = 'failed') AS failed,
               count(*) FILTER (WHERE r.was = 'cancelled') AS cancelled
        FROM (SELECT w.batch_id, w.state AS was FROM hot h JOIN was w ON w.id = h.id
              UNION ALL
              SELECT c.batch_id, c.state FROM cold c) r
        WHERE r.batch_id IS NOT NULL
        GROUP BY r.batch_id
    ) x
    WHERE b.id = x.batch_id AND b.finished_on IS NULL
)
SELECT id::text FROM hot UNION ALL SELECT id::text FROM restored;

-- name: delete_jobs
-- Delete jobs of a queue, wherever they are. A batch counts its unfinished jobs deleted as cancelled.
WITH hot AS (
    DELETE FROM {{schema}}.job WHERE name = %(name)s AND id = ANY(%(ids)s::uuid[]) RETURNING id, batch_id, state
), cold AS (
    DELETE FROM {{schema}}.archive WHERE name = %(name)s AND id = ANY(%(ids)s::uuid[]) RETURNING id
), finished AS (
    SELECT batch_id, 'cancelled' AS state FROM hot WHERE batch_id IS NOT NULL AND state < 'completed'
), {{count_batches}}
SELECT id::text FROM hot WHERE (SELECT count(*) FROM counted) >= 0 UNION ALL SELECT id::text FROM cold;
