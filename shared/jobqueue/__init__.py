"""A Postgres job queue with pg-boss's semantics, for Python (psycopg 3).

No AWS here: the queue core knows Postgres and nothing else.
"""

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
    Throughput,
)
from jobqueue.queue import Queue
from jobqueue.redriving import RedriveResult
from jobqueue.sending import KEEP, UpsertResult
from jobqueue.settings import Policy, QueueSettings, SendOptions
from jobqueue.states import CANCELLABLE, FINISHED, QUEUED, RESUMABLE, RETRYABLE, TRANSITIONS, JobState

__all__ = [
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
    "Throughput",
    "UnknownQueueError",
    "UpsertResult",
    "due_fire_times",
    "next_fire_times",
    "retry_delay_seconds",
    "validate_cron",
]
