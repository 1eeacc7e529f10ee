-- The platform's own data, in the schema "pods" beside the job queue's.
-- Applied by pods.schema.migrate(); numbered changes will follow as migrations.

CREATE SCHEMA IF NOT EXISTS pods;

CREATE TABLE pods.version (
    version integer NOT NULL,
    migrated_on timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pods.host (
    id text PRIMARY KEY,
    address text NOT NULL,          -- host name or IP of the host agent
    agent_port integer NOT NULL DEFAULT 8080 CHECK (agent_port BETWEEN 1 AND 65535),
    tier text NOT NULL,
    capacity integer NOT NULL CHECK (capacity >= 0),
    -- Slots taken by pods placed here; updated in the same statement that
    -- picks the host, so concurrent provisions can never overbook it.
    used integer NOT NULL DEFAULT 0,
    created_on timestamptz NOT NULL DEFAULT now(),
    CHECK (used BETWEEN 0 AND capacity)
);

CREATE TABLE pods.pod (
    id text PRIMARY KEY,
    owner_id text NOT NULL,
    spec jsonb NOT NULL DEFAULT '{}',
    tier text NOT NULL,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN (
        'pending', 'provisioning', 'running', 'stopped', 'unhealthy', 'failed', 'terminated')),
    host_id text REFERENCES pods.host (id),
    internal_ip text,
    github_key_id text,
    last_health_check timestamptz,
    error text,
    created_on timestamptz NOT NULL DEFAULT now(),
    updated_on timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX pod_status ON pods.pod (status, updated_on);

-- Every status a pod passes through, with when: the source of usage.
CREATE TABLE pods.pod_status_history (
    pod_id text NOT NULL REFERENCES pods.pod (id) ON DELETE CASCADE,
    status text NOT NULL,
    changed_on timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX pod_status_history_pod ON pods.pod_status_history (pod_id, changed_on);

CREATE TABLE pods.snapshot (
    id text PRIMARY KEY,
    pod_id text NOT NULL,
    storage_url text NOT NULL,
    size_bytes bigint NOT NULL DEFAULT 0,
    created_on timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX snapshot_created ON pods.snapshot (created_on);

CREATE TABLE pods.server_metric (
    host_id text NOT NULL,
    name text NOT NULL,
    value double precision NOT NULL,
    created_on timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pods.pod_metric (
    pod_id text NOT NULL,
    name text NOT NULL,
    value double precision NOT NULL,
    created_on timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pods.pod_log (
    pod_id text NOT NULL,
    line text NOT NULL,
    created_on timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX server_metric_created ON pods.server_metric (created_on);
CREATE INDEX pod_metric_created ON pods.pod_metric (created_on);
CREATE INDEX pod_log_created ON pods.pod_log (created_on);

CREATE TABLE pods.hourly_usage (
    hour timestamptz NOT NULL,
    pod_id text NOT NULL,
    owner_id text NOT NULL,
    running_seconds integer NOT NULL CHECK (running_seconds BETWEEN 0 AND 3600),
    PRIMARY KEY (hour, pod_id)
);

-- Emails sent, by the job that sent them: a retried job does not send twice.
CREATE TABLE pods.sent_email (
    job_id text PRIMARY KEY,
    recipient text NOT NULL,
    template text NOT NULL,
    message_id text,
    sent_on timestamptz NOT NULL DEFAULT now()
);

-- Keep updated_on and the status history right whatever code changes a pod.
CREATE FUNCTION pods.touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_on := now();
    RETURN NEW;
END
$$;

CREATE FUNCTION pods.record_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO pods.pod_status_history (pod_id, status) VALUES (NEW.id, NEW.status);
    RETURN NULL;
END
$$;

CREATE TRIGGER pod_touch BEFORE UPDATE ON pods.pod FOR EACH ROW EXECUTE FUNCTION pods.touch();
CREATE TRIGGER pod_status_inserted AFTER INSERT ON pods.pod FOR EACH ROW EXECUTE FUNCTION pods.record_status();
CREATE TRIGGER pod_status_changed AFTER UPDATE OF status ON pods.pod
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION pods.record_status();
