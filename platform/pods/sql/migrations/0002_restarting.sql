-- A pod whose health check requested a restart is "restarting" until the restart
-- runs: the health checks pass it over, so one unhealthy pod queues one restart.
ALTER TABLE pods.pod DROP CONSTRAINT pod_status_check;
ALTER TABLE pods.pod ADD CONSTRAINT pod_status_check CHECK (status IN (
    'pending', 'provisioning', 'running', 'restarting', 'stopped', 'unhealthy', 'failed', 'terminated'));
