-- Round-robin queues (the queue setting fairness): the groups of a queue take turns in a fetch
-- (schema.sql: fetch_turns). Existing queues keep the order sent ("fifo"). A grouped fetch's claim
-- becomes a function too (claim_groups), its plan kept.
--
-- The index job_turn is built here on every partition of the job table, under a lock that holds
-- sends and fetches while it reads the queued jobs (seconds per million).
ALTER TABLE {{schema}}.queue ADD COLUMN fairness jsonb NOT NULL DEFAULT '"fifo"'
    CONSTRAINT queue_fairness_check CHECK (
        fairness IN ('"fifo"', '"round_robin"') OR jsonb_typeof(fairness -> 'tiers') = 'object');
ALTER TABLE {{schema}}.queue ALTER COLUMN fairness DROP DEFAULT;
ALTER TABLE {{schema}}.queue ADD CONSTRAINT queue_fairness_policy
    CHECK (fairness = '"fifo"' OR policy IN ('standard', 'short', 'exclusive'));

CREATE INDEX job_turn ON {{schema}}.job (name, priority DESC, group_id, created_on, id)
    WHERE state < 'active' AND group_id IS NOT NULL;
SELECT {{schema}}.name_partition_indexes(c.relname)
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = '{{schema}}.job'::regclass;

CREATE TABLE {{schema}}.fair_turn (
    name text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    priority integer NOT NULL,
    group_id text NOT NULL
);
CREATE INDEX fair_turn_newest ON {{schema}}.fair_turn (name, at DESC);

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
    head uuid;  -- the group's next job (locked by the probe when no group limit applies)
    head_ready boolean;
    room integer;
    given jsonb := '{}';  -- under group limits: the jobs each group was given in this fetch so far
BEGIN
    IF EXISTS (SELECT 1 FROM {{schema}}.queue p WHERE p.name = queue_name AND p.paused) THEN
        RETURN;
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
                IF limited THEN
                    -- Not locked: the group may have no room, or another fetch may hold it.
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
                ELSIF head_ready THEN
                    got := ARRAY[head];  -- locked by the probe
                END IF;
                IF room > cardinality(got) THEN
                    got := got || ARRAY(
                        SELECT j.id FROM {{schema}}.job j
                        WHERE j.name = queue_name AND j.state < 'active' AND j.priority = band
                          AND j.group_id = turn_group AND j.start_after <= ready_at AND j.id <> ALL(taken || got)
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
            ORDER BY j.priority DESC, j.created_on, j.id
            LIMIT batch_size - cardinality(taken)
            FOR UPDATE SKIP LOCKED);
        EXIT bands WHEN cardinality(taken) >= batch_size;
    END LOOP bands;
    IF last_group IS NOT NULL THEN
        INSERT INTO {{schema}}.fair_turn (name, priority, group_id) VALUES (queue_name, last_band, last_group);
    END IF;
    -- A statement of its own: its snapshot is taken after the groups' locks.
    RETURN QUERY SELECT * FROM {{schema}}.claim_groups(
        queue_name, taken, deadline, at_time, tiers, group_limit, group_rate_limit, group_rate_period);
END
$$;
