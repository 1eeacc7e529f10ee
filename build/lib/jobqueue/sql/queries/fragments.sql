-- Fragments: pieces of SQL that several statements share, each under a "-- fragment: <name>"
-- header and a description. A statement names one as {{<name>}}; jobqueue/sqlfiles.py puts the
-- text in its place when the queries are loaded, so every statement that claims, copies or
-- lists a job says it the same way. tests/jobqueue/test_sqlfiles.py checks the column lists
-- against the fields of jobqueue.models.Job.

-- fragment: claim
-- The SET list that makes a queued job active (fetch, claim_keyed, claim_groups). retry_count
-- counts the retries started, as in pg-boss: a job that ran before is on a retry. The time is
-- the statement's, not the transaction's: a job's start is when it was claimed, after whatever
-- the claim waited for (a keyed fetch takes its locks first).
state = 'active',
    retry_count = j.retry_count + (j.started_on IS NOT NULL)::integer,
    started_on = coalesce(%(now)s::timestamptz, statement_timestamp()),
    expire_at = least(
        coalesce(%(now)s::timestamptz, statement_timestamp()) + make_interval(secs => j.expire_in),
        %(deadline)s::timestamptz
    )

-- fragment: fetch_floor
-- The CTE `floor`: the queue's newest fetch floor (schema.sql), a position in its priority band;
-- without one, the start of band 0. And whether the queue is paused (its fetches claim nothing),
-- read once for the walks that follow.
floor AS MATERIALIZED (
    SELECT coalesce(f.priority, 0) AS priority,
           coalesce(f.created_on, '-infinity') AS created_on,
           coalesce(f.id, '00000000-0000-0000-0000-000000000000') AS id,
           EXISTS (SELECT 1 FROM {{schema}}.queue p WHERE p.name = %(name)s AND p.paused) AS paused
    FROM (SELECT 1) one
    LEFT JOIN LATERAL (
        SELECT ff.priority, ff.created_on, ff.id FROM {{schema}}.fetch_floor ff
        WHERE ff.name = %(name)s
        ORDER BY ff.at DESC
        LIMIT 1
    ) f ON true
)

-- fragment: ready_now
-- A job `j` sent straight away (its place in the queue is its own: start_after not after
-- created_on; the others are the job_deferred index's), of a queue not paused, ready now.
j.start_after <= j.created_on
              AND j.start_after <= coalesce(%(now)s::timestamptz, now())
              AND NOT (SELECT paused FROM floor)

-- fragment: band_from_floor
-- The first of the four walks a fetch merges: a job `j` sent straight away, in the floor's band,
-- from the floor on (an index range: the jobs claimed before the floor are not walked again).
j.priority = (SELECT priority FROM floor)
              AND (j.created_on, j.id) >= ((SELECT created_on FROM floor), (SELECT id FROM floor))
              AND {{ready_now}}

-- fragment: above_floor_band
-- The second walk: a job `j` sent straight away in a band above the floor's.
j.priority > (SELECT priority FROM floor) AND {{ready_now}}

-- fragment: below_floor_band
-- The third walk: a job `j` sent straight away in a band below the floor's.
j.priority < (SELECT priority FROM floor) AND {{ready_now}}

-- fragment: deferred_ready
-- The fourth walk: a job `j` queued behind its place (delayed, retried, released, snoozed,
-- requeued, made ready by a flow: the job_deferred index), ready now, of a queue not paused.
j.start_after > j.created_on
              AND j.start_after <= coalesce(%(now)s::timestamptz, now())
              AND NOT (SELECT paused FROM floor)

-- fragment: one_active_per_key_free
-- A job `j` of a singleton or stately queue whose key has no job active (each policy's check
-- written out, so that the planner can use the policy index whose predicate names it). Jobs keep
-- the policy they were sent under. OFFSET 0 keeps each check a probe of the job's own key: without
-- it the planner may turn the EXISTS into one scan of every active job, hashed, which walks the
-- dead entries of every job ever claimed while an old snapshot is held (a LIMIT would not do:
-- the planner drops a constant LIMIT from an EXISTS before it considers hashing).
NOT (
          (j.policy = 'singleton' AND EXISTS (
              SELECT 1 FROM {{schema}}.job a
              WHERE a.name = j.name AND a.state = 'active' AND a.policy = 'singleton'
                AND coalesce(a.singleton_key, '') = coalesce(j.singleton_key, '')
              OFFSET 0))
          OR (j.policy = 'stately' AND EXISTS (
              SELECT 1 FROM {{schema}}.job a
              WHERE a.name = j.name AND a.state = 'active' AND a.policy = 'stately'
                AND coalesce(a.singleton_key, '') = coalesce(j.singleton_key, '')
              OFFSET 0))
      )

-- fragment: key_lock
-- Job `j`'s key's transaction-level advisory lock, taken without waiting (false: another fetcher holds it).
pg_try_advisory_xact_lock(hashtextextended('{{schema}}.key:' || j.name || ':' || coalesce(j.singleton_key, ''), 0))

-- fragment: group_lock
-- For job `c` under a group limit: its group's active jobs are below the limit (its tier's, or
-- the default; no limit when the fetch gives none), its group's rate window has room (under a
-- group_rate_limit; counted as rate_window counts a queue's), and its group's advisory lock is
-- free (a job without a group locks itself); checked, then locked, in that order (CASE fixes it).
-- The counts use the statement's snapshot, taken before the lock: a group passed over here is
-- full, but one locked may be full by now, which claim_groups checks again.
CASE
    WHEN c.group_id IS NULL OR ((
        %(group_limit)s::integer IS NULL OR (
            SELECT count(*) FROM {{schema}}.job a
            WHERE a.name = c.name AND a.group_id = c.group_id AND a.state = 'active'
        ) < coalesce((%(tiers)s::jsonb ->> c.group_tier)::integer, %(group_limit)s)
    ) AND (
        %(group_rate_limit)s::integer IS NULL OR (
            SELECT coalesce(sum(s.jobs), 0) FROM {{schema}}.job_start s
            WHERE s.name = c.name AND s.group_id = c.group_id
              AND s.started_on > coalesce(%(now)s::timestamptz, statement_timestamp())
                                 - make_interval(secs => %(group_rate_period)s)
        ) < %(group_rate_limit)s
    ))
    THEN pg_try_advisory_xact_lock(
        hashtextextended('{{schema}}.group:' || c.name || ':' || coalesce(c.group_id, c.id::text), 0))
    ELSE false
END

-- fragment: claimed_columns
-- What a claim returns: the first fields of Job, in their order (a fetched row becomes a Job
-- positionally, the hot path).
j.id::text, j.name, j.data, j.priority, j.retry_count, j.retry_limit,
          j.started_on, j.expire_at, j.created_on, j.singleton_key, j.origin

-- fragment: job_columns
-- A whole job as the lookups return it (from any_job, hot or archived): every field of Job but
-- the worker's signal, by name.
id::text, name, priority, data, state::text, policy, retry_limit, retry_count, retry_delay,
       retry_backoff, retry_delay_max, expire_in, start_after, started_on, expire_at, singleton_key,
       singleton_on, keep_until, delete_after, dead_letter, created_on, completed_on, output, origin, archived,
       group_id, group_tier, errors, steps, progress, batch_id

-- fragment: queue_default_columns
-- The columns a job takes from its queue when the sender gives no option (queue_default_values,
-- in the same order, reads them from the queue row `q`).
policy, retry_limit, retry_delay, retry_backoff, retry_delay_max, expire_in, keep_until, delete_after, dead_letter

-- fragment: queue_default_values
-- The values of queue_default_columns, from the queue row `q`; keep_until is the retention from now.
q.policy, q.retry_limit, q.retry_delay, q.retry_backoff, q.retry_delay_max, q.expire_in,
       now() + make_interval(secs => q.retention), q.delete_after, q.dead_letter

-- fragment: keyed_claim_checks
-- The condition claim_keyed and claim_grouped put on a job of a keyed queue: its key has no job
-- active (singleton, stately) or active, in retry or failed other than itself (key_strict_fifo).
-- OFFSET 0 keeps each check a probe of the job's own key (see one_active_per_key_free).
AND {{one_active_per_key_free}}
  AND NOT (j.policy = 'key_strict_fifo' AND EXISTS (
      SELECT 1 FROM {{schema}}.job b
      WHERE b.name = j.name AND b.singleton_key = j.singleton_key AND b.policy = 'key_strict_fifo'
        AND b.state IN ('active', 'retry', 'failed') AND b.id <> j.id
      OFFSET 0))

-- fragment: count_batches
-- Not a query: the CTE that the statements finishing jobs (complete, fail, cancel, delete, the
-- retention sweep) put after `finished`, the batch_id and final state of each job they finished
-- that belongs to a batch; their final SELECT reads it (so that it runs), in a condition that is
-- always true. With no batch in use, `finished` is empty and the function count_batches
-- (schema.sql) is not called: a statement that finishes jobs pays an aggregate of nothing, not
-- the set-up of the writes a batch needs.
counted AS (
    SELECT {{schema}}.count_batches(array_agg(f.batch_id), array_agg(f.state)) AS sent
    FROM finished f
    HAVING count(*) > 0
)

-- fragment: sent_columns
-- The columns send and publish write, in the order of sent_values (after the id).
id, name, priority, data, policy, retry_limit, retry_delay, retry_backoff, retry_delay_max,
expire_in, start_after, singleton_key, singleton_on, keep_until, delete_after, dead_letter, origin,
group_id, group_tier

-- fragment: sent_values
-- A sent job's values but its id, from the send options (NULL: the queue `q`'s setting) and the
-- slot `t` (send_slot).
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

-- fragment: send_slot
-- A sent job's start and throttle slot, `t`: a debounced job that lost its slot goes into the
-- next slot and starts when that slot begins.
CROSS JOIN LATERAL (
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

-- fragment: send_checks
-- A sent job's conditions beside its queue's: its dead letter queue exists, and its throttle slot
-- is not taken by an archived job (a slot stays taken until its job's delete_at; the unique index
-- covers the hot table only).
AND (%(dead_letter)s::text IS NULL OR EXISTS (SELECT 1 FROM {{schema}}.queue d WHERE d.name = %(dead_letter)s::text))
AND (t.singleton_on IS NULL OR NOT EXISTS (
    SELECT 1 FROM {{schema}}.archive a
    WHERE a.name = q.name AND a.singleton_on = t.singleton_on AND a.state <> 'cancelled' AND a.delete_at > now()
      AND coalesce(a.singleton_key, '') = coalesce(%(singleton_key)s::text, '')))
