"""cleanup-old: metrics and logs after 5 days, terminated pods after 7 (their
GitHub keys first), snapshots after 30 (S3 object first, then the record).

Everything in bounded batches; the external deletion comes before the row's,
so a crash in between leaves the row for the next run instead of an orphan.

A terminated pod is removed by a job of its own, remove-old-pod, which
cleanup-old sends: its GitHub key is deleted through the GitHub API, whose
quota (5,000 requests an hour per token) the remove-old-pod queue's rate limit
keeps to however many pods a day leaves behind. The queue admits one job per
pod (exclusive): a pod still waiting from yesterday is not sent twice.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from jobqueue import Job
from jobqueue.settings import NewJob
from pods.clients.github import GitHub
from pods.context import Resources
from pods.payloads import require
from pods.schema import QUERIES
from pods.snapshots import s3
from runtime.observability import logger

METRICS_DAYS = 5
TERMINATED_DAYS = 7
SNAPSHOT_DAYS = 30
BATCH = 500
REMOVE_OLD_POD = "remove-old-pod"
# GitHub's quota of API requests per token: at most this many keys deleted an hour (one request each).
GITHUB_REQUESTS_PER_HOUR = 5000


def _delete_in_batches(conn: Any, query: str, before: datetime) -> int:
    total = 0
    while True:
        deleted = int(conn.execute(QUERIES[query], {"before": before, "limit": BATCH}).rowcount)
        total += deleted
        if deleted < BATCH:
            return total


def cleanup_old(resources: Resources, job: Job, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    counts: dict[str, Any] = {}
    with resources.connection() as conn:
        metrics_before = now - timedelta(days=METRICS_DAYS)
        counts["server_metrics"] = _delete_in_batches(conn, "delete_old_server_metrics", metrics_before)
        counts["pod_metrics"] = _delete_in_batches(conn, "delete_old_pod_metrics", metrics_before)
        counts["pod_logs"] = _delete_in_batches(conn, "delete_old_pod_logs", metrics_before)
        pods_before = now - timedelta(days=TERMINATED_DAYS)
        counts["pods_queued"] = 0
        after = ""
        while rows := conn.execute(
            QUERIES["old_terminated_pods"], {"before": pods_before, "after": after, "limit": BATCH}
        ).fetchall():
            removals: list[NewJob] = [{"data": {"podId": pod_id}, "singleton_key": pod_id} for (pod_id,) in rows]
            counts["pods_queued"] += len(resources.queue(conn).insert(REMOVE_OLD_POD, removals))
            after = rows[-1][0]
        snapshots_before = now - timedelta(days=SNAPSHOT_DAYS)
        counts["snapshots"] = 0
        client = None
        while rows := conn.execute(QUERIES["old_snapshots"], {"before": snapshots_before, "limit": BATCH}).fetchall():
            client = client or s3()
            for snapshot_id, url in rows:
                bucket, _, key = url.removeprefix("s3://").partition("/")
                client.delete_object(Bucket=bucket, Key=key)  # deleting a missing object succeeds
                conn.execute(QUERIES["delete_snapshot"], {"id": snapshot_id})
                counts["snapshots"] += 1
    logger.info("cleaned up old resources", extra=counts)
    return counts


def remove_old_pod(resources: Resources, job: Job, github: GitHub | None = None) -> dict[str, Any]:
    """remove-old-pod: delete a terminated pod's GitHub key, then its record.

    A GitHub failure raises (the job is retried) and leaves the record, so the key is not
    forgotten; a key already gone counts as deleted.
    """
    pod_id = require(job.data, "podId")
    with resources.connection() as conn:
        row = conn.execute(QUERIES["terminated_pod_key"], {"id": pod_id}).fetchone()
        if row is None:
            return {"podId": pod_id, "removed": False}  # gone already, or no longer terminated
        (key_id,) = row
        deleted = bool(key_id) and (github or GitHub.from_env()).delete_key(key_id)
        conn.execute(QUERIES["delete_pod"], {"id": pod_id})
    return {"podId": pod_id, "removed": True, "github_key_deleted": deleted}
