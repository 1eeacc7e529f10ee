"""The pods platform's declarations: every seed job type, each with only what its handler needs."""

from __future__ import annotations

import pytest

from jobqueue import ConfigurationError, Policy, Queue
from pods import lifecycle
from pods.jobs import CATALOG, DEAD_LETTERS
from runtime import catalog
from runtime.jobtypes import Catalog, CronEntry, JobType, Permission

SEED_SCHEDULES = {"health-check-all": "*/5 * * * *", "cleanup-old": "0 2 * * *", "calculate-usage": "0 * * * *"}


def test_the_platform_the_runtime_loads_is_the_pods_catalog() -> None:
    assert catalog.load({catalog.VARIABLE: "pods.jobs"}) is CATALOG
    assert catalog.load({catalog.VARIABLE: "pods.jobs:CATALOG"}) is CATALOG


def test_snapshots_alone_touch_s3_and_email_alone_ses() -> None:
    def services(name: str) -> set[str]:
        return {a.split(":")[0] for p in CATALOG.job_type(name).permissions for a in p.actions}

    assert {n for n in CATALOG.names if "s3" in services(n)} == {"pod-lifecycle", "cleanup-old"}
    [storage] = CATALOG.job_type("pod-lifecycle").permissions
    assert set(storage.actions) == {"s3:PutObject", "s3:GetObject"}  # snapshot and restore; no delete
    assert {n for n in CATALOG.names if "ses" in services(n)} == {"send-email"}


def test_only_handlers_that_talk_to_hosts_read_their_key() -> None:
    readers = {t.name for t in CATALOG.job_types if any(s.arn_env == "HOST_API_KEY_SECRET_ARN" for s in t.secrets)}
    assert readers == {"pod-lifecycle", "health-check"}


def test_every_seed_lifecycle_job_is_an_action_of_the_ordered_lifecycle_queue() -> None:
    assert set(lifecycle.ACTIONS) == {"provision", "start", "stop", "restart", "cleanup", "snapshot", "restore"}
    declared = CATALOG.job_type(lifecycle.LIFECYCLE)
    assert declared.policy is Policy.KEY_STRICT_FIFO
    assert declared.group_concurrency == {"default": 4}


def test_seed_schedules_and_policies() -> None:
    assert {t.name: t.schedules[0].cron for t in CATALOG.job_types if t.schedules} == SEED_SCHEDULES
    assert CATALOG.job_type("health-check-all").policy is Policy.SHORT


def test_register_creates_queues_with_the_declared_settings(queue: Queue) -> None:
    catalog.register(queue, CATALOG)
    catalog.register(queue, CATALOG)  # idempotent
    pods = queue.get_queue("pod-lifecycle")
    assert pods is not None
    assert (pods.policy, pods.retry_limit, pods.retry_delay, pods.retry_backoff) == (
        Policy.KEY_STRICT_FIFO,
        3,
        60,
        True,
    )
    assert pods.dead_letter == DEAD_LETTERS
    health = queue.get_queue("health-check")
    assert health is not None and health.expire_in == 300
    assert {s.name: s.cron for s in queue.get_schedules()} == SEED_SCHEDULES
    # Scheduled jobs carry an object, as the handlers expect from any sender.
    assert all(s.data == {} for s in queue.get_schedules())


def test_register_brings_a_changed_schedule_to_its_declaration(queue: Queue) -> None:
    catalog.register(queue, CATALOG)
    queue.schedule("calculate-usage", "0 * * * *", None)  # as an earlier version stored it
    catalog.register(queue, CATALOG)
    [usage] = queue.get_schedules("calculate-usage")
    assert usage.data == {}


def _job(name: str = "a", **more: object) -> JobType:
    return JobType(name, lambda job: None, "test", **more)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Catalog("x", "x", (_job(), _job())), "declared twice"),
        (lambda: Catalog("x", "x", (_job(sends_to=("b",)),)), "sends to undeclared b"),
        (lambda: _job(permissions=(Permission(("s3:*",), "arn:aws:s3:::b/*"),)), "no wildcards"),
        (lambda: _job(permissions=(Permission(("s3:GetObject",), "*"),)), "narrower than"),
        (lambda: Catalog("x", "x", (_job(environment={"B": "${Bucket}"}),)), r"\$\{Bucket\} is used"),
        (lambda: Catalog("x", "x", (_job(settings={"retry_limit": -1}),)), "retry_limit must be between"),
        (lambda: _job(schedules=(CronEntry("not cron"),)), "cron"),
        (lambda: _job("bad name!"), "invalid job type name"),
        (lambda: _job(rate_limit={"limit": 0, "period": 1}), "rate_limit limit must be between"),
    ],
)
def test_bad_declarations_fail_when_the_platform_loads(build: object, message: str) -> None:
    with pytest.raises((ConfigurationError, ValueError), match=message):
        build()  # type: ignore[operator]


def test_the_runtime_needs_to_be_told_its_platform() -> None:
    with pytest.raises(ConfigurationError, match="JOBS_PLATFORM is not set"):
        catalog.load({})
    with pytest.raises(ConfigurationError, match="cannot import 'no_such_platform'"):
        catalog.load({catalog.VARIABLE: "no_such_platform"})
    with pytest.raises(ConfigurationError, match="is not a runtime Catalog"):
        catalog.load({catalog.VARIABLE: "pods.jobs:DEAD_LETTERS"})


def test_queue_overrides_are_laid_over_every_declaration(queue: Queue, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the local stack sets so that every cold start keeps its retries seconds apart."""
    monkeypatch.setenv(catalog.OVERRIDES_VARIABLE, '{"retry_delay": 2, "retry_backoff": false}')
    catalog.register(queue, CATALOG)
    pods = queue.get_queue("pod-lifecycle")
    assert pods is not None and (pods.retry_delay, pods.retry_backoff, pods.retry_limit) == (2, False, 3)
    monkeypatch.setenv(catalog.OVERRIDES_VARIABLE, '{"retry_dealy": 2}')
    with pytest.raises(ConfigurationError, match="retry_dealy"):
        catalog.register(queue, CATALOG)
    monkeypatch.setenv(catalog.OVERRIDES_VARIABLE, "[1]")
    with pytest.raises(ConfigurationError, match="must be a JSON object"):
        catalog.register(queue, CATALOG)


def test_the_deployments_rate_limits_reach_the_queues(queue: Queue, monkeypatch: pytest.MonkeyPatch) -> None:
    """template.yaml passes each rate-limited job type's parameter to every function (JOBS_RATE_LIMITS);
    without it (tests, the local stack) the queue has no limit."""
    catalog.register(queue, CATALOG)
    assert queue.get_queue("send-email").rate_limit is None  # type: ignore[union-attr]
    monkeypatch.setenv(catalog.RATE_LIMITS_VARIABLE, '{"send-email": {"limit": 14, "period": 1}}')
    catalog.register(queue, CATALOG)
    assert queue.get_queue("send-email").rate_limit == {"limit": 14, "period": 1}  # type: ignore[union-attr]
    monkeypatch.setenv(catalog.RATE_LIMITS_VARIABLE, '{"send-email": null}')  # the parameter set to null
    catalog.register(queue, CATALOG)
    assert queue.get_queue("send-email").rate_limit is None  # type: ignore[union-attr]
    monkeypatch.setenv(catalog.RATE_LIMITS_VARIABLE, '{"send-email": {"limit": 14}}')
    with pytest.raises(ConfigurationError, match="JOBS_RATE_LIMITS: queue 'send-email': rate_limit must be"):
        catalog.register(queue, CATALOG)


def test_send_email_is_held_to_sess_quota_in_a_deployment() -> None:
    [send_email] = [job_type for job_type in CATALOG.job_types if job_type.name == "send-email"]
    assert send_email.rate_limit == {"limit": 14, "period": 1}
