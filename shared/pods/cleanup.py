"""cleanup-old: metrics and logs after 5 days, terminated pods after 7 (their
GitHub keys first), snapshots after 30 (S3 object first, then the record).

Everything in bounded batches; the external deletion comes before the row's,
so a crash in between leaves the row for the next run instead of an orphan.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from jobqueue import Job
from pods.clients.github import GitHub
from pods.context import Resources
from pods.schema import QUERIES
from pods.snapshots import s3
from runtime.observability import logger

METRICS_DAYS = 5
TERMINATED_DAYS = 7
SNAPSHOT_DAYS = 30
BATCH = 500


def _delete_in_batches(conn: Any, query: str, before: datetime) -> int:
    total = 0
    while True:
        deleted = int(conn.execute(QUERIES[query], {"before": before, "limit": BATCH}).rowcount)
        total += deleted
        if deleted < BATCH:
            return total


def cleanup_old(
    resources: Resources, job: Job, now: datetime | None = None, github: GitHub | None = None
) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    github = github or GitHub.from_env()
    counts: dict[str, Any] = {}
    with resources.connection() as conn:
        metrics_before = now - timedelta(days=METRICS_DAYS)
        counts["server_metrics"] = _delete_in_batches(conn, "delete_old_server_metrics", metrics_before)
        counts["pod_metrics"] = _delete_in_batches(conn, "delete_old_pod_metrics", metrics_before)
        counts["pod_logs"] = _delete_in_batches(conn, "delete_old_pod_logs", metrics_before)
        pods_before = now - timedelta(days=TERMINATED_DAYS)
        counts["pods"] = counts["github_keys"] = 0
        while rows := conn.execute(QUERIES["old_terminated_pods"], {"before": pods_before, "limit": BATCH}).fetchall():
            for pod_id, key_id in rows:
                if key_id and github.delete_key(key_id):
                    counts["github_keys"] += 1
                conn.execute(QUERIES["delete_pod"], {"id": pod_id})
                counts["pods"] += 1
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
