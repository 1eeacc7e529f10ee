-- The platform's statements, named like the queue's (parsed by jobqueue.sqlfiles).

-- name: lock_migrations
-- Serialise pods.schema.migrate() across processes.
SELECT pg_advisory_xact_lock(hashtextextended('pods.migrate', 0));

-- name: schema_installed
-- Whether the platform's version table exists.
SELECT to_regclass('pods.version') IS NOT NULL AS present;

-- name: get_version
-- The platform schema's version: the newest recorded.
SELECT max(version) FROM pods.version;

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
-- Concurrent provisions queue on the host row (FOR UPDATE) and Postgres re-checks the room
-- after the wait, so a host is never overbooked (the CHECK is the last guard). A claim that
-- lost its host to others that way finds no row; the caller tries again while the tier has room.
WITH target AS (
    -- The pod, locked: two provisions of one pod cannot both place it.
    SELECT id FROM pods.pod WHERE id = %(pod_id)s AND host_id IS NULL FOR UPDATE
), candidate AS (
    SELECT h.id FROM pods.host h, target
    WHERE h.tier = %(tier)s AND h.used < h.capacity
    ORDER BY h.used::float / greatest(h.capacity, 1), h.id
    LIMIT 1
    FOR UPDATE OF h
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

-- name: tier_has_room
-- Whether any host of a tier has a free slot.
SELECT EXISTS (SELECT 1 FROM pods.host WHERE tier = %(tier)s AND used < capacity) AS present;

-- name: tier_exists
-- Whether any host serves a tier.
SELECT EXISTS (SELECT 1 FROM pods.host WHERE tier = %(tier)s) AS present;

-- name: pods_not_healthy
-- Pods that did not answer their last health check (unhealthy) or answered unhealthy (restarting).
SELECT id, status FROM pods.pod WHERE status IN ('unhealthy', 'restarting') ORDER BY id;

-- name: running_pods
-- The pods to health-check: running ones, and unhealthy ones (unreachable last time) to see them recover.
SELECT id FROM pods.pod WHERE status IN ('running', 'unhealthy') ORDER BY id;

-- name: health_ok
-- A healthy answer: note the check; an unhealthy pod that recovered is running again.
UPDATE pods.pod SET last_health_check = now(),
    status = CASE WHEN status = 'unhealthy' THEN 'running' ELSE status END
WHERE id = %(id)s;

-- name: health_seen
-- The pod answered, unhealthy: note the check, and mark it restarting unless it already is.
-- A row comes back only when it was not: then (and only then) the caller requests a restart.
UPDATE pods.pod SET last_health_check = now(), status = 'restarting'
WHERE id = %(id)s AND status IN ('running', 'unhealthy')
RETURNING id;

-- name: health_unreachable
-- The pod did not answer: mark it unhealthy.
UPDATE pods.pod SET last_health_check = now(),
    status = CASE WHEN status = 'running' THEN 'unhealthy' ELSE status END
WHERE id = %(id)s;

-- name: record_snapshot
-- Record a snapshot (again, harmlessly, when its job is retried).
INSERT INTO pods.snapshot (id, pod_id, storage_url, size_bytes) VALUES (%(id)s, %(pod_id)s, %(url)s, %(size)s)
ON CONFLICT (id) DO UPDATE SET storage_url = EXCLUDED.storage_url, size_bytes = EXCLUDED.size_bytes;

-- name: get_snapshot
-- Where a snapshot is stored.
SELECT storage_url FROM pods.snapshot WHERE id = %(id)s;

-- name: delete_old_server_metrics
-- Delete up to `limit` server metrics older than `before`.
DELETE FROM pods.server_metric WHERE ctid IN (
    SELECT ctid FROM pods.server_metric WHERE created_on < %(before)s LIMIT %(limit)s);

-- name: delete_old_pod_metrics
-- Delete up to `limit` pod metrics older than `before`.
DELETE FROM pods.pod_metric WHERE ctid IN (
    SELECT ctid FROM pods.pod_metric WHERE created_on < %(before)s LIMIT %(limit)s);

-- name: delete_old_pod_logs
-- Delete up to `limit` pod log lines older than `before`.
DELETE FROM pods.pod_log WHERE ctid IN (
    SELECT ctid FROM pods.pod_log WHERE created_on < %(before)s LIMIT %(limit)s);

-- name: old_terminated_pods
-- Terminated pods last changed before `before`, by id from after `after`, up to `limit`.
SELECT id FROM pods.pod
WHERE status = 'terminated' AND updated_on < %(before)s AND id > %(after)s
ORDER BY id LIMIT %(limit)s;

-- name: terminated_pod_key
-- A terminated pod's GitHub key id (NULL: none); no row if the pod is gone or not terminated.
SELECT github_key_id FROM pods.pod WHERE id = %(id)s AND status = 'terminated';

-- name: delete_pod
-- Delete a pod record (its status history goes with it).
DELETE FROM pods.pod WHERE id = %(id)s;

-- name: old_snapshots
-- Snapshots created before `before`, oldest first.
SELECT id, storage_url FROM pods.snapshot WHERE created_on < %(before)s ORDER BY created_on LIMIT %(limit)s;

-- name: delete_snapshot
-- Delete a snapshot's record.
DELETE FROM pods.snapshot WHERE id = %(id)s;

-- name: usage_for_hour
-- Seconds each pod was running within [hour, hour + 1 hour), from its status history.
WITH spans AS (
    SELECT pod_id, status, changed_on AS began,
           lead(changed_on, 1, 'infinity') OVER (PARTITION BY pod_id ORDER BY changed_on) AS ended
    FROM pods.pod_status_history
    WHERE changed_on < %(hour)s::timestamptz + interval '1 hour'
)
SELECT s.pod_id, p.owner_id,
       sum(extract(epoch FROM least(s.ended, %(hour)s::timestamptz + interval '1 hour') - greatest(s.began, %(hour)s::timestamptz)))::integer AS seconds
FROM spans s JOIN pods.pod p ON p.id = s.pod_id
WHERE s.status = 'running' AND s.ended > %(hour)s::timestamptz
GROUP BY s.pod_id, p.owner_id;

-- name: upsert_usage
-- Store one pod's usage of one hour; recomputing the hour replaces it.
INSERT INTO pods.hourly_usage (hour, pod_id, owner_id, running_seconds)
VALUES (%(hour)s, %(pod_id)s, %(owner_id)s, %(seconds)s)
ON CONFLICT (hour, pod_id) DO UPDATE SET running_seconds = EXCLUDED.running_seconds, owner_id = EXCLUDED.owner_id;

-- name: insert_pod
-- Create a pod's record when its provisioning job comes first (no-op when it exists); a row
-- comes back only when this inserted it.
INSERT INTO pods.pod (id, owner_id, spec, tier) VALUES (%(id)s, %(owner_id)s, %(spec)s, %(tier)s)
ON CONFLICT (id) DO NOTHING
RETURNING id;

-- name: claim_email
-- Claim the sending of one job's email; no row when it was sent already.
INSERT INTO pods.sent_email (job_id, recipient, template) VALUES (%(job_id)s, %(recipient)s, %(template)s)
ON CONFLICT (job_id) DO NOTHING
RETURNING job_id;

-- name: record_email
-- Keep the provider's message id of a sent email.
UPDATE pods.sent_email SET message_id = %(message_id)s WHERE job_id = %(job_id)s;
