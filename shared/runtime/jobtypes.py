"""What a platform declares: its job types, each once, and what they share.

A platform (e.g. `pods`) builds a `Catalog` of `JobType`s; the runtime loads
it by configuration (runtime.catalog), and everything else reads it: the
queues and schedules registered at cold start, the worker functions with
their sizing, environment and IAM in template.yaml, the local stack's
EventBridge simulator, and the tests. Nothing here knows a particular platform.

Values that end up in template.yaml (environment values, IAM resources) are
CloudFormation `Fn::Sub` strings: `${SnapshotBucketName}` names a template
parameter, `${AWS::Region}` a pseudo parameter.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from jobqueue import ConfigurationError, InvalidOptionError, Job, Policy, QueueSettings
from jobqueue.cron import validate_cron, zone
from jobqueue.options import group_limits
from jobqueue.settings import QUEUE_SETTINGS, GroupConcurrency, RateLimit, check_all, queue_name

Handler = Callable[[Job], Any]
_LOGICAL_NAME: Final = re.compile(r"^[A-Z][A-Za-z0-9]{0,254}$")
_ENV_NAME: Final = re.compile(r"^[A-Z][A-Z0-9_]*$")


@dataclass(frozen=True)
class Parameter:
    """A template parameter the platform needs (a bucket's name, a domain)."""

    name: str  # CloudFormation logical name, e.g. "SnapshotBucketName"
    description: str


@dataclass(frozen=True)
class Secret:
    """A Secrets Manager secret a handler reads.

    In AWS the worker gets the secret's ARN in `arn_env` and may read that
    secret only; locally (no Secrets Manager) the value itself is in `local_env`.
    """

    parameter: str  # the template parameter that holds the ARN
    arn_env: str
    local_env: str
    description: str


@dataclass(frozen=True)
class Permission:
    """One IAM statement a handler needs: actions on one resource (an Fn::Sub ARN pattern)."""

    actions: tuple[str, ...]
    resource: str


@dataclass(frozen=True)
class CronEntry:
    """A declared cron schedule: registered as a stored schedule (jobqueue.Schedule) of its job type's queue."""

    cron: str
    tz: str = "UTC"
    data: Mapping[str, Any] = field(default_factory=dict)  # handlers take an object, as from any sender
    key: str = ""


@dataclass(frozen=True)
class JobType:
    """One job type: its queue, its handler, and what its worker function needs."""

    name: str
    handler: Handler
    description: str
    policy: Policy = Policy.STANDARD
    settings: QueueSettings = field(default_factory=QueueSettings)  # on top of the catalog's defaults
    schedules: tuple[CronEntry, ...] = ()
    # Worker sizing; None takes the template's parameter (WorkerTeamSize, ...).
    team_size: int | None = None
    batch_size: int | None = None
    memory_mb: int | None = None
    # What the handler touches beyond the database (least privilege in template.yaml).
    permissions: tuple[Permission, ...] = ()
    secrets: tuple[Secret, ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict)
    # Job types this one's handler sends jobs to (inside its own transaction).
    sends_to: tuple[str, ...] = ()
    # The worker's cap on each group's active jobs (the send option `group`): a number, or
    # {"default": n, "tiers": {tier: n}}; None: no cap. Deployments may override it
    # (template parameter <Worker>GroupConcurrency, environment GROUP_CONCURRENCY).
    group_concurrency: GroupConcurrency | None = None
    # The deployment's rate limit of the queue ({"limit": n, "period": seconds}: an outside quota,
    # such as SES's sending rate): the default of the template parameter <Worker>RateLimit, which
    # every function passes in JOBS_RATE_LIMITS. Where that variable is not set (tests, the local
    # stack) the queue has no limit. None: no parameter.
    rate_limit: RateLimit | None = None
    # True: the handler gets job.connection, inside the transaction that also completes the job, so
    # that its own writes and the completion commit together or not at all (runtime.worker).
    transactional: bool = False
    # Send options every job of this type carries, derived from its data (e.g. its key
    # and group); the runtime's senders (API, CLI) apply it. It raises PayloadError for
    # data that no handler of the type could run.
    send_options: Callable[[Any], Mapping[str, Any]] | None = None
    # A job's data that the handler completes: what `jobs dev --once` sends to try the job type
    # end to end. None: no example.
    example: Any = None

    def __post_init__(self) -> None:
        queue_name(self.name, "job type")
        if not callable(self.handler):
            raise ConfigurationError(f"job type {self.name!r}: handler is not callable")
        for cron in self.schedules:
            validate_cron(cron.cron)
            zone(cron.tz)
        if self.group_concurrency is not None:
            try:
                group_limits(self.group_concurrency)
            except InvalidOptionError as exc:
                raise ConfigurationError(f"job type {self.name!r}: {exc}") from None
        if self.rate_limit is not None:
            try:
                check_all(QUEUE_SETTINGS, {"rate_limit": self.rate_limit}, "queue setting")
            except InvalidOptionError as exc:
                raise ConfigurationError(f"job type {self.name!r}: {exc}") from None
        for size, low, high in ((self.team_size, 1, 100), (self.batch_size, 1, 1000), (self.memory_mb, 128, 10240)):
            if size is not None and not low <= size <= high:
                raise ConfigurationError(f"job type {self.name!r}: sizing {size} is outside {low}..{high}")
        for variable in [*self.environment, *(s.arn_env for s in self.secrets)]:
            if not _ENV_NAME.match(variable):
                raise ConfigurationError(f"job type {self.name!r}: {variable!r} is not an environment variable name")
        for permission in self.permissions:
            if not permission.actions or any("*" in action for action in permission.actions):
                raise ConfigurationError(f"job type {self.name!r}: name each IAM action, no wildcards")
            if permission.resource in ("*", "") or permission.resource.endswith(":*"):
                raise ConfigurationError(f"job type {self.name!r}: an IAM resource must be narrower than *")

    def queue_settings(self, defaults: QueueSettings) -> QueueSettings:
        """The settings of this job type's queue: the catalog's defaults, its own, its policy."""
        merged: QueueSettings = {**defaults, **self.settings, "policy": self.policy}
        return merged


@dataclass(frozen=True)
class Catalog:
    """A platform's job types and what they share: queue defaults, the dead letter queue, parameters."""

    name: str
    description: str
    job_types: tuple[JobType, ...]
    defaults: QueueSettings = field(default_factory=QueueSettings)
    dead_letter: str | None = None  # a queue every job type's failures are copied to
    dead_letter_settings: QueueSettings = field(default_factory=QueueSettings)
    parameters: tuple[Parameter, ...] = ()

    def __post_init__(self) -> None:
        names = [t.name for t in self.job_types]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise ConfigurationError(f"job type(s) declared twice: {', '.join(sorted(duplicates))}")
        if self.dead_letter is not None and self.dead_letter in names:
            raise ConfigurationError(f"the dead letter queue {self.dead_letter!r} cannot be a job type")
        for job_type in self.job_types:
            unknown = set(job_type.sends_to) - set(names)
            if unknown:
                raise ConfigurationError(f"job type {job_type.name!r} sends to undeclared {', '.join(sorted(unknown))}")
            check_all(QUEUE_SETTINGS, job_type.queue_settings(self.defaults), f"setting of {job_type.name}")
        declared = {p.name for p in self.parameters} | {s.parameter for s in self.secrets()}
        for parameter in declared:
            if not _LOGICAL_NAME.match(parameter):
                raise ConfigurationError(f"{parameter!r} is not a CloudFormation parameter name")
        for referenced in self._referenced_parameters():
            if referenced not in declared and not referenced.startswith("AWS::"):
                raise ConfigurationError(f"${{{referenced}}} is used but no parameter declares it")

    def _referenced_parameters(self) -> set[str]:
        texts = [v for t in self.job_types for v in t.environment.values()]
        texts += [p.resource for t in self.job_types for p in t.permissions]
        return {m for text in texts for m in re.findall(r"\$\{([^}!]+)\}", text)}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.job_types)

    def job_type(self, name: str) -> JobType:
        for job_type in self.job_types:
            if job_type.name == name:
                return job_type
        raise LookupError(f"no job type {name!r} in the {self.name} platform; declared: {', '.join(self.names)}")

    def secrets(self) -> tuple[Secret, ...]:
        """Every secret some job type reads, once each."""
        seen: dict[str, Secret] = {}
        for job_type in self.job_types:
            for secret in job_type.secrets:
                seen.setdefault(secret.parameter, secret)
        return tuple(seen.values())

    def send_options(self, name: str, data: Any, given: Mapping[str, Any]) -> dict[str, Any]:
        """The options of a send to `name`: the caller's, with what the job type derives from the data.

        A caller's option that contradicts a derived one is refused rather than
        overridden (a job under another key than its data says would run out of order).
        """
        options = dict(given)
        declared = next((t for t in self.job_types if t.name == name), None)
        if declared is None or declared.send_options is None:
            return options
        for option, value in declared.send_options(data).items():
            if option in options and options[option] != value:
                raise InvalidOptionError(
                    f"{name}: {option} is set from the job's data ({value!r}); got {options[option]!r}"
                )
            options[option] = value
        return options

    def with_handler(self, name: str, handler: Handler) -> Catalog:
        """The same catalog with one job type's handler replaced (tests, local experiments)."""
        self.job_type(name)
        replaced = tuple(dataclasses.replace(t, handler=handler) if t.name == name else t for t in self.job_types)
        return dataclasses.replace(self, job_types=replaced)
