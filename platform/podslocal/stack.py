"""The pods platform's part of the local stack (local.platform): what its handlers talk to.

Three host agents and a GitHub stand-in on loopback; the snapshot bucket, the sender's SES
identity and the host agents' key (in Secrets Manager, as in production) in moto; the hosts'
rows. This repository's pyproject.toml names it: `[tool.pgjobs] local = "podslocal.stack:PODS"`.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import boto3
import psycopg

from jobqueue import Queue
from local.platform import LocalPlatform
from local.soak import Soak
from local.stack import LocalStack
from pods import lifecycle
from podslocal import demo
from podslocal.fake_github import FakeGitHub
from podslocal.fake_host_agent import FakeHostAgent
from runtime import catalog

HOSTS = (("host-1", "dev.small", 10), ("host-2", "dev.small", 10), ("host-3", "dev.large", 4))
SNAPSHOT_BUCKET = "pod-snapshots"
EMAIL_FROM = "noreply@pods.local"


class PodsPlatform(LocalPlatform):
    def __init__(self) -> None:
        self.agents: list[FakeHostAgent] = []
        self.github: FakeGitHub | None = None
        self.first_serial = 0

    def start(self, stack: LocalStack) -> dict[str, str]:
        host_key = secrets.token_urlsafe(24)
        github_token = secrets.token_urlsafe(24)
        self.github = FakeGitHub(github_token)
        self.github.__enter__()
        region = stack.env["AWS_DEFAULT_REGION"]
        s3 = boto3.client("s3", endpoint_url=stack.moto_url, region_name=region)
        s3.create_bucket(Bucket=SNAPSHOT_BUCKET, CreateBucketConfiguration={"LocationConstraint": region})
        ses = boto3.client("ses", endpoint_url=stack.moto_url, region_name=region)
        ses.verify_email_identity(EmailAddress=EMAIL_FROM)
        manager = boto3.client("secretsmanager", endpoint_url=stack.moto_url, region_name=region)
        arn = manager.create_secret(Name="local/host-api-key", SecretString=host_key)["ARN"]
        self.agents = [FakeHostAgent(host_key, host_index=i + 1).start() for i in range(len(HOSTS))]
        return {
            "SNAPSHOT_BUCKET": SNAPSHOT_BUCKET,
            "EMAIL_FROM": EMAIL_FROM,
            "GITHUB_API_URL": self.github.url,
            "GITHUB_TOKEN": github_token,
            "HOST_API_KEY_SECRET_ARN": arn,
            # A provision waits this long for a free slot (pods.lifecycle), at the demo's pace.
            "CAPACITY_WAIT_S": "2",
        }

    def ready(self, stack: LocalStack, queue: Queue) -> None:
        from pods import schema

        with psycopg.connect(stack.env["DATABASE_URL"], autocommit=True) as conn:
            schema.migrate(conn)
            for (host_id, tier, capacity), agent in zip(HOSTS, self.agents, strict=True):
                conn.execute(
                    "INSERT INTO pods.host (id, address, agent_port, tier, capacity) VALUES (%s, %s, %s, %s, %s) "
                    "ON CONFLICT (id) DO UPDATE SET address = EXCLUDED.address, agent_port = EXCLUDED.agent_port",
                    (host_id, agent.address, agent.port, tier, capacity),
                )
            # Pods placed by an earlier run lived on agents that are gone: start them afresh.
            conn.execute(
                "UPDATE pods.pod SET status = 'terminated', host_id = NULL, internal_ip = NULL "
                "WHERE status <> 'terminated'"
            )
            conn.execute("UPDATE pods.host SET used = 0")
        self.first_serial = demo.first_serial(queue)

    def stop(self) -> None:
        for agent in self.agents:
            agent.stop()
        self.agents = []
        if self.github is not None:
            self.github.__exit__()
            self.github = None
        from pods import context

        context.set_resources(None)

    def demo_round(self, queue: Queue, stack: LocalStack, index: int) -> None:
        demo.demo_round(queue, self.agents, self.first_serial + 3 * index, self.first_serial)

    def once(self, queue: Queue, stack: LocalStack) -> Iterator[list[str | None]]:
        """Six pods provisioned (a host fails once: retried); then two snapshots, an email, health
        checks, and one job of each scheduled job type."""
        self.agents[0].faults.fail_next = 1
        yield [
            lifecycle.request(queue, "provision", f"demo-{n}", spec={"tier": "dev.small"}, userId="user-1")
            for n in range(6)
        ]
        more = [lifecycle.request(queue, "snapshot", f"demo-{n}") for n in (0, 1)]
        email = {
            "to": "user-1@example.com",
            "template": "pod-ready",
            "params": {"podId": "demo-0", "url": "http://localhost"},
        }
        more += [queue.send("send-email", email), queue.send("health-check", {})]
        for job_type in catalog.load().job_types:
            more += [queue.send(job_type.name, dict(s.data)) for s in job_type.schedules]
        yield more

    def after_soak(self, soak: Soak, stack: LocalStack, queue: Queue) -> None:
        demo.check_slots(soak, queue)
        if not soak.problems:
            demo.clean_up_everything(soak, stack, queue)
            demo.check_slots(soak, queue)
            soak.check_health(stack)


PODS = PodsPlatform()
