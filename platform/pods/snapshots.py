"""A pod's snapshot and restore actions (pods.lifecycle): archives made by the host agent, kept in S3.

The snapshot id is the job's id, so a retried job writes the same object and
the same row again instead of a second snapshot.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from typing import Any

from jobqueue import Job, JobError
from pods import config
from pods.context import Resources
from pods.payloads import require
from pods.records import placed
from pods.schema import QUERIES


def bucket() -> str:
    name = config.snapshot_bucket()
    if not name:
        raise JobError("SNAPSHOT_BUCKET is not set", should_retry=False)
    return name


def s3() -> Any:
    import boto3

    return boto3.client("s3")


def _bytes_copied(job: Job, total: int) -> Callable[[int], None]:
    """boto3's transfer callback (called with each chunk's size, from its threads): the job's
    progress in bytes (Job.set_progress is cheap to call often: it is written once a second)."""
    done = 0
    lock = threading.Lock()

    def copied(chunk: int) -> None:
        nonlocal done
        with lock:
            done += chunk
            job.set_progress({"done": done, "total": total, "unit": "bytes"})

    job.set_progress({"done": 0, "total": total, "unit": "bytes"})
    return copied


def key_for(pod_id: str, snapshot_id: str) -> str:
    return f"snapshots/{pod_id}/{snapshot_id}.tar"


def create(resources: Resources, job: Job) -> dict[str, Any]:
    pod_id = require(job.data, "podId")
    snapshot_id = job.id
    with resources.connection() as conn:
        _, agent = placed(conn, resources, pod_id)
        archive = agent.snapshot(pod_id)
        key = key_for(pod_id, snapshot_id)
        # Managed upload (multipart for a large archive), its progress in bytes as S3 takes them.
        s3().upload_fileobj(io.BytesIO(archive), bucket(), key, Callback=_bytes_copied(job, len(archive)))
        url = f"s3://{bucket()}/{key}"
        conn.execute(
            QUERIES["record_snapshot"], {"id": snapshot_id, "pod_id": pod_id, "url": url, "size": len(archive)}
        )
    return {"snapshotId": snapshot_id, "url": url, "size": len(archive)}


def restore(resources: Resources, job: Job) -> dict[str, Any]:
    from botocore.exceptions import ClientError

    pod_id = require(job.data, "podId")
    snapshot_id = require(job.data, "snapshotId")
    with resources.connection() as conn:
        row = conn.execute(QUERIES["get_snapshot"], {"id": snapshot_id}).fetchone()
        if row is None:
            raise JobError(f"snapshot {snapshot_id} does not exist", should_retry=False)
        storage_url = row[0]
        _, agent = placed(conn, resources, pod_id)
        target_bucket, _, key = storage_url.removeprefix("s3://").partition("/")
        try:
            client = s3()
            size = int(client.head_object(Bucket=target_bucket, Key=key)["ContentLength"])
            buffer = io.BytesIO()
            client.download_fileobj(target_bucket, key, buffer, Callback=_bytes_copied(job, size))
            archive = buffer.getvalue()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NoSuchBucket", "Not Found"):
                raise JobError(
                    f"snapshot {snapshot_id} is missing from storage ({storage_url})", should_retry=False
                ) from exc
            raise
        agent.restore(pod_id, archive)
    return {"restored": snapshot_id, "size": len(archive)}
