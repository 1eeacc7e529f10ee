"""The records the queue hands back. Field names match the SQL columns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from jobqueue.settings import Policy
from jobqueue.states import JobState

MAX_STEP_NAME = 200
# Job's fields set by whoever runs it (the worker), never stored: left out of a job's record.
RUNNER_FIELDS = ("signal", "context", "connection")


class StopSignal:
    """Shared by the jobs of one fetch: asks some of them (or all) to stop. One object per batch, not
    per job, so that the hot path pays nothing for it; setting and reading are atomic for threads."""

    __slots__ = ("cancelled", "everyone")

    def __init__(self) -> None:
        self.everyone = False  # the invocation's time is nearly over
        self.cancelled: set[str] = set()  # jobs cancelled (or deleted, expired) while they ran

    def requested(self, job_id: str) -> bool:
        return self.everyone or job_id in self.cancelled


T = TypeVar("T")


class JobContext(Protocol):
    """What a job's handler reaches through its Job (`step`, `set_progress`), set by whoever runs
    it: the runtime's worker, or Queue.context_for for a loop of your own (jobqueue.tracking)."""

    def step(self, job: Job, name: str, fn: Callable[[], Any]) -> Any: ...

    def set_progress(self, job: Job, value: Any) -> None: ...


@dataclass(slots=True)
class Job:
    """A job as stored. `fetch` fills the fields a handler needs; the rest stay None.

    The first fields are in the order of fetch's RETURNING list, so a fetched
    row becomes a Job positionally (the hot path); other queries use names.
    """

    id: str
    name: str
    data: Any
    priority: int = 0
    retry_count: int = 0
    retry_limit: int = 0
    started_on: datetime | None = None
    expire_at: datetime | None = None
    created_on: datetime | None = None
    singleton_key: str | None = None
    origin: dict[str, Any] | None = None
    state: JobState = JobState.ACTIVE  # fetch returns only active jobs and does not send the column
    policy: Policy | None = None
    retry_delay: int | None = None
    retry_backoff: bool | None = None
    retry_delay_max: int | None = None
    expire_in: int | None = None
    start_after: datetime | None = None
    singleton_on: datetime | None = None
    keep_until: datetime | None = None
    delete_after: int | None = None
    dead_letter: str | None = None
    completed_on: datetime | None = None
    output: Any = None
    archived: bool = False
    group_id: str | None = None  # the send option `group`
    group_tier: str | None = None
    # Each failed attempt's error, oldest first: {attempt, at, message, type, traceback}.
    errors: list[dict[str, Any]] | None = None
    # The steps its handler ran (step), in the order run: {name, result, at, ms, attempt}.
    steps: list[dict[str, Any]] | None = None
    progress: Any = None  # what its handler last said of how far it got (set_progress)
    batch_id: str | None = None  # the batch it was inserted in (Queue.insert's batch)
    # Set by whoever runs the job (the runtime's worker) to ask its handler to stop: see cancel_requested.
    signal: StopSignal | None = field(default=None, repr=False, compare=False)
    # Set by whoever runs the job: where step and set_progress store what they are given.
    context: JobContext | None = field(default=None, repr=False, compare=False)
    # A transactional job type's handler (the runtime's JobType.transactional): a psycopg connection
    # inside the transaction that also completes the job, for the handler's own writes.
    connection: Any = field(default=None, repr=False, compare=False)

    def step(self, name: str, fn: Callable[[], T]) -> T:
        """Run `fn()` once for this job, whatever its attempts: its JSON result is stored with the
        job when it returns, and a later attempt (after a failure, an expiry, a killed invocation)
        gets the stored result back without calling `fn`. Name each step of a handler differently.
        Outside a worker (no context: a handler called by a test) `fn` simply runs."""
        if not isinstance(name, str) or not 0 < len(name) <= MAX_STEP_NAME:
            raise ValueError(f"a step's name must be a string of 1-{MAX_STEP_NAME} characters, got {name!r}")
        if self.context is None:
            return fn()
        result: T = self.context.step(self, name, fn)
        return result

    def set_progress(self, value: Any) -> None:
        """Say how far the handler got: any JSON value (e.g. {"done": 3, "total": 10}, which the
        dashboard draws as a bar). Cheap to call often: it is written at most once a second, and
        the last value when the job finishes."""
        if self.context is not None:
            self.context.set_progress(self, value)

    @property
    def attempt(self) -> int:
        """1 for the first run, 2 for the first retry, and so on."""
        return self.retry_count + 1

    @property
    def cancel_requested(self) -> bool:
        """True once the job was cancelled (or deleted) while it ran, or its invocation's time is
        nearly over: a long handler checks it between steps and stops cleanly. Never a query:
        the worker refreshes it for all its running jobs at once."""
        return self.signal is not None and self.signal.requested(self.id)

    @property
    def attempts_made(self) -> int:
        """Attempts started so far: every operator view counts them this way."""
        return self.retry_count + (1 if self.started_on else 0)


@dataclass(slots=True, frozen=True)
class QueueInfo:
    name: str
    policy: Policy
    retry_limit: int
    retry_delay: int
    retry_backoff: bool
    retry_delay_max: int | None
    expire_in: int
    retention: int
    archive_after: int
    delete_after: int
    dead_letter: str | None
    created_on: datetime
    updated_on: datetime
    paused: bool = False  # pause_queue: fetches claim nothing until resume_queue
    archive: bool = True  # False: finished jobs are deleted at archive_after instead of archived
    partition: bool = False  # True: its jobs have a partition of the job table of their own
    rate_limit: dict[str, int] | None = None  # {"limit": n, "period": s}: at most n jobs started in any s seconds
    group_rate_limit: dict[str, int] | None = None  # the same for each group of the queue
    fairness: str | dict[str, Any] = "fifo"  # "round_robin" (or {"tiers": {tier: weight}}): groups take turns


@dataclass(slots=True, frozen=True)
class GroupActivity:
    """A group of a queue with jobs active (the send option `group`)."""

    group_id: str
    tier: str | None
    active: int


@dataclass(slots=True, frozen=True)
class QueueStats:
    """Jobs of one queue by state (hot table), and the wait of its oldest ready job."""

    name: str
    created: int
    retry: int
    active: int
    completed: int
    cancelled: int
    failed: int
    oldest_queued_seconds: float
    paused: bool = False

    @property
    def queued(self) -> int:
        return self.created + self.retry


@dataclass(slots=True, frozen=True)
class Batch:
    """A batch of jobs (Queue.insert's `batch`): how many, and how many finished in each way."""

    id: str
    name: str  # the queue of its jobs
    created_on: datetime
    total: int
    completed: int
    failed: int  # failed for good (a retry is not counted until it ends)
    cancelled: int  # cancelled, or deleted before they finished
    on_finish: dict[str, Any] | None  # {name, data}: the job sent when every job has finished
    finished_on: datetime | None  # when the last of them finished (its on_finish job sent then)

    @property
    def unfinished(self) -> int:
        """Jobs still queued or running."""
        return self.total - self.completed - self.failed - self.cancelled


@dataclass(slots=True, frozen=True)
class RateWindow:
    """A rate-limited queue's (or group's) window now: at most `limit` jobs start in any `period` seconds."""

    limit: int
    period: int
    started: int  # jobs started in the last `period` seconds
    frees_in: float  # seconds until the oldest of them leaves the window (0: none started)
    group_id: str | None = None  # a group's window under a group_rate_limit; None: the queue's

    @property
    def room(self) -> int:
        return max(0, self.limit - self.started)


@dataclass(slots=True, frozen=True)
class Subscription:
    """A queue subscribed to an event (Queue.subscribe)."""

    event: str
    name: str
    created_on: datetime
    updated_on: datetime


@dataclass(slots=True, frozen=True)
class Schedule:
    name: str
    key: str
    cron: str
    timezone: str
    data: Any
    options: dict[str, Any]
    created_on: datetime
    updated_on: datetime
    last_fire_time: datetime | None


@dataclass(slots=True, frozen=True)
class Throughput:
    """Jobs of one queue that finished within one time bucket (starting at `bucket`)."""

    name: str
    bucket: datetime
    completed: int
    failed: int


@dataclass(slots=True, frozen=True)
class HistoryPoint:
    """What happened to a queue's jobs (or every queue's) in one bucket of its history, from `at`
    (Queue.history). Wait: seconds from ready to start of the attempts started; run: seconds from
    start to end of the jobs finished; None when there were none. A bucket wider than a minute
    has the largest of its minutes' percentiles."""

    at: datetime
    sent: int
    started: int
    completed: int
    failed: int
    cancelled: int
    expired: int
    wait_p50: float | None
    wait_p95: float | None
    wait_p99: float | None
    run_p50: float | None
    run_p95: float | None
    run_p99: float | None


@dataclass(slots=True, frozen=True)
class SnoozeResult:
    """What `snooze` did: jobs put back to run later, and jobs failed for snoozing too often."""

    snoozed: list[str]
    failed: list[str]


@dataclass(slots=True, frozen=True)
class FailResult:
    """What `fail` did to a batch: ids by outcome."""

    retried: list[str]
    failed: list[str]
    dead_lettered: int


@dataclass(slots=True, frozen=True)
class MaintenanceResult:
    expired_retried: int = 0
    expired_failed: int = 0
    archived: int = 0
    purged: int = 0
    unstarted_failed: int = 0
    skipped: bool = False  # another process held the maintenance lock
    deleted: int = 0  # finished jobs of queues that do not archive, deleted at their archive_after
    history_minutes: int = 0  # rows of the queues' history recorded (a queue and a minute each)


@dataclass(slots=True, frozen=True)
class HorizonHolder:
    """Something that holds the MVCC horizon back: a session, a standby, a replication slot, a
    prepared transaction."""

    kind: str  # "session", "standby (walsender)", "replication slot", "prepared transaction"
    name: str  # "pid 4711", the slot's name, the prepared transaction's gid
    held_seconds: float | None  # since when (None: the database does not tell, or not this role)
    xmin_age: int | None  # transactions since the snapshot it holds
    details: dict[str, Any] = field(default_factory=dict)  # user, application, client address, state...

    def describe(self) -> str:
        """One line naming it, for a log, the dashboard, `jobs doctor`."""
        held = "for an unknown time" if self.held_seconds is None else f"for {self.held_seconds:,.0f} s"
        shown = ", ".join(f"{key} {value}" for key, value in self.details.items() if key != "writing")
        return f"{self.kind} {self.name} ({shown}) holds a snapshot {held}, {self.xmin_age or 0:,} transactions old"


@dataclass(slots=True, frozen=True)
class Horizon:
    """Who holds the MVCC horizon back, oldest snapshot first, and the dead rows it leaves."""

    holders: list[HorizonHolder]
    dead_job_tuples: int
    live_job_tuples: int

    @property
    def oldest(self) -> HorizonHolder | None:
        return self.holders[0] if self.holders else None

    @property
    def oldest_seconds(self) -> float:
        """The age of the oldest snapshot held, in seconds (0 when none is known)."""
        return max((h.held_seconds for h in self.holders if h.held_seconds is not None), default=0.0)

    def older_than(self, seconds: float) -> list[HorizonHolder]:
        """The holders whose snapshot is older than `seconds`, and those whose age is unknown."""
        return [h for h in self.holders if h.held_seconds is None or h.held_seconds > seconds]


def job_row(cursor: Any) -> Any:
    """Row factory: a Job with its state and policy as the enums (not the database's text)."""
    names = [column.name for column in cursor.description or ()]

    def make(values: Any) -> Job:
        row = dict(zip(names, values, strict=True))
        row["state"] = JobState(row["state"])
        if row.get("policy") is not None:
            row["policy"] = Policy(row["policy"])
        return Job(**row)

    return make


def queue_info_row(cursor: Any) -> Any:
    """Row factory: a QueueInfo with its policy as the enum."""
    names = [column.name for column in cursor.description or ()]

    def make(values: Any) -> QueueInfo:
        row = dict(zip(names, values, strict=True))
        row["policy"] = Policy(row["policy"])
        return QueueInfo(**row)

    return make
