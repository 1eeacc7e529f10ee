-- Fragments: pieces of SQL that several statements share, each under a "-- fragment: <name>"
-- header and a description. A statement names one as {{<name>}}; jobqueue/sqlfiles.py puts the
-- text in its place when the queries are loaded, so every statement that claims, copies or
-- lists a job says it the same way. tests/jobqueue/test_sqlfiles.py checks the column lists
-- against the fields of jobqueue.models.Job.

-- fragment: claim
-- The SET list that makes a queued job active (fetch, claim_keyed, claim_grouped). retry_count
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
       group_id, group_tier, errors

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
