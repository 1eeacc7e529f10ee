"""The pods platform's job types, each declared once.

Everything about a job type is here: its handler, its queue's policy and
settings, its schedules, its worker's sizing, and what its handler touches
beyond the database (IAM statements, secrets, environment). The worker
functions in template.yaml (`make template`), the queues registered at cold
start, `make dev` and the tests all read this catalog; the runtime finds it
through JOBS_PLATFORM=pods.jobs.

The defaults: retry 3 times, 60 s apart with exponential backoff, expire after
an hour, delete 7 days after finishing, failures copied to "dead-letters".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from jobqueue import Job, Policy
from pods import cleanup, email, health, lifecycle, usage
from pods.context import Resources, resources
from runtime.jobtypes import Catalog, CronEntry, Handler, JobType, Parameter, Permission, Secret

DEAD_LETTERS: Final = "dead-letters"
DAY: Final = 86_400
# A user's provisions of one tier running at once (a host agent creates pods one by one); a
# deployment sets its own through the template parameter PodLifecycleWorkerGroupConcurrency.
PROVISIONS_PER_GROUP: Final = {"default": 4}

HOST_API_KEY = Secret(
    parameter="HostApiKeySecretArn",
    arn_env="HOST_API_KEY_SECRET_ARN",
    local_env="HOST_API_KEY",
    description="Secrets Manager secret with the host agents' X-Api-Key",
)
GITHUB_TOKEN = Secret(
    parameter="GitHubTokenSecretArn",
    arn_env="GITHUB_TOKEN_SECRET_ARN",
    local_env="GITHUB_TOKEN",
    description="Secrets Manager secret with the GitHub token used to remove pods' deploy keys",
)
SNAPSHOTS = "arn:${AWS::Partition}:s3:::${SnapshotBucketName}/snapshots/*"
BUCKET_ENV = {"SNAPSHOT_BUCKET": "${SnapshotBucketName}"}


def with_resources(function: Callable[[Resources, Job], Any]) -> Handler:
    """A handler that gets the container's shared Resources (pool, host agents' key) with each job."""

    def handle(job: Job) -> Any:
        return function(resources(), job)

    handle.__name__ = handle.__qualname__ = function.__name__
    return handle


# Empty in AWS: each host agent is dialled at its recorded address. A container run by
# `sam local` sets it to reach the local stack's agents (host.docker.internal).
HOST_AGENT_ENV = {"HOST_AGENT_ADDRESS": ""}


def on_host(
    name: str,
    function: Callable[[Resources, Job], Any],
    description: str,
    environment: dict[str, str] | None = None,
    **more: Any,
) -> JobType:
    """A job type whose handler talks to the host agents (and so reads their key)."""
    return JobType(
        name,
        with_resources(function),
        description,
        secrets=(HOST_API_KEY,),
        environment={**HOST_AGENT_ENV, **(environment or {})},
        **more,
    )


CATALOG: Final = Catalog(
    name="pods",
    description="Background jobs of the pods platform",
    defaults={
        "retry_limit": 3,
        "retry_delay": 60,
        "retry_backoff": True,
        "retry_delay_max": 3600,
        "expire_in": 3600,
        "delete_after": 7 * DAY,
    },
    dead_letter=DEAD_LETTERS,
    dead_letter_settings={"retention": 30 * DAY, "delete_after": 30 * DAY},
    parameters=(
        Parameter("SnapshotBucketName", "S3 bucket for pod snapshots (objects under snapshots/)"),
        Parameter("EmailDomain", "SES identity (domain) the platform's email is sent from"),
    ),
    job_types=(
        # One queue for every action on a pod, in order per pod (see pods.lifecycle).
        on_host(
            lifecycle.LIFECYCLE,
            lifecycle.run,
            "A pod's actions (provision, start, stop, restart, snapshot, restore, cleanup), one at a time "
            "per pod, in the order sent; provisions capped per host tier",
            policy=Policy.KEY_STRICT_FIFO,
            send_options=lifecycle.send_options,
            # Users take turns (a provision's group is its user's, in the pod's tier): one user's
            # burst of provisions does not hold back another's.
            settings={"fairness": "round_robin"},
            # Provisions at once per user and tier (their group); other actions carry no group.
            group_concurrency=PROVISIONS_PER_GROUP,
            permissions=(Permission(("s3:PutObject", "s3:GetObject"), SNAPSHOTS),),
            # A provision with no free slot in its tier waits this long before it looks again.
            environment={**BUCKET_ENV, "CAPACITY_WAIT_S": "30"},
        ),
        on_host(
            "health-check",
            health.health_check,
            "Checks a pod's health; an unhealthy pod gets one restart",
            # One job per running pod every five minutes, which nobody looks up once finished (a
            # failure's copy goes to the dead letter queue): deleted after an hour, not archived.
            settings={"expire_in": 300, "archive": False},
            team_size=5,
            sends_to=(lifecycle.LIFECYCLE,),
        ),
        # Scheduled work under "short": a tick that finds the previous run still waiting adds nothing.
        JobType(
            "health-check-all",
            with_resources(health.health_check_all),
            "Queues a health check of every running pod, as a batch that ends in a health report",
            policy=Policy.SHORT,
            settings={"expire_in": 300},
            schedules=(CronEntry("*/5 * * * *"),),
            sends_to=("health-check", health.HEALTH_REPORT),
        ),
        JobType(
            health.HEALTH_REPORT,
            with_resources(health.health_report),
            "Once a round of health checks has finished: the pods it left unhealthy or restarting",
            settings={"archive": False},
        ),
        JobType(
            "cleanup-old",
            with_resources(cleanup.cleanup_old),
            "Deletes old metrics, logs and snapshots, and queues the removal of old terminated pods",
            policy=Policy.SHORT,
            schedules=(CronEntry("0 2 * * *"),),
            permissions=(Permission(("s3:DeleteObject",), SNAPSHOTS),),
            environment=BUCKET_ENV,
            sends_to=(cleanup.REMOVE_OLD_POD,),
        ),
        JobType(
            cleanup.REMOVE_OLD_POD,
            with_resources(cleanup.remove_old_pod),
            "Deletes a terminated pod's GitHub deploy key, then its record",
            # One job per pod queued or running: the next cleanup does not send it again.
            policy=Policy.EXCLUSIVE,
            # GitHub's API quota per token, whatever the workers (parameter RemoveOldPodWorkerRateLimit).
            rate_limit={"limit": cleanup.GITHUB_REQUESTS_PER_HOUR, "period": 3600},
            secrets=(GITHUB_TOKEN,),
            environment={"GITHUB_API_URL": "https://api.github.com"},
        ),
        JobType(
            "calculate-usage",
            with_resources(usage.calculate_usage),
            "Records each owner's pod hours of the past hour",
            policy=Policy.SHORT,
            schedules=(CronEntry("0 * * * *"),),
        ),
        JobType(
            "send-email",
            with_resources(email.send_email),
            "Sends a templated email through SES, once",
            # SES's default sending quota, 14 emails a second per account, whatever the workers: the
            # deployment's limit (parameter SendEmailWorkerRateLimit; a raised quota raises it).
            rate_limit={"limit": 14, "period": 1},
            permissions=(
                Permission(
                    ("ses:SendEmail", "ses:SendRawEmail"),
                    "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/${EmailDomain}",
                ),
            ),
            environment={"EMAIL_FROM": "noreply@${EmailDomain}"},
        ),
    ),
)
