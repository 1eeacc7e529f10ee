"""The runtime's settings, read from the environment here and nowhere else.

Each function's settings are validated once per container: a bad value stops
the cold start with a ConfigurationError that names the variable; nothing
starts half-configured. The platform (pods) reads its own in pods/config.py,
with the same helpers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from jobqueue import ConfigurationError, InvalidOptionError
from jobqueue.options import group_limits, queue_name
from jobqueue.settings import GroupConcurrency

Bounded = TypeVar("Bounded", int, float)


def integer(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """An integer variable between low and high, `default` when unset or empty."""
    return _bounded(env, name, default, low, high, kind=int, what="an integer")


def number(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    """A number variable (seconds, say) between low and high, `default` when unset or empty."""
    return _bounded(env, name, default, low, high, kind=float, what="a number")


def _bounded(
    env: Mapping[str, str], name: str, default: Bounded, low: Bounded, high: Bounded, *, kind: type[Bounded], what: str
) -> Bounded:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be {what}, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigurationError(f"{name} must be between {_shown(low)} and {_shown(high)}, got {_shown(value)}")
    return value


def _shown(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class ConnectionSettings:
    """The queue connection's settings; unset, they suit a pooler in transaction mode."""

    prepare_threshold: int | None  # psycopg prepares a statement after this many runs; None: never
    statement_timeout_ms: int | None  # sent as a startup option, which poolers refuse; None: the role's
    connect_timeout: int  # seconds

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ConnectionSettings:
        prepare = env.get("PREPARE_THRESHOLD", "off").strip().lower()
        return cls(
            prepare_threshold=None if prepare in ("", "off") else integer(env, "PREPARE_THRESHOLD", 5, 0, 1000),
            statement_timeout_ms=integer(env, "STATEMENT_TIMEOUT_MS", 0, 0, 3_600_000) or None,
            connect_timeout=integer(env, "CONNECT_TIMEOUT", 10, 1, 300),
        )

    def psycopg_kwargs(self) -> dict[str, Any]:
        """The same settings for a connection made with psycopg directly (a handler's pool)."""
        kwargs: dict[str, Any] = {"prepare_threshold": self.prepare_threshold, "connect_timeout": self.connect_timeout}
        if self.statement_timeout_ms:
            kwargs["options"] = f"-c statement_timeout={self.statement_timeout_ms}"
        return kwargs


@dataclass(frozen=True)
class WorkerSettings:
    queue: str
    batch_size: int  # jobs fetched per round trip
    team_size: int  # handlers run at once (pg-boss's teamSize)
    max_jobs: int  # jobs one invocation takes at most
    safety_margin_ms: int  # stop fetching when less than this is left of the invocation
    expiry_margin_s: int  # a claimed job expires this long after the invocation's own end
    max_concurrency: int  # invocations of this worker at once (scale-out bound)
    # The deployment's group limits (GROUP_CONCURRENCY, JSON); None: the job type's declared ones.
    group_concurrency: GroupConcurrency | None = None
    max_snoozes: int = 100  # a job snoozed this often fails for good instead (MAX_SNOOZES)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> WorkerSettings:
        name = env.get("QUEUE_NAME", "")
        if not name:
            raise ConfigurationError("QUEUE_NAME is not set: each worker function drains one queue")
        return cls(
            queue=queue_name(name),
            batch_size=integer(env, "BATCH_SIZE", 100, 1, 1000),
            team_size=integer(env, "TEAM_SIZE", 5, 1, 100),
            max_jobs=integer(env, "MAX_JOBS", 1000, 1, 1_000_000),
            safety_margin_ms=integer(env, "SAFETY_MARGIN_MS", 10_000, 0, 600_000),
            expiry_margin_s=integer(env, "EXPIRY_MARGIN_S", 60, 0, 3600),
            max_concurrency=integer(env, "MAX_CONCURRENCY", 4, 1, 1000),
            group_concurrency=_group_concurrency(env),
            max_snoozes=integer(env, "MAX_SNOOZES", 100, 0, 1_000_000),
        )


def _group_concurrency(env: Mapping[str, str]) -> GroupConcurrency | None:
    value = json_variable(env, "GROUP_CONCURRENCY")
    if value is None:
        return None
    try:
        group_limits(value)
    except InvalidOptionError as exc:
        raise ConfigurationError(f"GROUP_CONCURRENCY: {exc}") from None
    return value  # type: ignore[no-any-return]


@dataclass(frozen=True)
class MaintenanceSettings:
    batch_size: int
    safety_margin_ms: int
    backlog_warn_jobs: int  # warn when a queue holds more queued jobs than this
    backlog_warn_seconds: int  # ... or its oldest ready job has waited longer
    scale_jobs_per_worker: int = 1000  # a backlog nobody works on starts one worker per this many jobs
    scale_max_workers: int = 4  # ... and at most this many
    horizon_warn_seconds: int = 300  # warn when a snapshot older than this holds the MVCC horizon back

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> MaintenanceSettings:
        return cls(
            batch_size=integer(env, "MAINTENANCE_BATCH_SIZE", 1000, 1, 100_000),
            safety_margin_ms=integer(env, "SAFETY_MARGIN_MS", 10_000, 0, 600_000),
            backlog_warn_jobs=integer(env, "BACKLOG_WARN_JOBS", 1000, 1, 10**9),
            backlog_warn_seconds=integer(env, "BACKLOG_WARN_SECONDS", 600, 1, 10**9),
            scale_jobs_per_worker=integer(env, "SCALE_JOBS_PER_WORKER", 1000, 1, 10**9),
            scale_max_workers=integer(env, "SCALE_MAX_WORKERS", 4, 1, 1000),
            horizon_warn_seconds=horizon_warn_seconds(env),
        )


def text(env: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    """A string variable, stripped; `default` when unset or empty."""
    value = env.get(name, "").strip()
    return value or default


def flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    """A boolean variable: true/false, 1/0, yes/no (any case)."""
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("true", "1", "yes"):
        return True
    if raw in ("false", "0", "no"):
        return False
    raise ConfigurationError(f"{name} must be true or false, got {raw!r}")


@dataclass(frozen=True)
class ApiSettings:
    health_failed_threshold: int  # /health answers 503 from this many failed jobs on
    horizon_warn_seconds: int  # /health warns of a snapshot older than this

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ApiSettings:
        return cls(
            health_failed_threshold=integer(env, "HEALTH_FAILED_THRESHOLD", 100, 1, 10**9),
            horizon_warn_seconds=horizon_warn_seconds(env),
        )


def horizon_warn_seconds(env: Mapping[str, str] = os.environ) -> int:
    """Seconds a snapshot may hold the MVCC horizon back before maintenance, /health, the dashboard
    and `jobs doctor` name who holds it (HORIZON_WARN_SECONDS)."""
    return integer(env, "HORIZON_WARN_SECONDS", 300, 0, 10**7)


def secret_max_age(env: Mapping[str, str] = os.environ) -> int:
    """Seconds a secret read from Secrets Manager is cached (SECRET_MAX_AGE)."""
    return integer(env, "SECRET_MAX_AGE", 300, 0, 86_400)


def json_variable(env: Mapping[str, str], name: str) -> Any:
    """An environment variable holding JSON: its value, None when unset or empty, a clear error when malformed."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{name} is not JSON: {exc}") from None


def worker_functions(env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Queue name -> worker function name, for kicks and scale-out (WORKER_FUNCTIONS, JSON)."""
    mapping = json_variable(env, "WORKER_FUNCTIONS")
    if mapping is None:
        return {}
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        raise ConfigurationError("WORKER_FUNCTIONS must map queue names to function names")
    return {queue_name(k): v for k, v in mapping.items()}
