-- Round robin on key_strict_fifo queues: the groups take turns among the keys' next jobs
-- (schema.sql: fetch_turns, take_fifo_key).
ALTER TABLE {{schema}}.queue DROP CONSTRAINT queue_fairness_policy;
ALTER TABLE {{schema}}.queue ADD CONSTRAINT queue_fairness_policy CHECK (
    fairness = '"fifo"' OR policy IN ('standard', 'short', 'exclusive', 'key_strict_fifo'));

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
CREATE OR REPLACE FUNCTION {{schema}}.fetch_turns(
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
