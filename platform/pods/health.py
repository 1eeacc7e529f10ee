"""health-check and health-check-all.

A healthy pod gets its last_health_check; an unhealthy one is marked
"restarting" and gets one restart in its lifecycle queue, in the same
transaction (a pod already restarting gets none, so a flapping pod cannot queue
a storm of restarts); an unreachable one is marked unhealthy. health-check-all
fans out one health-check per running pod in one batch insert, as a batch: when
the last check has finished, a health-report job lists the pods left unhealthy or
restarting.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from jobqueue import Job
from jobqueue.settings import BatchSpec
from pods import lifecycle
from pods.clients.host_agent import HostAgentError
from pods.context import Resources
from pods.payloads import optional
from pods.records import pod
from pods.schema import QUERIES
from runtime.observability import logger

TEAM_SIZE = 5  # pods checked at once by one health-check job
HEALTH_TIMEOUT_S = 5.0  # a pod that has not answered by then is unhealthy


def check_pod(resources: Resources, pod_id: str) -> str:
    """Check one pod; returns "healthy", "unhealthy" (restart queued) or "unreachable"."""
    with resources.connection() as conn:
        row = pod(conn, pod_id)
        if row["host_id"] is None or row["status"] not in ("running", "unhealthy", "restarting"):
            return "skipped"
        agent = resources.agent(row["host_address"], row["host_port"])
        try:
            healthy = agent.health(pod_id, timeout=HEALTH_TIMEOUT_S)
        except HostAgentError:
            conn.execute(QUERIES["health_unreachable"], {"id": pod_id})
            return "unreachable"
        if healthy:
            conn.execute(QUERIES["health_ok"], {"id": pod_id})
            return "healthy"
        with conn.transaction():
            if conn.execute(QUERIES["health_seen"], {"id": pod_id}).fetchone() is not None:
                lifecycle.request(resources.queue(conn), "restart", pod_id, reason=lifecycle.UNHEALTHY)
        return "unhealthy"


def health_check(resources: Resources, job: Job) -> dict[str, Any]:
    pod_id = optional(job.data, "podId")
    if pod_id is not None:
        return {pod_id: check_pod(resources, pod_id)}
    # No pod given: check all running pods.
    with resources.connection() as conn:
        pod_ids = [row[0] for row in conn.execute(QUERIES["running_pods"]).fetchall()]
    with ThreadPoolExecutor(TEAM_SIZE) as pool:
        results = list(pool.map(lambda pid: check_pod(resources, pid), pod_ids))
    return dict(zip(pod_ids, results, strict=True))


HEALTH_REPORT = "health-report"


def health_check_all(resources: Resources, job: Job) -> dict[str, Any]:
    """One health-check per pod to check, as a batch whose last check sends a health-report."""
    with resources.connection() as conn:
        pod_ids = [row[0] for row in conn.execute(QUERIES["running_pods"]).fetchall()]
        if not pod_ids:
            return {"checks_queued": 0}
        queue = resources.queue(conn)
        # The batch's id is this job's: a retry of this job (its first attempt's batch made, its
        # completion lost) makes no second round of checks.
        batch: BatchSpec = {
            "id": f"health-check-all:{job.id}",
            "on_finish": {"name": HEALTH_REPORT, "data": {"pods": len(pod_ids)}},
        }
        if (made := queue.get_batch(batch["id"])) is not None:
            return {"checks_queued": made.total, "batch": made.id, "already": True}
        ids = queue.insert("health-check", [{"data": {"podId": pid}} for pid in pod_ids], batch=batch)
    return {"checks_queued": len(ids), "batch": batch["id"]}


def health_report(resources: Resources, job: Job) -> dict[str, Any]:
    """health-report: once a round of health checks has finished, the pods it left unhealthy (not
    answering) or restarting (answering unhealthy), with the round's counts (the job's origin)."""
    counts = (job.origin or {}).get("batch") or {}
    with resources.connection() as conn:
        rows = conn.execute(QUERIES["pods_not_healthy"]).fetchall()
    report = {
        "checked": counts.get("total"),
        "checks_failed": (counts.get("failed") or 0) + (counts.get("cancelled") or 0),
        "unhealthy": [pod_id for pod_id, status in rows if status == "unhealthy"],
        "restarting": [pod_id for pod_id, status in rows if status == "restarting"],
    }
    if report["unhealthy"] or report["restarting"] or report["checks_failed"]:
        logger.warning("health round found pods in trouble", extra=report)
    return report
