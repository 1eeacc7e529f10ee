"""Snapshots in S3, cleanup of old resources, usage, and email (moto's server, a GitHub stand-in)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import psycopg
import pytest

from jobqueue import Job, JobError, Queue
from pods import cleanup, email, lifecycle, snapshots, usage
from pods.clients.github import GitHub, GitHubError
from pods.context import Resources
from pods.jobs import CATALOG
from podslocal.fake_github import FakeGitHub
from podslocal.fake_host_agent import FakeHostAgent
from runtime import catalog
from tests.pods.conftest import job

BUCKET = "pod-snapshots"


@pytest.fixture
def s3(aws: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("SNAPSHOT_BUCKET", BUCKET)
    client = boto3.client("s3", endpoint_url=aws, region_name="eu-west-1")
    if BUCKET not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    return client


def with_id(j: Job) -> Job:
    j.id = str(uuid.uuid4())
    return j


def running_pod(resources: Resources, pod_id: str = "pod-1") -> str:
    lifecycle.provision(
        resources, job("provision-pod", {"podId": pod_id, "spec": {"tier": "dev.small"}, "userId": "u1"})
    )
    return pod_id


def test_snapshot_round_trip_through_s3(
    resources: Resources, s3: Any, agents: list[FakeHostAgent], conn: psycopg.Connection[Any]
) -> None:
    pod_id = running_pod(resources)
    agents[0].pods[pod_id].data = b"workspace bytes"
    snap_job = with_id(job("create-snapshot", {"podId": pod_id}))
    made = snapshots.create(resources, snap_job)
    assert made["size"] == len(b"workspace bytes")
    stored = s3.get_object(Bucket=BUCKET, Key=f"snapshots/{pod_id}/{snap_job.id}.tar")["Body"].read()
    assert stored == b"workspace bytes"
    assert conn.execute("SELECT size_bytes FROM pods.snapshot WHERE id = %s", (snap_job.id,)).fetchone() == (15,)
    snapshots.create(resources, snap_job)  # retried: the same object and row, not a second snapshot
    assert conn.execute("SELECT count(*) FROM pods.snapshot").fetchone() == (1,)
    agents[0].pods[pod_id].data = b""
    snapshots.restore(resources, job("restore-snapshot", {"podId": pod_id, "snapshotId": snap_job.id}))
    assert agents[0].pods[pod_id].data == b"workspace bytes"


class RecordedProgress:
    """A JobContext that keeps every progress value a handler sets (steps simply run)."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def step(self, job: Job, name: str, fn: Any) -> Any:
        return fn()

    def set_progress(self, job: Job, value: Any) -> None:
        self.values.append(value)


def test_snapshot_and_restore_report_the_bytes_copied(
    resources: Resources, s3: Any, agents: list[FakeHostAgent]
) -> None:
    pod_id = running_pod(resources)
    size = 20 * 2**20  # past boto3's multipart threshold: copied in several parts
    agents[0].pods[pod_id].data = bytes(size)
    snapshot = with_id(job("create-snapshot", {"podId": pod_id}))
    snapshot.context = made = RecordedProgress()
    snapshots.create(resources, snapshot)
    restore = job("restore-snapshot", {"podId": pod_id, "snapshotId": snapshot.id})
    restore.context = restored = RecordedProgress()
    snapshots.restore(resources, restore)
    for recorded in (made, restored):
        done = [value["done"] for value in recorded.values]
        assert done[0] == 0 and done[-1] == size and done == sorted(done) and len(done) > 2
        assert {(value["total"], value["unit"]) for value in recorded.values} == {(size, "bytes")}


def test_restore_of_a_missing_object_fails_at_once(
    resources: Resources, s3: Any, conn: psycopg.Connection[Any]
) -> None:
    pod_id = running_pod(resources)
    conn.execute(
        "INSERT INTO pods.snapshot (id, pod_id, storage_url) VALUES ('gone', %s, %s)",
        (pod_id, f"s3://{BUCKET}/snapshots/{pod_id}/gone.tar"),
    )
    with pytest.raises(JobError, match="missing from storage") as info:
        snapshots.restore(resources, job("restore-snapshot", {"podId": pod_id, "snapshotId": "gone"}))
    assert info.value.should_retry is False
    with pytest.raises(JobError, match="does not exist"):
        snapshots.restore(resources, job("restore-snapshot", {"podId": pod_id, "snapshotId": "never"}))


def test_cleanup_old_deletes_exactly_what_is_old(
    queue: Queue, resources: Resources, s3: Any, conn: psycopg.Connection[Any]
) -> None:
    now = datetime.now(UTC)
    for table, key in (("server_metric", "host_id"), ("pod_metric", "pod_id")):
        conn.execute(
            f"INSERT INTO pods.{table} ({key}, name, value, created_on) "
            "VALUES ('x', 'cpu', 1, %s), ('x', 'cpu', 2, %s)",
            (now - timedelta(days=6), now - timedelta(days=4)),
        )
    conn.execute(
        "INSERT INTO pods.pod_log (pod_id, line, created_on) VALUES ('x', 'old', %s), ('x', 'new', %s)",
        (now - timedelta(days=5, minutes=1), now - timedelta(days=1)),
    )
    for pod_id, key, age in (("old-pod", "key-1", 8), ("recent-pod", "key-2", 6), ("old-keyless", None, 9)):
        conn.execute(
            "INSERT INTO pods.pod (id, owner_id, tier, status, github_key_id) "
            "VALUES (%s, 'u', 'dev.small', 'terminated', %s)",
            (pod_id, key),
        )
        conn.execute("ALTER TABLE pods.pod DISABLE TRIGGER pod_touch")
        conn.execute("UPDATE pods.pod SET updated_on = %s WHERE id = %s", (now - timedelta(days=age), pod_id))
        conn.execute("ALTER TABLE pods.pod ENABLE TRIGGER pod_touch")
    for snap_id, age in (("snap-old", 31), ("snap-new", 29)):
        key = f"snapshots/p/{snap_id}.tar"
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")
        conn.execute(
            "INSERT INTO pods.snapshot (id, pod_id, storage_url, created_on) VALUES (%s, 'p', %s, %s)",
            (snap_id, f"s3://{BUCKET}/{key}", now - timedelta(days=age)),
        )
    counts = cleanup.cleanup_old(resources, job("cleanup-old", {}), now=now)
    assert counts == {"server_metrics": 1, "pod_metrics": 1, "pod_logs": 1, "pods_queued": 2, "snapshots": 1}
    # Each old terminated pod is removed by a remove-old-pod job of its own; a second cleanup
    # while they wait sends none again (the queue admits one job per pod).
    assert cleanup.cleanup_old(resources, job("cleanup-old", {}), now=now)["pods_queued"] == 0
    removals = queue.fetch(cleanup.REMOVE_OLD_POD, 10)
    assert sorted(j.data["podId"] for j in removals) == ["old-keyless", "old-pod"]
    with FakeGitHub("gh-token", keys={"key-1", "key-2"}) as github:
        results = [cleanup.remove_old_pod(resources, j, github=GitHub("gh-token", github.url)) for j in removals]
        assert github.deleted == ["key-1"] and github.keys == {"key-2"}
    assert sorted((r["podId"], r["github_key_deleted"]) for r in results) == [("old-keyless", False), ("old-pod", True)]
    assert [r[0] for r in conn.execute("SELECT id FROM pods.pod ORDER BY id")] == ["recent-pod"]
    assert [r[0] for r in conn.execute("SELECT line FROM pods.pod_log")] == ["new"]
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="snapshots/p/").get("Contents", []))
    assert keys == ["snapshots/p/snap-new.tar"]


def test_removing_an_old_pod_keeps_its_record_when_github_fails(
    resources: Resources, conn: psycopg.Connection[Any]
) -> None:
    conn.execute(
        "INSERT INTO pods.pod (id, owner_id, tier, status, github_key_id) "
        "VALUES ('p', 'u', 'dev.small', 'terminated', 'k')"
    )
    with FakeGitHub("gh-token", keys={"k"}) as github:
        github.fail_next = 1
        with pytest.raises(GitHubError, match="502"):
            cleanup.remove_old_pod(
                resources, job(cleanup.REMOVE_OLD_POD, {"podId": "p"}), github=GitHub("gh-token", github.url)
            )
        assert conn.execute("SELECT count(*) FROM pods.pod").fetchone() == (1,)
        # The retry finds the key still there and removes both.
        done = cleanup.remove_old_pod(
            resources, job(cleanup.REMOVE_OLD_POD, {"podId": "p"}), github=GitHub("gh-token", github.url)
        )
    assert done == {"podId": "p", "removed": True, "github_key_deleted": True}
    assert conn.execute("SELECT count(*) FROM pods.pod").fetchone() == (0,)


def test_the_pod_removal_queue_keeps_to_githubs_quota(
    queue: Queue, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deployed, the queue has GitHub's per-token quota as its rate limit (JOBS_RATE_LIMITS, from the
    template parameter whose default the job type declares)."""
    assert CATALOG.job_type(cleanup.REMOVE_OLD_POD).rate_limit == {"limit": 5000, "period": 3600}
    monkeypatch.setenv("JOBS_RATE_LIMITS", json.dumps({cleanup.REMOVE_OLD_POD: {"limit": 2, "period": 3600}}))
    catalog.register(queue)
    queue.insert(cleanup.REMOVE_OLD_POD, [{"data": {"podId": f"p{n}"}, "singleton_key": f"p{n}"} for n in range(5)])
    assert len(queue.fetch(cleanup.REMOVE_OLD_POD, 5)) == 2
    assert queue.fetch(cleanup.REMOVE_OLD_POD, 5) == []


def test_usage_per_hour_is_idempotent(resources: Resources, conn: psycopg.Connection[Any]) -> None:
    hour = datetime(2026, 11, 27, 10, tzinfo=UTC)
    conn.execute(
        "INSERT INTO pods.pod (id, owner_id, tier) VALUES ('a', 'alice', 'dev.small'), ('b', 'bob', 'dev.small')"
    )
    conn.execute("DELETE FROM pods.pod_status_history")
    history = [
        ("a", "running", hour - timedelta(minutes=30)),
        ("a", "stopped", hour + timedelta(minutes=20)),
        ("a", "running", hour + timedelta(minutes=50)),
        ("b", "provisioning", hour + timedelta(minutes=10)),
        ("b", "running", hour + timedelta(minutes=15)),
        ("b", "terminated", hour + timedelta(minutes=45)),
    ]
    conn.cursor().executemany(
        "INSERT INTO pods.pod_status_history (pod_id, status, changed_on) VALUES (%s, %s, %s)", history
    )
    request = job("calculate-usage", {"hour": hour.isoformat()})
    usage.calculate_usage(resources, request)
    usage.calculate_usage(resources, request)
    rows = conn.execute("SELECT pod_id, owner_id, running_seconds FROM pods.hourly_usage ORDER BY pod_id").fetchall()
    assert rows == [("a", "alice", 30 * 60), ("b", "bob", 30 * 60)]
    scheduled = Job(id="x", name="calculate-usage", data={}, origin={"fire_time": "2026-11-27T11:00:00+00:00"})
    assert usage.hour_of(scheduled) == hour


def test_email_is_sent_once_even_when_the_job_runs_twice(
    resources: Resources, aws: str, conn: psycopg.Connection[Any]
) -> None:
    ses = boto3.client("ses", endpoint_url=aws, region_name="eu-west-1")
    ses.verify_email_identity(EmailAddress="noreply@pods.local")
    mail = with_id(
        job(
            "send-email",
            {
                "to": "dev@example.com",
                "template": "pod-ready",
                "params": {"podId": "pod-1", "url": "https://pod-1.dev"},
            },
        )
    )
    first = email.send_email(resources, mail)
    assert first["messageId"]
    assert email.send_email(resources, mail) == {"already_sent": True}
    sent = ses.get_send_quota()["SentLast24Hours"]
    assert sent == 1
    with pytest.raises(JobError, match="unknown email template 'nope'"):
        email.send_email(resources, job("send-email", {"to": "a@b.c", "template": "nope"}))
    with pytest.raises(JobError, match="needs parameter 'url'"):
        email.send_email(
            resources, job("send-email", {"to": "a@b.c", "template": "pod-ready", "params": {"podId": "p"}})
        )


def test_storage_errors_are_retried_and_record_nothing(
    resources: Resources, aws: str, monkeypatch: pytest.MonkeyPatch, conn: psycopg.Connection[Any]
) -> None:
    from botocore.exceptions import ClientError

    pod_id = running_pod(resources)
    monkeypatch.setenv("SNAPSHOT_BUCKET", "no-such-bucket")
    with pytest.raises(ClientError, match="NoSuchBucket"):
        snapshots.create(resources, with_id(job("create-snapshot", {"podId": pod_id})))
    assert conn.execute("SELECT count(*) FROM pods.snapshot").fetchone() == (0,)


def test_host_api_key_from_secrets_manager(secrets: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from pods import context

    arn = secrets.create_secret(Name="jobs/host-api-key", SecretString="key-from-secrets-manager")["ARN"]
    monkeypatch.setenv("HOST_API_KEY_SECRET_ARN", arn)
    monkeypatch.delenv("HOST_API_KEY", raising=False)
    assert context.host_api_key() == "key-from-secrets-manager"
