-- The whole current schema of the job queue, in one file.
--
-- {{schema}} is replaced by the validated, quoted schema name before this runs.
-- A fresh install applies this file; an existing install applies the numbered
-- files in migrations/ instead. tests/migration proves both give the same result.

CREATE SCHEMA IF NOT EXISTS {{schema}};

-- The order matters: `state < 'active'` means "queued" (created or retry) and
-- `state > 'active'` means "finished", which keeps the partial indexes simple.
CREATE TYPE {{schema}}.job_state AS ENUM (
    'created', 'retry', 'active', 'completed', 'cancelled', 'failed'
);

-- Time-ordered UUIDs (version 7: 48 bits of Unix milliseconds, then random).
-- Jobs are claimed and finished roughly in the order they were sent; with
-- random (v4) ids every state change would insert into a random page of the
-- primary key index, with v7 ids those inserts stay together. Measured: about
-- 1.5x the drain throughput of gen_random_uuid().
CREATE FUNCTION {{schema}}.uuid_v7() RETURNS uuid
LANGUAGE sql VOLATILE AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;

CREATE TABLE {{schema}}.version (
    version integer NOT NULL,
    migrated_on timestamptz NOT NULL DEFAULT now()
);

-- Work that one process at a time should do (maintenance) is coordinated by a
-- lease: a row, not a session-level lock, so that it works through poolers in
-- transaction mode; a holder that dies leaves a lease that runs out.
CREATE TABLE {{schema}}.lease (
    name text PRIMARY KEY,
    holder uuid NOT NULL,
    expires_on timestamptz NOT NULL
);

-- A queue's settings have no defaults here: jobqueue/settings.py declares
-- them, and create_queue always gives every one.
CREATE TABLE {{schema}}.queue (
    name text PRIMARY KEY,
    policy text NOT NULL
        CONSTRAINT queue_policy_check
        CHECK (policy IN ('standard', 'short', 'singleton', 'stately', 'exclusive', 'key_strict_fifo')),
    retry_limit integer NOT NULL CHECK (retry_limit >= 0),
    retry_delay integer NOT NULL CHECK (retry_delay >= 0),
    retry_backoff boolean NOT NULL,
    retry_delay_max integer CHECK (retry_delay_max > 0),
    expire_in integer NOT NULL CHECK (expire_in > 0),
    retention integer NOT NULL CHECK (retention > 0),
    archive_after integer NOT NULL CHECK (archive_after >= 0),
    delete_after integer NOT NULL CHECK (delete_after >= 0),
    -- A queue cannot be deleted while another queue uses it as dead letter queue.
    dead_letter text REFERENCES {{schema}}.queue (name),
    created_on timestamptz NOT NULL DEFAULT now(),
    updated_on timestamptz NOT NULL DEFAULT now(),
    -- Paused (pause_queue): fetches claim nothing; sends and schedules go on.
    paused boolean NOT NULL DEFAULT false,
    -- False: finished jobs are deleted at archive_after instead of moved to the archive.
    archive boolean NOT NULL,
    -- True: the queue's jobs have a partition of the job table of their own (set at creation).
    partition boolean NOT NULL,
    -- {"limit": n, "period": seconds}: at most n jobs started in any period (job_start, below).
    rate_limit jsonb CONSTRAINT queue_rate_limit_check CHECK (
        rate_limit IS NULL OR ((rate_limit ->> 'limit')::integer >= 1 AND (rate_limit ->> 'period')::integer >= 1)),
    -- The same for each group (the send option `group`) of the queue on its own.
    group_rate_limit jsonb CONSTRAINT queue_group_rate_limit_check CHECK (
        group_rate_limit IS NULL
        OR ((group_rate_limit ->> 'limit')::integer >= 1 AND (group_rate_limit ->> 'period')::integer >= 1)),
    -- "fifo" (the order sent, within a priority), "round_robin" (the groups take turns: fetch_turns),
    -- or {"tiers": {tier: weight}} (round robin, a group of a tier taking `weight` jobs a turn).
    fairness jsonb NOT NULL CONSTRAINT queue_fairness_check CHECK (
        fairness IN ('"fifo"', '"round_robin"') OR jsonb_typeof(fairness -> 'tiers') = 'object'),
    -- Groups take turns in a fetch that may take any job, or any key's next (fetch_turns): not under
    -- a policy that takes one job of a key at a time whatever its order (singleton, stately).
    CONSTRAINT queue_fairness_policy CHECK (
        fairness = '"fifo"' OR policy IN ('standard', 'short', 'exclusive', 'key_strict_fifo')),
    CHECK (dead_letter IS DISTINCT FROM name)
);

-- Durations are whole seconds: they are options people type, and integers
-- keep every comparison in the queries free of interval arithmetic surprises.
--
-- Partitioned by queue name: every queue's jobs live in job_common (the DEFAULT partition), but
-- those of a queue created with `partition` (create_queue), which get a table of their own,
-- job_<24 hex digits of the name's SHA-224> (job_partition below). A huge queue there neither
-- slows the other queues' fetches nor their vacuum, and deleting it drops its table. Statements
-- that name the queue touch its partition only. A partition's indexes are named after it
-- (job_common_fetch for the parent's job_fetch): an error names the leaf's index, and
-- jobqueue/database.py maps it back to the parent's name.
--
-- Half of each page is left free when jobs are sent (fillfactor 50): a job's fetch and its
-- completion then write its new version on the same page, where Postgres logs only the bytes
-- that changed (the payload and everything else alike are left out) and needs no extra lock
-- record to move the row to another page. Measured: 366 fewer WAL bytes per job (fetch 559 to
-- 353, complete 483 to 323), for a heap twice as large while jobs wait. A page's first version
-- of each job is pruned once claimed, which makes room for the completed one.
CREATE TABLE {{schema}}.job (
    -- Unique in each partition (its primary key): a partitioned table's unique index must hold
    -- the partition key.
    id uuid NOT NULL DEFAULT {{schema}}.uuid_v7(),
    name text NOT NULL,
    priority integer NOT NULL DEFAULT 0,
    data jsonb,
    state {{schema}}.job_state NOT NULL DEFAULT 'created',
    -- Copied from the queue at insert so that the policy indexes below can
    -- enforce it without a join.
    policy text NOT NULL DEFAULT 'standard',
    retry_limit integer NOT NULL,
    retry_count integer NOT NULL DEFAULT 0,
    retry_delay integer NOT NULL,
    retry_backoff boolean NOT NULL,
    retry_delay_max integer,
    expire_in integer NOT NULL,
    start_after timestamptz NOT NULL DEFAULT now(),
    started_on timestamptz,
    -- The deadline of the current attempt: set on fetch, the earlier of
    -- started_on + expire_in and the caller's own deadline.
    expire_at timestamptz,
    singleton_key text,
    singleton_on timestamptz,
    keep_until timestamptz NOT NULL,
    delete_after integer NOT NULL,
    dead_letter text,
    -- The sending statement's time (not its transaction's): see fetch_floor below.
    created_on timestamptz NOT NULL DEFAULT statement_timestamp(),
    completed_on timestamptz,
    output jsonb,
    -- Where the job came from when it was not sent directly: a schedule's fire
    -- time, or the failed job a dead letter copy stands for.
    origin jsonb,
    -- A group (pg-boss's `group: {id, tier}`): a fetch may cap its active jobs.
    group_id text,
    group_tier text,
    -- Times a handler snoozed the job (Queue.snooze): no attempt used, but bounded.
    snoozes integer NOT NULL DEFAULT 0,
    -- Each failed attempt's error (attempt, at, message, type, traceback), the newest 20.
    errors jsonb,
    -- A flow's job: how many of the jobs it depends on have not completed (it waits, start_after
    -- in the year 9999, until none); NULL for a job that depends on none.
    parents_left integer,
    -- The steps a handler ran (Job.step), each stored once it returned: [{name, result, at, ms,
    -- attempt}], in the order run; a later attempt returns a step's result instead of running it.
    steps jsonb,
    -- What a running handler last said of how far it got (Job.set_progress): any JSON value.
    progress jsonb,
    -- The batch it was inserted in (Queue.insert's batch; the table batch).
    batch_id text,
    CONSTRAINT job_deadline_while_active CHECK ((state = 'active') = (expire_at IS NOT NULL)),
    -- A key_strict_fifo job is ordered within its key: it must have one.
    CONSTRAINT job_strict_fifo_key CHECK (policy <> 'key_strict_fifo' OR singleton_key IS NOT NULL)
) PARTITION BY LIST (name);

-- Fetch: the queued jobs of one queue in claim order. start_after is included
-- so delayed jobs are skipped without visiting the heap; keep_until so that
-- the retention sweep can use this index too, which spares every send the
-- cost of a separate one.
CREATE INDEX job_fetch ON {{schema}}.job (name, priority DESC, created_on, id)
    INCLUDE (start_after, keep_until) WHERE state < 'active';
-- Jobs queued at a position behind the fetch floor (below): delayed, retried, released, snoozed,
-- requeued, made ready by a flow (start_after after created_on). A fetch looks for them here.
CREATE INDEX job_deferred ON {{schema}}.job (name, priority DESC, created_on, id) INCLUDE (start_after)
    WHERE state < 'active' AND start_after > created_on;
-- Expiry of active jobs past their deadline. expire_at is set only while a job
-- is active. The predicate deliberately does not mention state: a partial
-- index on state = 'active' tempts the planner, whenever statistics say few
-- jobs are active, to scan every active job for complete/fail instead of
-- looking up the given ids by primary key.
CREATE INDEX job_expire ON {{schema}}.job (expire_at) WHERE expire_at IS NOT NULL;
-- Archiving of finished jobs, queue by queue (each queue has its archive_after).
CREATE INDEX job_finished ON {{schema}}.job (name, completed_on) WHERE state > 'active';
-- Counting a group's active jobs when fetching under a group limit.
CREATE INDEX job_group_active ON {{schema}}.job (name, group_id) WHERE state = 'active' AND group_id IS NOT NULL;
-- The groups' turns in a round-robin queue (fetch_turns): a queue's groups with jobs queued, in
-- each priority band, each group's jobs in the order sent. Only jobs with a group are in it.
CREATE INDEX job_turn ON {{schema}}.job (name, priority DESC, group_id, created_on, id)
    WHERE state < 'active' AND group_id IS NOT NULL;

-- Queue policies, enforced by the database so that no race between senders or
-- fetchers can break them. COALESCE makes "no key" a key of its own.
--   short:     at most one queued (created) job per key;
--   singleton: at most one active job per key;
--   stately:   at most one job per key in each of created, retry and active.
-- One index for the three: with the state in the key, "one per key in that
-- state" is the same rule for all of them, and every state change of a job
-- evaluates one predicate instead of three. The policy is in the key because
-- jobs keep the policy they were sent under when their queue's changes.
CREATE UNIQUE INDEX job_policy ON {{schema}}.job (name, policy, COALESCE(singleton_key, ''), state)
    WHERE (policy = 'short' AND state = 'created')
       OR (policy = 'singleton' AND state = 'active')
       OR (policy = 'stately' AND state <= 'active');
--   exclusive: at most one job per key queued or active (created, retry, active);
--   key_strict_fifo: at most one job per key active, waiting for its retry, or
--     failed: a key's jobs run one at a time, and a failed job blocks its key
--     until it is retried or deleted.
CREATE UNIQUE INDEX job_exclusive ON {{schema}}.job (name, COALESCE(singleton_key, ''))
    WHERE policy = 'exclusive' AND state <= 'active';
CREATE UNIQUE INDEX job_strict_fifo ON {{schema}}.job (name, singleton_key)
    WHERE policy = 'key_strict_fifo' AND state IN ('active', 'retry', 'failed');
-- The next job of each key, in the order fetch takes it (a retry before the jobs sent after it).
CREATE INDEX job_fifo ON {{schema}}.job (name, singleton_key, state DESC, created_on, id)
    WHERE policy = 'key_strict_fifo' AND state < 'active';
-- Throttling and debouncing: one job per key per time slot.
CREATE UNIQUE INDEX job_throttle ON {{schema}}.job (name, singleton_on, COALESCE(singleton_key, ''))
    WHERE state <> 'cancelled' AND singleton_on IS NOT NULL;

-- A queue's own partition of the job table: its name, and the function that names its indexes
-- after it.
CREATE FUNCTION {{schema}}.job_partition(queue_name text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'job_' || left(encode(sha224(convert_to(queue_name, 'UTF8')), 'hex'), 24)
$$;

-- Each index of a partition takes the partition's name and its parent index's name after
-- "job_" (job_common_fetch for job_fetch). The indexes Postgres makes for a new partition have
-- names made from their columns, which would leave a partition's policy index unrecognisable in
-- an error.
CREATE FUNCTION {{schema}}.name_partition_indexes(part text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    idx record;
BEGIN
    FOR idx IN
        SELECT c.relname AS leaf, p.relname AS parent FROM pg_index x
        JOIN pg_class c ON c.oid = x.indexrelid
        JOIN pg_inherits i ON i.inhrelid = x.indexrelid
        JOIN pg_class p ON p.oid = i.inhparent
        WHERE x.indrelid = ('{{schema}}.' || quote_ident(part))::regclass
    LOOP
        CONTINUE WHEN idx.leaf = part || substr(idx.parent, 4);
        EXECUTE format('ALTER INDEX {{schema}}.%I RENAME TO %I', idx.leaf, part || substr(idx.parent, 4));
    END LOOP;
END
$$;

CREATE TABLE {{schema}}.job_common PARTITION OF {{schema}}.job DEFAULT WITH (fillfactor = 50);
ALTER TABLE {{schema}}.job_common ADD CONSTRAINT job_common_pkey PRIMARY KEY (id);
SELECT {{schema}}.name_partition_indexes('job_common');

-- make_job_partition: a queue's own partition, made before its queue row (create_queue). A
-- partition of a table with a DEFAULT partition can only be attached once the default is known
-- to hold no row of it, which Postgres proves by scanning the default under an exclusive lock:
-- every queue's sends and fetches would wait for a scan of all their jobs. So it is done in two
-- transactions: fence_job_partition adds a CHECK (name <> the queue) to job_common, NOT VALID
-- (an instant under that lock, every new row checked from then on); make_job_partition validates
-- it, a scan that lets reads and writes go on, after which the attach needs no scan; the fence
-- is then dropped (the partition bounds say the same). Both run with the rights of the schema's
-- owner, one caller at a time, and are no-ops once the partition exists. The caller sets
-- lock_timeout: every lock is given up rather than queued behind a long statement.
CREATE FUNCTION {{schema}}.fence_job_partition(queue_name text) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    part text := {{schema}}.job_partition(queue_name);
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('{{schema}}.job partitions', 0));
    IF to_regclass('{{schema}}.' || quote_ident(part)) IS NOT NULL OR EXISTS (
        SELECT 1 FROM pg_constraint
        WHERE conrelid = '{{schema}}.job_common'::regclass AND conname = part || '_fence') THEN
        RETURN;
    END IF;
    EXECUTE format('ALTER TABLE {{schema}}.job_common ADD CONSTRAINT %I CHECK (name <> %L) NOT VALID',
                   part || '_fence', queue_name);
END
$$;

CREATE FUNCTION {{schema}}.make_job_partition(queue_name text) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    part text := {{schema}}.job_partition(queue_name);
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('{{schema}}.job partitions', 0));
    IF to_regclass('{{schema}}.' || quote_ident(part)) IS NOT NULL THEN
        RETURN;
    END IF;
    EXECUTE format('ALTER TABLE {{schema}}.job_common VALIDATE CONSTRAINT %I', part || '_fence');
    EXECUTE format('CREATE TABLE {{schema}}.%I (LIKE {{schema}}.job INCLUDING DEFAULTS INCLUDING CONSTRAINTS) '
                   'WITH (fillfactor = 50)', part);
    EXECUTE format('ALTER TABLE {{schema}}.%I ADD CONSTRAINT %I PRIMARY KEY (id)', part, part || '_pkey');
    EXECUTE format('ALTER TABLE {{schema}}.job ATTACH PARTITION {{schema}}.%I FOR VALUES IN (%L)', part, queue_name);
    PERFORM {{schema}}.name_partition_indexes(part);
    EXECUTE format('ALTER TABLE {{schema}}.job_common DROP CONSTRAINT %I', part || '_fence');
END
$$;

-- drop_job_partition: a queue's partition dropped with all its jobs (delete_queue), instead of
-- deleting them one by one; how many it held (none without a partition). A fence left by a
-- make_job_partition that did not finish goes too.
CREATE FUNCTION {{schema}}.drop_job_partition(queue_name text) RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    part text := {{schema}}.job_partition(queue_name);
    jobs bigint := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('{{schema}}.job partitions', 0));
    -- Only when there is one: altering job_common locks out every queue's statements.
    IF EXISTS (SELECT 1 FROM pg_constraint
               WHERE conrelid = '{{schema}}.job_common'::regclass AND conname = part || '_fence') THEN
        EXECUTE format('ALTER TABLE {{schema}}.job_common DROP CONSTRAINT %I', part || '_fence');
    END IF;
    IF to_regclass('{{schema}}.' || quote_ident(part)) IS NOT NULL THEN
        EXECUTE format('SELECT count(*) FROM {{schema}}.%I', part) INTO jobs;
        EXECUTE format('DROP TABLE {{schema}}.%I', part);
    END IF;
    RETURN jobs;
END
$$;

-- Finished jobs leave the hot table so that it stays small however long the
-- history; get_job still finds them here until delete_at.
--
-- Partitioned by delete_at, one partition per UTC day (archive_YYYYMMDD), which maintenance
-- makes ahead of need (jobqueue/archiving.py): purge drops a day's partition once the day is
-- over instead of deleting its rows one by one, which writes no WAL per job, leaves no dead rows
-- for vacuum and holds no long transaction. Jobs kept for good (delete_at infinity) go to
-- archive_kept; a delete_at with no day partition (beyond the days made ahead, or in a day
-- already dropped) to archive_other, from which purge deletes row by row.
-- No primary key: a unique index of a partitioned table must hold its partition key, so it
-- could not make id unique; ids come from the job table, whose primary key they are.
CREATE TABLE {{schema}}.archive (
    id uuid NOT NULL,
    name text NOT NULL,
    priority integer NOT NULL,
    data jsonb,
    state {{schema}}.job_state NOT NULL CONSTRAINT archive_finished_only CHECK (state > 'active'),
    policy text NOT NULL,
    retry_limit integer NOT NULL,
    retry_count integer NOT NULL,
    retry_delay integer NOT NULL,
    retry_backoff boolean NOT NULL,
    retry_delay_max integer,
    expire_in integer NOT NULL,
    start_after timestamptz NOT NULL,
    started_on timestamptz,
    expire_at timestamptz,
    singleton_key text,
    singleton_on timestamptz,
    keep_until timestamptz NOT NULL,
    delete_after integer NOT NULL,
    dead_letter text,
    created_on timestamptz NOT NULL,
    completed_on timestamptz,
    output jsonb,
    origin jsonb,
    delete_at timestamptz NOT NULL,
    group_id text,
    group_tier text,
    errors jsonb,
    steps jsonb,
    progress jsonb,
    batch_id text
) PARTITION BY RANGE (delete_at);
CREATE TABLE {{schema}}.archive_kept PARTITION OF {{schema}}.archive FOR VALUES FROM ('infinity') TO (MAXVALUE);
CREATE TABLE {{schema}}.archive_other PARTITION OF {{schema}}.archive DEFAULT;

CREATE INDEX archive_id ON {{schema}}.archive (id);
-- Purge's row by row deletes, in the one partition that needs them.
CREATE INDEX archive_other_delete ON {{schema}}.archive_other (delete_at);
-- A throttle or debounce slot stays taken while its job is archived, until the
-- job is deleted (as in pg-boss, which keeps finished jobs in its job table).
CREATE INDEX archive_throttle ON {{schema}}.archive (name, singleton_on, COALESCE(singleton_key, ''))
    WHERE singleton_on IS NOT NULL AND state <> 'cancelled';
CREATE INDEX archive_failed ON {{schema}}.archive (completed_on) WHERE state = 'failed';
-- By queue, and by completion time within a queue: finding a queue's archived
-- jobs, and counting what each queue finished in the last hour (dashboard).
CREATE INDEX archive_finished ON {{schema}}.archive (name, completed_on);

-- make_archive_days: the archive's day partitions from today (UTC, the database's clock: they
-- are its layout, whatever time a caller pretends) to `days_ahead` days on. A day is made as a
-- table of its own, filled with the rows archive_other holds for it, then attached: attaching
-- scans archive_other once to prove it holds no more. Returns how many days were made. Every
-- lock it takes is given up after lock_timeout (the caller sets it): maintenance then tries again
-- on its next run rather than making readers of the archive wait.
-- Both functions run with the rights of the schema's owner (SECURITY DEFINER, as migrate ran
-- them): making and dropping tables needs them, and the functions' role needs none of its own.
CREATE FUNCTION {{schema}}.make_archive_days(days_ahead integer) RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    first_day date := (now() AT TIME ZONE 'UTC')::date;
    day date;
    part text;
    made integer := 0;
BEGIN
    -- One caller at a time (two would both make, or both drop, the same day).
    PERFORM pg_advisory_xact_lock(hashtextextended('{{schema}}.archive days', 0));
    FOR offs IN 0 .. days_ahead LOOP
        day := first_day + offs;
        part := 'archive_' || to_char(day, 'YYYYMMDD');
        CONTINUE WHEN to_regclass('{{schema}}.' || quote_ident(part)) IS NOT NULL;
        EXECUTE format('CREATE TABLE {{schema}}.%I (LIKE {{schema}}.archive INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
        EXECUTE format(
            'WITH moved AS (DELETE FROM {{schema}}.archive_other WHERE delete_at >= $1 AND delete_at < $2 RETURNING *) '
            'INSERT INTO {{schema}}.%I SELECT * FROM moved', part)
        USING day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC';
        EXECUTE format('ALTER TABLE {{schema}}.archive ATTACH PARTITION {{schema}}.%I FOR VALUES FROM (%L) TO (%L)',
                       part, day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
        made := made + 1;
    END LOOP;
    RETURN made;
END
$$;

-- drop_archive_days: drop every day partition of the archive whose day ended before `before`:
-- each of its jobs is past its delete_at. Returns how many jobs went with them, counted first
-- (a read under no lock that blocks anyone: 2.8 s for a day of 10 million jobs; the DROP itself
-- is an instant).
CREATE FUNCTION {{schema}}.drop_archive_days(before timestamptz) RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    part record;
    jobs bigint;
    dropped bigint := 0;
BEGIN
    -- One caller at a time (two would both make, or both drop, the same day).
    PERFORM pg_advisory_xact_lock(hashtextextended('{{schema}}.archive days', 0));
    FOR part IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = '{{schema}}.archive'::regclass AND c.relname ~ '^archive_[0-9]{8}$'
          AND (to_date(substr(c.relname, 9), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC' <= before
        ORDER BY c.relname
    LOOP
        EXECUTE format('SELECT count(*) FROM {{schema}}.%I', part.relname) INTO jobs;
        EXECUTE format('DROP TABLE {{schema}}.%I', part.relname);
        dropped := dropped + jobs;
    END LOOP;
    RETURN dropped;
END
$$;

-- Every job, hot or archived, for the lookups that must find either
-- (get_job, find_jobs, failed_jobs). Filters on it reach both tables' indexes.
CREATE VIEW {{schema}}.any_job AS
SELECT id, name, priority, data, state, policy, retry_limit, retry_count, retry_delay, retry_backoff,
       retry_delay_max, expire_in, start_after, started_on, expire_at, singleton_key, singleton_on,
       keep_until, delete_after, dead_letter, created_on, completed_on, output, origin, false AS archived,
       group_id, group_tier, errors, steps, progress, batch_id FROM {{schema}}.job
UNION ALL
SELECT id, name, priority, data, state, policy, retry_limit, retry_count, retry_delay, retry_backoff,
       retry_delay_max, expire_in, start_after, started_on, expire_at, singleton_key, singleton_on,
       keep_until, delete_after, dead_letter, created_on, completed_on, output, origin, true AS archived,
       group_id, group_tier, errors, steps, progress, batch_id FROM {{schema}}.archive
-- A job past its delete_at is deleted, whenever purge drops its day's partition.
WHERE delete_at > now();

-- The fetch floor: where a fetch starts its walk of a queue's queued jobs in the floor's priority
-- band, so that the index entries of the jobs claimed before it, dead but kept while another
-- session holds an old snapshot, are not walked again by every fetch. No queued job that was
-- sent straight away (start_after not after created_on) lies before it: a fetch writes a new
-- floor only up to the first such job its snapshot sees as queued, claimed by it or locked by
-- another fetcher, and never past the start of the oldest open transaction that has written
-- (it may still send a job: created_on is the sending statement's time). Rows are only
-- inserted, at most every quarter second per queue, and read newest first: a held snapshot
-- leaves no version chain to walk. Maintenance checks each floor and keeps the newest rows.
CREATE TABLE {{schema}}.fetch_floor (
    name text NOT NULL,
    at timestamptz NOT NULL DEFAULT statement_timestamp(),
    priority integer NOT NULL,
    created_on timestamptz NOT NULL,
    id uuid NOT NULL
);
CREATE INDEX fetch_floor_newest ON {{schema}}.fetch_floor (name, at DESC);

-- Where a round-robin queue's turns stand: the group whose turn came last in a fetch (and its
-- priority band); the next fetch starts with the group after it. A row per fetch, inserted, never
-- updated (as fetch_floor, and for the same reason: a row updated at every fetch would leave a
-- chain of versions that a held snapshot keeps for every reader to walk); maintenance keeps the
-- newest.
CREATE TABLE {{schema}}.fair_turn (
    name text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    priority integer NOT NULL,
    group_id text NOT NULL
);
CREATE INDEX fair_turn_newest ON {{schema}}.fair_turn (name, at DESC);

-- The starts of a rate-limited queue's jobs: a row per fetch, how many jobs it started and when
-- (their started_on). A fetch of such a queue takes the queue's rate lock (a transaction-level
-- advisory lock: fetchers of the queue take turns), sums the rows of the last `period` seconds
-- (and any later) with a snapshot taken after the lock, claims at most what is left of the limit
-- and writes its row in the same transaction: no interval of `period` seconds ever holds more
-- than `limit` starts, whatever the fetchers and their batch sizes. A job's own started_on is
-- not enough: a retry overwrites it and a deleted job takes it along. Rows only are inserted,
-- and read from the window's start on: a held snapshot leaves nothing to walk. Maintenance
-- deletes the rows older than their queue's period.
--
-- Under a group_rate_limit, the rows say their group (a row per group and start time; the
-- queue's window is still the sum of all its rows) and a group's window is counted the same way,
-- its turn being the group's advisory lock that lock_groups takes.
CREATE TABLE {{schema}}.job_start (
    name text NOT NULL,
    started_on timestamptz NOT NULL,
    jobs integer NOT NULL CHECK (jobs > 0),
    group_id text
);
CREATE INDEX job_start_window ON {{schema}}.job_start (name, started_on);
CREATE INDEX job_start_group_window ON {{schema}}.job_start (name, group_id, started_on) WHERE group_id IS NOT NULL;

-- A batch of jobs (Queue.insert(..., batch=...)): how many it has, how many finished in each way,
-- and the job it sends when the last of them finishes (on_finish: {name, data}; the counts go in
-- that job's origin). The statements that finish jobs count theirs here (the fragment
-- count_batches): a row update per statement and batch, whatever the batch's size, and the
-- statement whose counts reach the total, one only (the row's lock orders them), marks it
-- finished and sends the job. A finished batch counts no more; maintenance forgets it with its
-- jobs (its queue's delete_after after it finished).
CREATE TABLE {{schema}}.batch (
    id text PRIMARY KEY,
    name text NOT NULL,
    created_on timestamptz NOT NULL DEFAULT now(),
    total integer NOT NULL CHECK (total >= 0),
    completed integer NOT NULL DEFAULT 0,
    failed integer NOT NULL DEFAULT 0,
    cancelled integer NOT NULL DEFAULT 0,
    on_finish jsonb,
    finished_on timestamptz
);

-- count_batches: a statement that finished jobs of batches counts them off (the fragment
-- count_batches calls it, only when there are some). Each batch's row is updated once; two
-- statements finishing a batch's last jobs at once update it one after the other (its row lock),
-- the second re-checking the row's latest version: it finds the batch finished and counts
-- nothing. The statement whose counts reach the total marks the batch finished and sends its
-- on_finish job, the counts in the job's origin. Returns how many such jobs it sent.
CREATE FUNCTION {{schema}}.count_batches(batch_ids text[], states text[]) RETURNS integer
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET jit = off
AS $$
DECLARE
    sent integer;
BEGIN
    WITH counted AS (
        UPDATE {{schema}}.batch b SET
            completed = b.completed + x.completed,
            failed = b.failed + x.failed,
            cancelled = b.cancelled + x.cancelled,
            finished_on = CASE WHEN b.completed + b.failed + b.cancelled + x.n >= b.total THEN now() END
        FROM (
            SELECT f.batch_id, count(*) AS n,
                   count(*) FILTER (WHERE f.state = 'completed') AS completed,
                   count(*) FILTER (WHERE f.state = 'failed') AS failed,
                   count(*) FILTER (WHERE f.state = 'cancelled') AS cancelled
            FROM unnest(batch_ids, states) AS f(batch_id, state)
            WHERE f.batch_id IS NOT NULL
            GROUP BY f.batch_id
        ) x
        WHERE b.id = x.batch_id AND b.finished_on IS NULL
        RETURNING b.id, b.total, b.completed, b.failed, b.cancelled, b.on_finish, b.finished_on
    ), finish AS (
        INSERT INTO {{schema}}.job (name, data, origin, policy, retry_limit, retry_delay, retry_backoff, retry_delay_max, expire_in, keep_until, delete_after, dead_letter)
        SELECT q.name, c.on_finish -> 'data',
               jsonb_build_object('batch', jsonb_build_object(
                   'id', c.id, 'total', c.total, 'completed', c.completed, 'failed', c.failed,
                   'cancelled', c.cancelled)),
               q.policy, q.retry_limit, q.retry_delay, q.retry_backoff, q.retry_delay_max, q.expire_in,
       now() + make_interval(secs => q.retention), q.delete_after, q.dead_letter
        FROM counted c JOIN {{schema}}.queue q ON q.name = c.on_finish ->> 'name'
        WHERE c.finished_on IS NOT NULL
        -- Its queue's policy was checked when the batch was made; one changed since must not fail
        -- the statement that finished the batch's last jobs.
        ON CONFLICT DO NOTHING
        RETURNING 1
    )
    SELECT count(*) INTO sent FROM finish;
    RETURN sent;
END
$$;

-- A flow's edges: `child` starts once every `parent` has completed.
CREATE TABLE {{schema}}.dependency (
    child uuid NOT NULL,
    parent uuid NOT NULL,
    PRIMARY KEY (child, parent)
);
CREATE INDEX dependency_parent ON {{schema}}.dependency (parent);

CREATE TABLE {{schema}}.schedule (
    name text NOT NULL REFERENCES {{schema}}.queue (name) ON DELETE CASCADE,
    key text NOT NULL DEFAULT '',
    cron text NOT NULL,
    timezone text NOT NULL DEFAULT 'UTC',
    data jsonb,
    options jsonb NOT NULL DEFAULT '{}',
    created_on timestamptz NOT NULL DEFAULT now(),
    updated_on timestamptz NOT NULL DEFAULT now(),
    -- The latest fire time turned into a job. Advancing it in the same
    -- transaction as the insert makes each fire time produce exactly one job.
    last_fire_time timestamptz,
    PRIMARY KEY (name, key)
);

-- The allowed state changes are written down once, in the WHEN clause of the
-- trigger below: every UPDATE of a job's state passes through it, so a bug in
-- a query cannot move a job illegally. The executor evaluates the clause
-- itself and calls this function only for an illegal change, to refuse it
-- (a PL/pgSQL call for every legal change would cost more than the check).
-- AFTER, not BEFORE: a BEFORE trigger makes every update fetch the old row
-- again, and raising in an AFTER trigger still undoes the whole statement.
-- jobqueue/states.py mirrors the list and a test checks that they agree.
CREATE FUNCTION {{schema}}.refuse_transition() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'illegal job state transition % -> % for job %', OLD.state, NEW.state, OLD.id
        USING ERRCODE = 'check_violation';
END
$$;

CREATE TRIGGER job_state_transition AFTER UPDATE OF state ON {{schema}}.job
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state AND NOT CASE OLD.state
        WHEN 'created' THEN NEW.state IN ('active', 'retry', 'cancelled', 'failed')
        WHEN 'retry' THEN NEW.state IN ('active', 'cancelled', 'failed')
        WHEN 'active' THEN NEW.state IN ('completed', 'retry', 'failed', 'cancelled')
        WHEN 'failed' THEN NEW.state = 'created'
        WHEN 'cancelled' THEN NEW.state = 'created'
        ELSE false
    END)
    EXECUTE FUNCTION {{schema}}.refuse_transition();

-- Seconds to wait before retry number `retry_count + 1`, as pg-boss computes
-- it: with backoff, retry n waits between 1x and 2x of retry_delay * 2^(n-1)
-- (retry_delay a minimum, at least 1 s; the random half spreads out retries of
-- jobs that failed together), capped by retry_delay_max after the jitter.
-- jobqueue/backoff.py is the same function in Python.
CREATE FUNCTION {{schema}}.retry_delay_seconds(
    retry_count integer, retry_delay integer, retry_backoff boolean, retry_delay_max integer, jitter double precision
) RETURNS double precision
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN NOT retry_backoff THEN retry_delay::double precision
        ELSE least(
            coalesce(retry_delay_max, 2147483647)::double precision,
            greatest(retry_delay, 1) * power(2, least(retry_count, 15))::double precision * (1 + jitter)
        )
    END
$$;

-- The fetch's first statements as PL/pgSQL functions: fetch_jobs (standard, short and exclusive
-- queues), lock_keys (singleton, stately), lock_fifo_window (key_strict_fifo) and lock_groups (a
-- group limit); working.sql calls them. A function, so that each plan is made once per database
-- session and kept: PL/pgSQL caches the plans of its statements, and plan_cache_mode makes it the
-- generic one. Planning these statements of four walks took longer than running them for a batch
-- of 100, and a statement sent as text is planned at every call. No client-side prepared
-- statement is involved, so it works through PgBouncer and RDS Proxy. A generic plan cannot go
-- wrong on a parameter's value here: every walk is an index range whose bounds are computed when
-- it runs, and the claim is a TID scan.
--
-- JIT is off for them: on a large queue (10 million jobs) the planner's estimates pass
-- jit_above_cost, and compiling the statement took 25 ms at every call, twenty times the fetch.
--
-- Sequential and bitmap scans are off for them: the plan is made once per session from the
-- statistics of that moment, and a table analyzed while (nearly) empty made it scan the whole
-- table, at every fetch of that session, for every walk and for the claim: 9.5 ms instead of
-- 1.4 for a batch of 100 among 20,000 jobs, growing with the table. Off, the planner takes the
-- walks' indexes and the claim's TID scan whatever the statistics say, the plans they were made
-- for.
--
-- Each body is its statement with working.sql's fragments written out and its parameters named:
-- queue_name, batch_size, at_time (now, for tests and replays), deadline, window_size, tiers,
-- group_limit. tests/jobqueue/test_plans.py holds every fragment's text to be found in the
-- functions that use it: changing a fragment needs a migration that redefines them.

-- fetch_jobs: claim up to `batch_size` queued jobs of a standard, short or exclusive queue, in
-- priority order, in one statement.
--
-- The jobs come from four walks of the queue, merged in claim order: the fetch floor's priority
-- band from the floor on (the jobs claimed before it are not walked again, which matters while
-- another session holds an old snapshot and their index entries cannot be removed), the bands
-- above and below it, and the jobs queued behind their position (delayed, retried, released:
-- the job_deferred index). Each walk takes at most `batch_size` jobs with FOR UPDATE SKIP LOCKED:
-- rows another fetcher holds are skipped, never waited for; what a walk locked beyond the
-- `batch_size` best is let go at the end of the statement. The CTE is MATERIALIZED so that the
-- planner cannot fold it into the UPDATE: LIMIT with FOR UPDATE SKIP LOCKED must run exactly
-- once, or concurrent fetchers could claim the same row. The UPDATE finds the claimed rows by
-- their ctid, which their row locks keep from changing until the statement ends: a TID scan, the
-- one plan whatever the statistics say (a table analyzed while nearly empty made the planner
-- prefer a sequential scan to the primary key), and none to choose anew at each call. A ctid is
-- a place in one partition: the queue's name picks the partition (pruned when the plan starts).
CREATE FUNCTION {{schema}}.fetch_jobs(queue_name text, batch_size integer, deadline timestamptz, at_time timestamptz)
RETURNS TABLE (
    id text, name text, data jsonb, priority integer, retry_count integer, retry_limit integer,
    started_on timestamptz, expire_at timestamptz, created_on timestamptz, singleton_key text, origin jsonb
)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET jit = off
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
#variable_conflict use_column
BEGIN
RETURN QUERY
WITH floor AS MATERIALIZED (
    SELECT coalesce(f.priority, 0) AS priority,
           coalesce(f.created_on, '-infinity') AS created_on,
           coalesce(f.id, '00000000-0000-0000-0000-000000000000') AS id,
           EXISTS (SELECT 1 FROM {{schema}}.queue p WHERE p.name = queue_name AND p.paused) AS paused
    FROM (SELECT 1) one
    LEFT JOIN LATERAL (
        SELECT ff.priority, ff.created_on, ff.id FROM {{schema}}.fetch_floor ff
        WHERE ff.name = queue_name
        ORDER BY ff.at DESC
        LIMIT 1
    ) f ON true
), next AS MATERIALIZED (
    SELECT r.ctid, r.id, r.priority, r.created_on, r.immediate FROM (
        SELECT * FROM (
            SELECT j.ctid, j.id, j.priority, j.created_on, true AS immediate FROM {{schema}}.job j
            WHERE j.name = queue_name AND j.state < 'active' AND j.priority = (SELECT priority FROM floor)
              AND (j.created_on, j.id) >= ((SELECT created_on FROM floor), (SELECT id FROM floor))
              AND j.start_after <= j.created_on
              AND j.start_after <= coalesce(at_time, now())
              AND NOT (SELECT paused FROM floor)
            ORDER BY j.priority DESC, j.created_on, j.id LIMIT batch_size FOR UPDATE OF j SKIP LOCKED) band
        UNION ALL
        SELECT * FROM (
            SELECT j.ctid, j.id, j.priority, j.created_on, true FROM {{schema}}.job j
            WHERE j.name = queue_name AND j.state < 'active' AND j.priority > (SELECT priority FROM floor) AND j.start_after <= j.created_on
              AND j.start_after <= coalesce(at_time, now())
              AND NOT (SELECT paused FROM floor)
            ORDER BY j.priority DESC, j.created_on, j.id LIMIT batch_size FOR UPDATE OF j SKIP LOCKED) above
        UNION ALL
        SELECT * FROM (
            SELECT j.ctid, j.id, j.priority, j.created_on, true FROM {{schema}}.job j
            WHERE j.name = queue_name AND j.state < 'active' AND j.priority < (SELECT priority FROM floor) AND j.start_after <= j.created_on
              AND j.start_after <= coalesce(at_time, now())
              AND NOT (SELECT paused FROM floor)
            ORDER BY j.priority DESC, j.created_on, j.id LIMIT batch_size FOR UPDATE OF j SKIP LOCKED) below
        UNION ALL
        SELECT * FROM (
            SELECT j.ctid, j.id, j.priority, j.created_on, false FROM {{schema}}.job j
            WHERE j.name = queue_name AND j.state < 'active' AND j.start_after > j.created_on
              AND j.start_after <= coalesce(at_time, now())
              AND NOT (SELECT paused FROM floor)
            ORDER BY j.priority DESC, j.created_on, j.id LIMIT batch_size FOR UPDATE OF j SKIP LOCKED) deferred
    ) r
    ORDER BY r.priority DESC, r.created_on, r.id
    LIMIT batch_size
)
UPDATE {{schema}}.job j SET
    state = 'active',
    retry_count = j.retry_count + (j.started_on IS NOT NULL)::integer,
    started_on = coalesce(at_time, statement_timestamp()),
    expire_at = least(
        coalesce(at_time, statement_timestamp()) + make_interval(secs => j.expire_in),
        deadline
    )
WHERE j.name = queue_name AND j.ctid = ANY(ARRAY(SELECT ctid FROM next))
RETURNING j.id::text, j.name, j.data, j.priority, j.retry_count, j.retry_limit,
          j.started_on, j.expire_at, j.created_on, j.singleton_key, j.origin;
END
$$;

-- lock_keys: keyed fetch (singleton and stately queues), first step: choose the next job of as many keys as
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
--
-- The candidates come from the four walks a fetch merges (see fetch_jobs), each locking the keys it
-- reaches, in claim order, until it has `batch_size`; keys locked beyond the best `batch_size` stay locked
-- until the fetch's transaction ends (other fetchers pass over them meanwhile).
CREATE FUNCTION {{schema}}.lock_keys(queue_name text, batch_size integer, at_time timestamptz)
RETURNS TABLE (id uuid)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET jit = off
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
#variable_conflict use_column
BEGIN
RETURN QUERY
WITH floor AS MATERIALIZED (
    SELECT coalesce(f.priority, 0) AS priority,
           coalesce(f.created_on, '-infinity') AS created_on,
           coalesce(f.id, '00000000-0000-0000-0000-000000000000') AS id,
           EXISTS (SELECT 1 FROM {{schema}}.queue p WHERE p.name = queue_name AND p.paused) AS paused
    FROM (SELECT 1) one
    LEFT JOIN LATERAL (
        SELECT ff.priority, ff.created_on, ff.id FROM {{schema}}.fetch_floor ff
        WHERE ff.name = queue_name
        ORDER BY ff.at DESC
        LIMIT 1
    ) f ON true
), candidates AS MATERIALIZED (
    SELECT r.* FROM (
        SELECT * FROM (
            SELECT j.id, j.policy, coalesce(j.singleton_key, '') AS key, j.priority, j.created_on, true AS immediate
            FROM {{schema}}.job j
            WHERE j.name = queue_name AND j.state < 'active' AND j.priority = (SELECT priority FROM floor)
              AND (j.created_on, j.id) >= ((SELECT created_on FROM floor), (SELECT id FROM floor))
              AND j.start_after <= j.created_on
              AND j.start_after <= coalesce(at_time, now())
              AND NOT (SELECT paused FROM floor)
              AND NOT (
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
      ) AND pg_try_advisory_xact_lock(hashtextextended('{{schema}}.key:' || j.name || ':' || coalesce(j.singleton_key, ''), 0))
            ORDER BY j.priority DESC, j.created_on, j.id LIMIT batch_size) band
        UNION ALL
        SELECT * FROM (
            SELECT j.id, j.policy, coalesce(j.singleton_key, '') AS key, j.priority, j.created_on, true AS immediate
            FROM {{schema}}.job j
            WHERE j.name = queue_name AND j.state < 'active' AND j.priority > (SELECT priority FROM floor) AND j.start_after <= j.created_on
              AND j.start_after <= coalesce(at_time, now())
              AND NOT (SELECT paused FROM floor)
              AND NOT (
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
      ) AND pg_try_advisory_xact_lock(hashtextextended('{{schema}}.key:' || j.name || ':' || coalesce(j.singleton_key, ''), 0))
            ORDER BY j.priority DESC, j.created_on, j.id LIMIT batch_size) above
        UNION ALL
        SELECT * FROM (
            SELECT j.id, j.policy, coalesce(j.singleton_key, '') AS key, j.priority, j.created_on, true AS immediate
            FROM {{schema}}.job j
            WHERE j.name = queue_name AND j.state < 'active' AND j.priority < (SELECT priority FROM floor) AND j.start_after <= j.created_on
              AND j.start_after <= coalesce(at_time, now())
              AND NOT (SELECT paused FROM floor)
              AND NOT (
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
      ) AND pg_try_advisory_xact_lock(hashtextextended('{{schema}}.key:' || j.name || ':' || coalesce(j.singleton_key, ''), 0))
            ORDER BY j.priority DESC, j.created_on, j.id LIMIT batch_size) below
        UNION ALL
        SELECT * FROM (
            SELECT j.id, j.policy, coalesce(j.singleton_key, '') AS key, j.priority, j.created_on, false AS immediate
            FROM {{schema}}.job j
            WHERE j.name = queue_name AND j.state < 'active' AND j.start_after > j.created_on
              AND j.start_after <= coalesce(at_time, now())
              AND NOT (SELECT paused FROM floor)
              AND NOT (
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
      ) AND pg_try_advisory_xact_lock(hashtextextended('{{schema}}.key:' || j.name || ':' || coalesce(j.singleton_key, ''), 0))
            ORDER BY j.priority DESC, j.created_on, j.id LIMIT batch_size) deferred
    ) r
    ORDER BY r.priority DESC, r.created_on, r.id
    LIMIT batch_size
)
SELECT id FROM (
    SELECT c.id, c.policy,
           row_number() OVER (PARTITION BY c.policy, c.key ORDER BY c.priority DESC, c.created_on, c.id) AS n
    FROM candidates c
) ranked
WHERE policy NOT IN ('singleton', 'stately') OR n = 1;
END
$$;

-- lock_fifo_window: keyed fetch of a key_strict_fifo queue, first step, fast path: walk the first `window_size` ready
-- jobs in fetch order (the fetch index, as a standard fetch does) and take each job that is its
-- key's next job (one probe of the fifo index) on a key with nothing active, in retry or failed
-- (one probe of the strict-fifo index), trying the key's lock only then (CASE fixes the order),
-- until `batch_size` are locked. `seen` is how many jobs the window held: when it held `window_size` and
-- fewer than `batch_size` jobs were taken, heads may lie beyond it and lock_fifo_heads, which visits
-- every key, takes over. The window keeps the statement's cost, and so its plan, independent of
-- the backlog's size.
-- The window is the first `window_size` jobs of the four walks a fetch merges (see fetch_jobs). A row with
-- no id says how many the window held when no head was locked.
CREATE FUNCTION {{schema}}.lock_fifo_window(queue_name text, batch_size integer, window_size integer, at_time timestamptz)
RETURNS TABLE (id uuid, seen bigint)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET jit = off
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
#variable_conflict use_column
BEGIN
RETURN QUERY
WITH floor AS MATERIALIZED (
    SELECT coalesce(f.priority, 0) AS priority,
           coalesce(f.created_on, '-infinity') AS created_on,
           coalesce(f.id, '00000000-0000-0000-0000-000000000000') AS id,
           EXISTS (SELECT 1 FROM {{schema}}.queue p WHERE p.name = queue_name AND p.paused) AS paused
    FROM (SELECT 1) one
    LEFT JOIN LATERAL (
        SELECT ff.priority, ff.created_on, ff.id FROM {{schema}}.fetch_floor ff
        WHERE ff.name = queue_name
        ORDER BY ff.at DESC
        LIMIT 1
    ) f ON true
), ready AS MATERIALIZED (
    SELECT r.* FROM (
        SELECT * FROM (
            SELECT j.id, j.singleton_key, j.priority, j.created_on, true AS immediate FROM {{schema}}.job j
            WHERE j.name = queue_name AND j.state < 'active' AND j.priority = (SELECT priority FROM floor)
              AND (j.created_on, j.id) >= ((SELECT created_on FROM floor), (SELECT id FROM floor))
              AND j.start_after <= j.created_on
              AND j.start_after <= coalesce(at_time, now())
              AND NOT (SELECT paused FROM floor)
            ORDER BY j.priority DESC, j.created_on, j.id LIMIT window_size) band
        UNION ALL
        SELECT * FROM (
            SELECT j.id, j.singleton_key, j.priority, j.created_on, true AS immediate FROM {{schema}}.job j
            WHERE j.name = queue_name AND j.state < 'active' AND j.priority > (SELECT priority FROM floor) AND j.start_after <= j.created_on
              AND j.start_after <= coalesce(at_time, now())
              AND NOT (SELECT paused FROM floor)
            ORDER BY j.priority DESC, j.created_on, j.id LIMIT window_size) above
        UNION ALL
        SELECT * FROM (
            SELECT j.id, j.singleton_key, j.priority, j.created_on, true AS immediate FROM {{schema}}.job j
            WHERE j.name = queue_name AND j.state < 'active' AND j.priority < (SELECT priority FROM floor) AND j.start_after <= j.created_on
              AND j.start_after <= coalesce(at_time, now())
              AND NOT (SELECT paused FROM floor)
            ORDER BY j.priority DESC, j.created_on, j.id LIMIT window_size) below
        UNION ALL
        SELECT * FROM (
            SELECT j.id, j.singleton_key, j.priority, j.created_on, false AS immediate FROM {{schema}}.job j
            WHERE j.name = queue_name AND j.state < 'active' AND j.start_after > j.created_on
              AND j.start_after <= coalesce(at_time, now())
              AND NOT (SELECT paused FROM floor)
            ORDER BY j.priority DESC, j.created_on, j.id LIMIT window_size) deferred
    ) r
    ORDER BY r.priority DESC, r.created_on, r.id
    LIMIT window_size
), next AS MATERIALIZED (
    SELECT c.id, c.priority, c.created_on, c.immediate FROM (
        SELECT w.* FROM ready w ORDER BY w.priority DESC, w.created_on, w.id OFFSET 0
    ) c
    WHERE CASE
        WHEN c.id = (
            SELECT e.id FROM {{schema}}.job e
            WHERE e.name = queue_name AND e.policy = 'key_strict_fifo' AND e.singleton_key = c.singleton_key
              AND e.state < 'active' AND e.start_after <= coalesce(at_time, now())
            ORDER BY e.state DESC, e.created_on, e.id
            LIMIT 1)
        AND NOT EXISTS (
            SELECT 1 FROM {{schema}}.job b
            WHERE b.name = queue_name AND b.singleton_key = c.singleton_key AND b.policy = 'key_strict_fifo'
              AND b.state IN ('active', 'retry', 'failed') AND b.id <> c.id)
        THEN pg_try_advisory_xact_lock(hashtextextended('{{schema}}.key:' || queue_name || ':' || c.singleton_key, 0))
        ELSE false
    END
    LIMIT batch_size
)
SELECT n.id, (SELECT count(*) FROM ready) AS seen FROM next n
UNION ALL
SELECT NULL, (SELECT count(*) FROM ready) WHERE NOT EXISTS (SELECT 1 FROM next);
END
$$;

-- lock_groups: fetch under a group limit (group_concurrency), first step: the next jobs, passing over groups at
-- their limit, each job's group's transaction-level advisory lock taken without waiting (groups
-- another fetcher holds are passed over; a job without a group locks itself). Only a fetcher
-- holding a group's lock activates its jobs, so claim_groups counts the group's active jobs
-- exactly: the limit is never exceeded, not even briefly.
--
-- The jobs are walked in fetch order (the fetch index, as a standard fetch does) and each is
-- checked, then locked, only when reached (CASE fixes that order): a plan that filtered every
-- ready job before sorting would count and lock every group of a small backlog.
--
-- The jobs come from the four walks a fetch merges (see fetch_jobs), each walked so, until it has
-- `batch_size`; groups locked beyond the best `batch_size` stay locked until the fetch's transaction ends.
CREATE FUNCTION {{schema}}.lock_groups(
    queue_name text, batch_size integer, at_time timestamptz, tiers jsonb, group_limit integer,
    group_rate_limit integer, group_rate_period integer
)
RETURNS TABLE (id uuid)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET jit = off
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
#variable_conflict use_column
BEGIN
RETURN QUERY
WITH floor AS MATERIALIZED (
    SELECT coalesce(f.priority, 0) AS priority,
           coalesce(f.created_on, '-infinity') AS created_on,
           coalesce(f.id, '00000000-0000-0000-0000-000000000000') AS id,
           EXISTS (SELECT 1 FROM {{schema}}.queue p WHERE p.name = queue_name AND p.paused) AS paused
    FROM (SELECT 1) one
    LEFT JOIN LATERAL (
        SELECT ff.priority, ff.created_on, ff.id FROM {{schema}}.fetch_floor ff
        WHERE ff.name = queue_name
        ORDER BY ff.at DESC
        LIMIT 1
    ) f ON true
), next AS MATERIALIZED (
    SELECT r.* FROM (
        SELECT * FROM (
            SELECT c.id, c.priority, c.created_on, true AS immediate FROM (
                SELECT j.id, j.name, j.group_id, j.group_tier, j.priority, j.created_on FROM {{schema}}.job j
                WHERE j.name = queue_name AND j.state < 'active' AND j.priority = (SELECT priority FROM floor)
              AND (j.created_on, j.id) >= ((SELECT created_on FROM floor), (SELECT id FROM floor))
              AND j.start_after <= j.created_on
              AND j.start_after <= coalesce(at_time, now())
              AND NOT (SELECT paused FROM floor)
                ORDER BY j.priority DESC, j.created_on, j.id
                OFFSET 0
            ) c
            WHERE CASE
    WHEN c.group_id IS NULL OR ((
        group_limit IS NULL OR (
            SELECT count(*) FROM {{schema}}.job a
            WHERE a.name = c.name AND a.group_id = c.group_id AND a.state = 'active'
        ) < coalesce((tiers ->> c.group_tier)::integer, group_limit)
    ) AND (
        group_rate_limit IS NULL OR (
            SELECT coalesce(sum(s.jobs), 0) FROM {{schema}}.job_start s
            WHERE s.name = c.name AND s.group_id = c.group_id
              AND s.started_on > coalesce(at_time, statement_timestamp())
                                 - make_interval(secs => group_rate_period)
        ) < group_rate_limit
    ))
    THEN pg_try_advisory_xact_lock(
        hashtextextended('{{schema}}.group:' || c.name || ':' || coalesce(c.group_id, c.id::text), 0))
    ELSE false
END
            LIMIT batch_size) band
        UNION ALL
        SELECT * FROM (
            SELECT c.id, c.priority, c.created_on, true AS immediate FROM (
                SELECT j.id, j.name, j.group_id, j.group_tier, j.priority, j.created_on FROM {{schema}}.job j
                WHERE j.name = queue_name AND j.state < 'active' AND j.priority > (SELECT priority FROM floor) AND j.start_after <= j.created_on
              AND j.start_after <= coalesce(at_time, now())
              AND NOT (SELECT paused FROM floor)
                ORDER BY j.priority DESC, j.created_on, j.id
                OFFSET 0
            ) c
            WHERE CASE
    WHEN c.group_id IS NULL OR ((
        group_limit IS NULL OR (
            SELECT count(*) FROM {{schema}}.job a
            WHERE a.name = c.name AND a.group_id = c.group_id AND a.state = 'active'
        ) < coalesce((tiers ->> c.group_tier)::integer, group_limit)
    ) AND (
        group_rate_limit IS NULL OR (
            SELECT coalesce(sum(s.jobs), 0) FROM {{schema}}.job_start s
            WHERE s.name = c.name AND s.group_id = c.group_id
              AND s.started_on > coalesce(at_time, statement_timestamp())
                                 - make_interval(secs => group_rate_period)
        ) < group_rate_limit
    ))
    THEN pg_try_advisory_xact_lock(
        hashtextextended('{{schema}}.group:' || c.name || ':' || coalesce(c.group_id, c.id::text), 0))
    ELSE false
END
            LIMIT batch_size) above
        UNION ALL
        SELECT * FROM (
            SELECT c.id, c.priority, c.created_on, true AS immediate FROM (
                SELECT j.id, j.name, j.group_id, j.group_tier, j.priority, j.created_on FROM {{schema}}.job j
                WHERE j.name = queue_name AND j.state < 'active' AND j.priority < (SELECT priority FROM floor) AND j.start_after <= j.created_on
              AND j.start_after <= coalesce(at_time, now())
              AND NOT (SELECT paused FROM floor)
                ORDER BY j.priority DESC, j.created_on, j.id
                OFFSET 0
            ) c
            WHERE CASE
    WHEN c.group_id IS NULL OR ((
        group_limit IS NULL OR (
            SELECT count(*) FROM {{schema}}.job a
            WHERE a.name = c.name AND a.group_id = c.group_id AND a.state = 'active'
        ) < coalesce((tiers ->> c.group_tier)::integer, group_limit)
    ) AND (
        group_rate_limit IS NULL OR (
            SELECT coalesce(sum(s.jobs), 0) FROM {{schema}}.job_start s
            WHERE s.name = c.name AND s.group_id = c.group_id
              AND s.started_on > coalesce(at_time, statement_timestamp())
                                 - make_interval(secs => group_rate_period)
        ) < group_rate_limit
    ))
    THEN pg_try_advisory_xact_lock(
        hashtextextended('{{schema}}.group:' || c.name || ':' || coalesce(c.group_id, c.id::text), 0))
    ELSE false
END
            LIMIT batch_size) below
        UNION ALL
        SELECT * FROM (
            SELECT c.id, c.priority, c.created_on, false AS immediate FROM (
                SELECT j.id, j.name, j.group_id, j.group_tier, j.priority, j.created_on FROM {{schema}}.job j
                WHERE j.name = queue_name AND j.state < 'active' AND j.start_after > j.created_on
              AND j.start_after <= coalesce(at_time, now())
              AND NOT (SELECT paused FROM floor)
                ORDER BY j.priority DESC, j.created_on, j.id
                OFFSET 0
            ) c
            WHERE CASE
    WHEN c.group_id IS NULL OR ((
        group_limit IS NULL OR (
            SELECT count(*) FROM {{schema}}.job a
            WHERE a.name = c.name AND a.group_id = c.group_id AND a.state = 'active'
        ) < coalesce((tiers ->> c.group_tier)::integer, group_limit)
    ) AND (
        group_rate_limit IS NULL OR (
            SELECT coalesce(sum(s.jobs), 0) FROM {{schema}}.job_start s
            WHERE s.name = c.name AND s.group_id = c.group_id
              AND s.started_on > coalesce(at_time, statement_timestamp())
                                 - make_interval(secs => group_rate_period)
        ) < group_rate_limit
    ))
    THEN pg_try_advisory_xact_lock(
        hashtextextended('{{schema}}.group:' || c.name || ':' || coalesce(c.group_id, c.id::text), 0))
    ELSE false
END
            LIMIT batch_size) deferred
    ) r
    ORDER BY r.priority DESC, r.created_on, r.id
    LIMIT batch_size
)
SELECT id FROM next;
END
$$;

-- claim_groups: fetch under group limits or in turns (lock_groups, fetch_turns), last step, in the
-- transaction that took the locks: of the jobs chosen, as many of each group as its limits leave
-- room for now (counted with a snapshot taken after the groups' locks): its active jobs under the
-- fetch's group_concurrency, its starts in the window under the queue's group_rate_limit; in
-- priority order. On a keyed queue (its keys locked first, by lock_keys or lock_fifo_heads),
-- claim_keyed's checks too. Under a group_rate_limit it records the starts, a row per group, in the
-- same statement. A function, as the fetch's other statements, so that its plan is kept.
CREATE FUNCTION {{schema}}.claim_groups(
    queue_name text, ids uuid[], deadline timestamptz, at_time timestamptz,
    tiers jsonb, group_limit integer, group_rate_limit integer, group_rate_period integer
)
RETURNS TABLE (
    id text, name text, data jsonb, priority integer, retry_count integer, retry_limit integer,
    started_on timestamptz, expire_at timestamptz, created_on timestamptz, singleton_key text, origin jsonb
)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET jit = off
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
#variable_conflict use_column
BEGIN
RETURN QUERY
WITH chosen AS (
    SELECT j.id, j.group_id, j.group_tier,
           row_number() OVER (PARTITION BY j.group_id ORDER BY j.priority DESC, j.created_on, j.id) AS n
    FROM {{schema}}.job j
    WHERE j.name = queue_name AND j.id = ANY(ids) AND j.state < 'active'
), allowed AS (
    SELECT c.id FROM chosen c
    WHERE c.group_id IS NULL OR ((
        group_limit IS NULL
        OR c.n <= coalesce((tiers ->> c.group_tier)::integer, group_limit) - (
            SELECT count(*) FROM {{schema}}.job a
            WHERE a.name = queue_name AND a.group_id = c.group_id AND a.state = 'active')
    ) AND (
        group_rate_limit IS NULL
        OR c.n <= group_rate_limit - (
            SELECT coalesce(sum(s.jobs), 0) FROM {{schema}}.job_start s
            WHERE s.name = queue_name AND s.group_id = c.group_id
              AND s.started_on > coalesce(at_time, statement_timestamp())
                                 - make_interval(secs => group_rate_period))
    ))
), claimed AS (
    UPDATE {{schema}}.job j SET
        state = 'active',
        retry_count = j.retry_count + (j.started_on IS NOT NULL)::integer,
        started_on = coalesce(at_time, statement_timestamp()),
        expire_at = least(
            coalesce(at_time, statement_timestamp()) + make_interval(secs => j.expire_in),
            deadline
        )
    WHERE j.name = queue_name AND j.id = ANY(ARRAY(SELECT a.id FROM allowed a))
      AND (j.state < 'active') IS TRUE  -- by id, never a walk of job_fetch (see resolve_dependents in flows.sql)
      AND NOT (
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
  AND NOT (j.policy = 'key_strict_fifo' AND EXISTS (
      SELECT 1 FROM {{schema}}.job b
      WHERE b.name = j.name AND b.singleton_key = j.singleton_key AND b.policy = 'key_strict_fifo'
        AND b.state IN ('active', 'retry', 'failed') AND b.id <> j.id
      OFFSET 0))
    RETURNING j.id::text, j.name, j.data, j.priority, j.retry_count, j.retry_limit,
          j.started_on, j.expire_at, j.created_on, j.singleton_key, j.origin, j.group_id
), recorded AS (
    INSERT INTO {{schema}}.job_start (name, started_on, group_id, jobs)
    SELECT queue_name, c.started_on, c.group_id, count(*)::integer FROM claimed c
    WHERE group_rate_limit IS NOT NULL
    GROUP BY c.started_on, c.group_id
)
SELECT c.id, c.name, c.data, c.priority, c.retry_count, c.retry_limit,
       c.started_on, c.expire_at, c.created_on, c.singleton_key, c.origin
FROM claimed c;
END
$$;

-- take_fifo_key: for fetch_turns on a key_strict_fifo queue, whether job `job_id` is its key's next
-- (as lock_fifo_heads chooses: the key's job waiting for its retry, else its oldest ready job;
-- none while the key has another job active, waiting for its retry or failed) and, if so, the
-- key's advisory lock taken without waiting (false: another fetcher holds the key). Checked, then
-- locked, in that order: a key is never locked for a job that is not its next.
CREATE FUNCTION {{schema}}.take_fifo_key(
    queue_name text, key text, job_id uuid, job_state {{schema}}.job_state, job_created timestamptz,
    ready_at timestamptz
)
RETURNS boolean
LANGUAGE sql
AS $$
SELECT CASE
    WHEN EXISTS (
        SELECT 1 FROM {{schema}}.job b
        WHERE b.name = queue_name AND b.singleton_key = key AND b.policy = 'key_strict_fifo' AND b.id <> job_id
          AND (b.state IN ('active', 'retry', 'failed')
               OR (job_state = 'created' AND b.state = 'created' AND b.start_after <= ready_at
                   AND (b.created_on, b.id) < (job_created, job_id))))
    THEN false
    ELSE pg_try_advisory_xact_lock(hashtextextended('{{schema}}.key:' || queue_name || ':' || key, 0))
END
$$;

-- fetch_turns: fetch of a round-robin queue (the queue setting fairness): the groups (the send
-- option `group`) take turns. In each priority band, highest first, the groups with a job queued
-- are visited in the order of their ids, starting after the group whose turn came last
-- (fair_turn), each taking as many of its oldest ready jobs as its tier's weight (1 when its tier
-- has none), round after round until `batch_size` are taken or the band has no job left for this
-- fetch. A group with 10,000 jobs waiting and one with 10 take turns; a group that sends a job
-- while another has a backlog gets its turn in the next fetch. Jobs without a group are taken
-- when the groups of their band have none left to give. claim_groups then claims what was taken,
-- in the same statement.
--
-- The groups are found by skipping through the job_turn index: a probe per group visited, which
-- also locks the group's next job (FOR UPDATE SKIP LOCKED: a concurrent fetch takes the groups'
-- next jobs instead), and a second look only for a group that takes more than one job a turn
-- or whose next job is not ready yet. A fetch costs a few probes per job taken, however many jobs
-- wait.
--
-- Under group limits (group_concurrency, group_rate_limit) a group takes a turn only when it
-- has room and its advisory lock is free (group_lock says the same for fifo queues), and no more
-- than its room less what this fetch gave it already; claim_groups, a statement of its own and so
-- with a snapshot taken after the locks, checks the room again.
--
-- On a key_strict_fifo queue a group's turn takes, in the order sent, only jobs that are their
-- key's next (as lock_fifo_heads chooses them: the key's job waiting for its retry, else its
-- oldest ready job, and none while the key has a job active, waiting for its retry or failed)
-- and whose key's advisory lock it takes without waiting; claim_groups checks the keys again.
CREATE FUNCTION {{schema}}.fetch_turns(
    queue_name text, batch_size integer, deadline timestamptz, at_time timestamptz, weights jsonb,
    tiers jsonb, group_limit integer, group_rate_limit integer, group_rate_period integer
)
RETURNS TABLE (
    id text, name text, data jsonb, priority integer, retry_count integer, retry_limit integer,
    started_on timestamptz, expire_at timestamptz, created_on timestamptz, singleton_key text, origin jsonb
)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET jit = off
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
#variable_conflict use_column
DECLARE
    ready_at timestamptz := coalesce(at_time, statement_timestamp());
    limited boolean := group_limit IS NOT NULL OR group_rate_limit IS NOT NULL;
    keyed boolean;
    taken uuid[] := '{}';
    got uuid[];
    band integer := 2147483647;
    last_band integer;
    last_group text;
    start_after_group text;  -- a round visits the groups after this one, then from the first up to it
    wrapped boolean;
    round_took integer;
    scale integer := 1;  -- jobs a turn takes per unit of weight: more once the first round counted the groups
    turn_group text;
    turn_tier text;
    head uuid;  -- the group's next job (locked by the probe when no group limit or key applies)
    head_ready boolean;
    room integer;
    given jsonb := '{}';  -- under group limits: the jobs each group was given in this fetch so far
BEGIN
    SELECT p.policy = 'key_strict_fifo' INTO keyed FROM {{schema}}.queue p
    WHERE p.name = queue_name AND NOT p.paused;
    IF NOT FOUND THEN
        RETURN;  -- paused (or gone)
    END IF;
    SELECT t.priority, t.group_id INTO last_band, last_group FROM {{schema}}.fair_turn t
    WHERE t.name = queue_name ORDER BY t.at DESC LIMIT 1;
    <<bands>>
    LOOP
        SELECT j.priority INTO band FROM {{schema}}.job j
        WHERE j.name = queue_name AND j.state < 'active' AND j.priority < band
        ORDER BY j.priority DESC LIMIT 1;
        EXIT bands WHEN NOT FOUND;
        start_after_group := CASE WHEN band = last_band THEN last_group END;
        <<rounds>>
        LOOP
            round_took := 0;
            turn_group := start_after_group;
            wrapped := start_after_group IS NULL;
            <<groups>>
            LOOP
                IF limited OR keyed THEN
                    -- Not locked: the group may have no room, or its next job's key may be busy.
                    SELECT j.id, j.group_id, j.group_tier, j.start_after <= ready_at
                    INTO head, turn_group, turn_tier, head_ready FROM {{schema}}.job j
                    WHERE j.name = queue_name AND j.state < 'active' AND j.priority = band
                      AND j.group_id > coalesce(turn_group, '')
                    ORDER BY j.group_id, j.created_on, j.id LIMIT 1;
                ELSE
                    SELECT j.id, j.group_id, j.group_tier, j.start_after <= ready_at
                    INTO head, turn_group, turn_tier, head_ready FROM {{schema}}.job j
                    WHERE j.name = queue_name AND j.state < 'active' AND j.priority = band
                      AND j.group_id > coalesce(turn_group, '') AND j.id <> ALL(taken)
                    ORDER BY j.group_id, j.created_on, j.id LIMIT 1
                    FOR UPDATE SKIP LOCKED;
                END IF;
                IF NOT FOUND OR (wrapped AND turn_group > start_after_group) THEN
                    EXIT groups WHEN wrapped;
                    wrapped := true;
                    turn_group := NULL;
                    CONTINUE groups;
                END IF;
                room := least(coalesce((weights ->> turn_tier)::integer, 1) * scale, batch_size - cardinality(taken));
                got := '{}';
                IF limited THEN
                    room := least(room,
                        coalesce(coalesce((tiers ->> turn_tier)::integer, group_limit) - (
                            SELECT count(*) FROM {{schema}}.job a
                            WHERE a.name = queue_name AND a.group_id = turn_group AND a.state = 'active'), room),
                        coalesce(group_rate_limit - (
                            SELECT coalesce(sum(s.jobs), 0) FROM {{schema}}.job_start s
                            WHERE s.name = queue_name AND s.group_id = turn_group
                              AND s.started_on > ready_at - make_interval(secs => group_rate_period)), room))
                        - coalesce((given ->> turn_group)::integer, 0);
                    CONTINUE groups WHEN room <= 0 OR NOT pg_try_advisory_xact_lock(
                        hashtextextended('{{schema}}.group:' || queue_name || ':' || turn_group, 0));
                ELSIF head_ready AND NOT keyed THEN
                    got := ARRAY[head];  -- locked by the probe
                END IF;
                IF room > cardinality(got) THEN
                    got := got || ARRAY(
                        SELECT j.id FROM {{schema}}.job j
                        WHERE j.name = queue_name AND j.state < 'active' AND j.priority = band
                          AND j.group_id = turn_group AND j.start_after <= ready_at AND j.id <> ALL(taken || got)
                          AND (NOT keyed OR {{schema}}.take_fifo_key(queue_name, j.singleton_key, j.id, j.state, j.created_on, ready_at))
                        ORDER BY j.created_on, j.id
                        LIMIT room - cardinality(got)
                        FOR UPDATE SKIP LOCKED);
                END IF;
                taken := taken || got;
                round_took := round_took + cardinality(got);
                IF limited THEN
                    given := given || jsonb_build_object(
                        turn_group, coalesce((given ->> turn_group)::integer, 0) + cardinality(got));
                END IF;
                IF cardinality(got) > 0 THEN
                    last_band := band;
                    last_group := turn_group;
                END IF;
                EXIT bands WHEN cardinality(taken) >= batch_size;
            END LOOP groups;
            EXIT rounds WHEN round_took = 0;
            -- The next rounds: as many turns at once as the room left would take, in proportion.
            scale := greatest(1, (batch_size - cardinality(taken)) / round_took);
        END LOOP rounds;
        -- The band's jobs without a group, once its groups have given what they had.
        taken := taken || ARRAY(
            SELECT j.id FROM {{schema}}.job j
            WHERE j.name = queue_name AND j.state < 'active' AND j.priority = band
              AND j.group_id IS NULL AND j.start_after <= ready_at AND j.id <> ALL(taken)
              AND (NOT keyed OR {{schema}}.take_fifo_key(queue_name, j.singleton_key, j.id, j.state, j.created_on, ready_at))
            ORDER BY j.priority DESC, j.created_on, j.id
            LIMIT batch_size - cardinality(taken)
            FOR UPDATE SKIP LOCKED);
        EXIT bands WHEN cardinality(taken) >= batch_size;
    END LOOP bands;
    IF last_group IS NOT NULL THEN
        INSERT INTO {{schema}}.fair_turn (name, priority, group_id) VALUES (queue_name, last_band, last_group);
    END IF;
    -- A statement of its own: its snapshot is taken after the groups' and the keys' locks.
    RETURN QUERY SELECT * FROM {{schema}}.claim_groups(
        queue_name, taken, deadline, at_time, tiers, group_limit, group_rate_limit, group_rate_period);
END
$$;

-- A queue's history (Queue.history): per queue and minute, what happened to its jobs, recorded by
-- maintenance once the minute is over (record_history, in sql/queries/maintenance.sql) and kept
-- 14 days. A row only for a queue that had something happen in the minute: an idle queue costs
-- nothing. Counts: jobs sent (by their ids' time: a UUIDv7 holds the millisecond it was made; an
-- id given by the sender counts where its bits fall), attempts started (of the jobs finished or
-- running when the minute is recorded: an attempt that failed or expired and waits for its retry
-- is not, its retry is), jobs completed, failed and cancelled, attempts ended by expiry (written
-- by maintenance's expiry as it happens). Wait: seconds from ready (sent, or its delay or retry
-- delay over) to start, of the attempts started in the minute; run: seconds from start to end, of
-- the jobs finished in the minute; each as p50, p95 and p99.
CREATE TABLE {{schema}}.queue_history (
    name text NOT NULL,
    minute timestamptz NOT NULL,
    sent integer NOT NULL DEFAULT 0,
    started integer NOT NULL DEFAULT 0,
    completed integer NOT NULL DEFAULT 0,
    failed integer NOT NULL DEFAULT 0,
    cancelled integer NOT NULL DEFAULT 0,
    expired integer NOT NULL DEFAULT 0,
    wait_p50 real,
    wait_p95 real,
    wait_p99 real,
    run_p50 real,
    run_p95 real,
    run_p99 real,
    PRIMARY KEY (name, minute)
);
CREATE INDEX queue_history_minute ON {{schema}}.queue_history (minute);

-- Up to where record_history has recorded the minutes (one row).
CREATE TABLE {{schema}}.history_mark (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    recorded_through timestamptz NOT NULL
);

-- The smallest UUIDv7 (uuid_v7, above) made at `at` or later: ids in [uuid_v7_floor(a),
-- uuid_v7_floor(b)) were made between a and b, so that an index range on ids counts sends.
CREATE FUNCTION {{schema}}.uuid_v7_floor(at timestamptz) RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT encode(
        substring(int8send(ceil(extract(epoch FROM at) * 1000)::bigint) FROM 3) || '\x00000000000000000000'::bytea,
        'hex')::uuid
$$;

-- The time a UUIDv7 (uuid_v7, above) was made, to the millisecond.
CREATE FUNCTION {{schema}}.uuid_v7_time(id uuid) RETURNS timestamptz
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT to_timestamp(('x' || substr(replace(id::text, '-', ''), 1, 12))::bit(48)::bigint / 1000.0)
$$;

-- Publish/subscribe (jobqueue/publishing.py), as pg-boss: a queue subscribed to an event gets a
-- job of every event published, in the statement that publishes it. A queue's subscriptions go
-- with it.
CREATE TABLE {{schema}}.subscription (
    event text NOT NULL CHECK (event <> ''),
    name text NOT NULL REFERENCES {{schema}}.queue (name) ON DELETE CASCADE,
    created_on timestamptz NOT NULL DEFAULT now(),
    updated_on timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event, name)
);
