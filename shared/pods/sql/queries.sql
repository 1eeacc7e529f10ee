-- The platform's statements, named like the queue's (parsed by jobqueue.sqlfiles).

-- name: lock_migrations
-- Serialise pods.schema.migrate() across processes.
SELECT pg_advisory_xact_lock(hashtextextended('pods.migrate', 0));

-- name: schema_installed
-- Whether the platform's version table exists.
SELECT to_regclass('pods.version') IS NOT NULL AS present;

-- name: set_version
-- Record the platform schema's version.
INSERT INTO pods.version (version) VALUES (%(version)s);

-- name: get_pod
-- One pod.
SELECT p.*, h.address AS host_address, h.agent_port AS host_port
FROM pods.pod p LEFT JOIN pods.host h ON h.id = p.host_id
WHERE p.id = %(id)s;

-- name: set_status
-- Change a pod's status (and error, when given; cleared otherwise).
UPDATE pods.pod SET status = %(status)s, error = %(error)s WHERE id = %(id)s RETURNING id;

-- name: claim_host
-- Place a pod: take one slot on the least used host of its tier that has room, in one statement.
-- FOR UPDATE SKIP LOCKED plus the capacity check in the UPDATE make concurrent provisions
-- take different slots or fail; a host can never be overbooked (the CHECK is the last guard).
WITH target AS (
    -- The pod, locked: two provisions of one pod cannot both place it.
    SELECT id FROM pods.pod WHERE id = %(pod_id)s AND host_id IS NULL FOR UPDATE
), candidate AS (
    SELECT h.id FROM pods.host h, target
    WHERE h.tier = %(tier)s AND h.used < h.capacity
    ORDER BY h.used::float / greatest(h.capacity, 1), h.id
    LIMIT 1
    FOR UPDATE OF h SKIP LOCKED
), placed AS (
    UPDATE pods.host h SET used = h.used + 1
    FROM candidate WHERE h.id = candidate.id AND h.used < h.capacity
    RETURNING h.id, h.address, h.agent_port
)
UPDATE pods.pod p SET host_id = placed.id, status = 'provisioning'
FROM placed
WHERE p.id = %(pod_id)s AND p.host_id IS NULL
RETURNING placed.id AS host_id, placed.address, placed.agent_port;

-- name: release_host
-- Give a pod's slot back to its host and forget the placement (nothing when it has none).
WITH old AS (
    SELECT id, host_id FROM pods.pod WHERE id = %(pod_id)s AND host_id IS NOT NULL FOR UPDATE
), pod AS (
    UPDATE pods.pod p SET host_id = NULL, internal_ip = NULL FROM old WHERE p.id = old.id RETURNING old.host_id
)
UPDATE pods.host h SET used = greatest(h.used - 1, 0) FROM pod WHERE h.id = pod.host_id
RETURNING h.id;

-- name: mark_running
-- A pod is up on its host at internal_ip.
UPDATE pods.pod SET status = 'running', internal_ip = %(internal_ip)s, error = NULL
WHERE id = %(id)s RETURNING id;

-- name: tier_exists
-- Whether any host serves a tier.
SELECT EXISTS (SELECT 1 FROM pods.host WHERE tier = %(tier)s) AS present;

-- name: running_pods
-- The pods to health-check: running ones.
SELECT id FROM pods.pod WHERE status = 'running' ORDER BY id;

-- name: health_ok
-- A healthy answer: note the check; an unhealthy pod that recovered is running again.
UPDATE pods.pod SET last_health_check = now(),
    status = CASE WHEN status = 'unhealthy' THEN 'running' ELSE status END
WHERE id = %(id)s;

-- name: health_seen
-- The pod answered, unhealthy: note the check (a restart is queued separately).
UPDATE pods.pod SET last_health_check = now() WHERE id = %(id)s;

-- name: health_unreachable
-- The pod did not answer: mark it unhealthy.
UPDATE pods.pod SET last_health_check = now(),
    status = CASE WHEN status = 'running' THEN 'unhealthy' ELSE status END
WHERE id = %(id)s;
