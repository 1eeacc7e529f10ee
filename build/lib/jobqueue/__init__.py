"""A Postgres job queue with pg-boss's semantics, for Python (psycopg 3).

No AWS here: the queue core knows Postgres and nothing else.
"""

from typing import Any

from jobqueue.backoff import retry_delay_seconds
from jobqueue.cron import due_fire_times, next_fire_times, validate_cron
from jobqueue.errors import (
    ConcurrentUpdateError,
    ConfigurationError,
    DatabaseUnavailableError,
    InvalidCronError,
    InvalidNameError,
    InvalidOptionError,
    InvalidTimezoneError,
    JobError,
    JobQueueError,
    LockTimeoutError,
    PayloadError,
    PolicyConflictError,
    QueueInUseError,
    Snooze,
    UnknownQueueError,
)
from jobqueue.models import (
    Batch,
    FailResult,
    GroupActivity,
    HistoryPoint,
    Horizon,
    HorizonHolder,
    Job,
    JobContext,
    MaintenanceResult,
    QueueInfo,
    QueueStats,
    RateWindow,
    Schedule,
    SnoozeResult,
    StopSignal,
    Subscription,
    Throughput,
)
from jobqueue.queue import Queue
from jobqueue.redriving import RedriveResult
from jobqueue.sending import KEEP, UpsertResult
from jobqueue.settings import Policy, QueueSettings, SendOptions
from jobqueue.states import CANCELLABLE, FINISHED, QUEUED, RESUMABLE, RETRYABLE, TRANSITIONS, JobState

__all__ = [  # noqa: RUF022 - AsyncQueue, imported on first use, is named first
    "AsyncQueue",
    "CANCELLABLE",
    "FINISHED",
    "KEEP",
    "QUEUED",
    "RESUMABLE",
    "RETRYABLE",
    "TRANSITIONS",
    "Batch",
    "ConcurrentUpdateError",
    "ConfigurationError",
    "DatabaseUnavailableError",
    "FailResult",
    "GroupActivity",
    "HistoryPoint",
    "Horizon",
    "HorizonHolder",
    "InvalidCronError",
    "InvalidNameError",
    "InvalidOptionError",
    "InvalidTimezoneError",
    "Job",
    "JobContext",
    "JobError",
    "JobQueueError",
    "JobState",
    "LockTimeoutError",
    "MaintenanceResult",
    "PayloadError",
    "Policy",
    "PolicyConflictError",
    "Queue",
    "QueueInUseError",
    "QueueInfo",
    "QueueSettings",
    "QueueStats",
    "RateWindow",
    "RedriveResult",
    "Schedule",
    "SendOptions",
    "Snooze",
    "SnoozeResult",
    "StopSignal",
    "Subscription",
    "Throughput",
    "UnknownQueueError",
    "UpsertResult",
    "due_fire_times",
    "next_fire_times",
    "retry_delay_seconds",
    "validate_cron",
]


def __getattr__(name: str) -> Any:
    # AsyncQueue on first use: psycopg's async pool is not imported by those who never use it.
    if name == "AsyncQueue":
        from jobqueue.asyncqueue import AsyncQueue  # noqa: PLC0415 - on first use

        return AsyncQueue
    raise AttributeError(f"module 'jobqueue' has no attribute {name!r}")
