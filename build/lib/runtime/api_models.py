"""The JSON API's requests and answers as pydantic models: validated per request, and the OpenAPI document.

Request models forbid unknown fields and are strict (a "5" is not a 5, a true
is not a 1), as the library is; the library checks the values again (ranges,
queue names), so the two never disagree on what is accepted. Answer models
forbid unknown fields too: a field added to a record and not here fails the
tests (the answer is validated), instead of silently leaving the API.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, create_model
from pydantic.config import JsonDict

from jobqueue.settings import (
    MAX_SINGLETON_KEY,
    MAX_START_IN,
    QUEUE_NAME,
    SEND_OPTIONS,
    Boolean,
    Check,
    Group,
    Integer,
    JobId,
    Option,
    SingletonKey,
    StartAfter,
)
from jobqueue.states import JobState

QUEUE_PATTERN = QUEUE_NAME.pattern
# A queue named in a path: its '/' would end the path segment (such a queue is addressed by the CLI).
PATH_QUEUE_PATTERN = QUEUE_PATTERN.replace(r"\-/]", r"\-]")
DATE_TIME: JsonDict = {"format": "date-time"}
UUID_TEXT: JsonDict = {"format": "uuid"}


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobGroup(_Request):
    id: Annotated[str, Field(min_length=1, max_length=MAX_SINGLETON_KEY)]
    tier: Annotated[str | None, Field(min_length=1, max_length=MAX_SINGLETON_KEY)] = None


def _whole(value: Any) -> Any:
    # JSON Schema's integer includes 135.0; the library takes ints only. Strings and booleans stay refused.
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _option_type(check: Check) -> Any:
    """The JSON type of a send option, from the library's declaration of it."""
    if isinstance(check, Integer):  # and Duration: whole seconds
        return Annotated[int, Field(strict=True, ge=check.low, le=check.high), BeforeValidator(_whole)]
    if isinstance(check, StartAfter):
        seconds = Annotated[float, Field(ge=0, le=MAX_START_IN)]  # strict: an int is taken, a string is not
        return seconds | Annotated[str, Field(json_schema_extra=DATE_TIME)]
    by_kind: dict[type[Check], Any] = {
        Boolean: StrictBool,
        SingletonKey: Annotated[str, Field(min_length=1, max_length=MAX_SINGLETON_KEY)],
        JobId: Annotated[str, Field(json_schema_extra=UUID_TEXT)],
        Group: JobGroup,
    }
    return by_kind.get(type(check), Annotated[str, Field(pattern=QUEUE_PATTERN)])  # else a queue name


def _option_field(option: Option) -> tuple[Any, Any]:
    return _option_type(option.check) | None, Field(None, description=f"{option.doc} ({option.check.describe()})")


SendOptions: type[_Request] = create_model(  # type: ignore[call-overload]  # fields from the library's options
    "SendOptions",
    __base__=_Request,
    __doc__="Options of one job; an option not given comes from the queue.",
    **{name: _option_field(option) for name, option in SEND_OPTIONS.items()},
)


class EnqueueRequest(_Request):
    """A job to add: its queue, its data (any JSON) and its options."""

    queue: Annotated[str, Field(pattern=QUEUE_PATTERN)]
    data: Any = None
    options: SendOptions | None = None  # type: ignore[valid-type]  # a model built from the library's options


class RedriveRequest(_Request):
    """The dead letters to move back (all when `ids` is absent)."""

    ids: list[str] | None = None


class Error(_Answer):
    error: str


class Refused(_Answer):
    """The queue's policy refused the job (one with its key is already queued or active)."""

    id: None
    error: str


class JobRecord(_Answer):
    """A job as stored; times are ISO 8601 text."""

    id: str
    name: str
    data: Any
    state: JobState
    priority: int
    attempts: int = Field(description="attempts started so far")
    retry_count: int
    retry_limit: int
    retry_delay: int | None
    retry_backoff: bool | None
    retry_delay_max: int | None
    expire_in: int | None
    policy: str | None
    singleton_key: str | None
    singleton_on: Annotated[str | None, Field(json_schema_extra=DATE_TIME)]
    group_id: str | None
    group_tier: str | None
    dead_letter: str | None
    delete_after: int | None
    created_on: Annotated[str | None, Field(json_schema_extra=DATE_TIME)]
    start_after: Annotated[str | None, Field(json_schema_extra=DATE_TIME)]
    started_on: Annotated[str | None, Field(json_schema_extra=DATE_TIME)]
    expire_at: Annotated[str | None, Field(json_schema_extra=DATE_TIME)]
    completed_on: Annotated[str | None, Field(json_schema_extra=DATE_TIME)]
    keep_until: Annotated[str | None, Field(json_schema_extra=DATE_TIME)]
    archived: bool
    output: Any
    origin: dict[str, Any] | None
    errors: list[dict[str, Any]] | None = Field(description="each failed attempt's error, oldest first")
    steps: list[dict[str, Any]] | None = Field(
        default=None, description="the steps its handler ran (Job.step): name, result, at, ms, attempt; in order"
    )
    progress: Any = Field(default=None, description="what its handler last said of how far it got (Job.set_progress)")
    batch_id: str | None = Field(default=None, description="the batch it was inserted in (GET /api/jobs/batches/{id})")


class Enqueued(_Answer):
    id: str
    job: JobRecord | None = Field(
        default=None, description="with `wait`: the job once finished, or as it was when the wait ended"
    )


class BatchRecord(_Answer):
    """A batch of jobs and how many finished in each way; times are ISO 8601 text."""

    id: str
    name: str = Field(description="the queue of its jobs")
    created_on: Annotated[str, Field(json_schema_extra=DATE_TIME)]
    total: int
    completed: int
    failed: int = Field(description="failed for good")
    cancelled: int = Field(description="cancelled, or deleted before they finished")
    unfinished: int = Field(description="still queued or running")
    on_finish: dict[str, Any] | None = Field(description="the job sent when every job has finished: name, data")
    finished_on: Annotated[str | None, Field(json_schema_extra=DATE_TIME)]


class Jobs(_Answer):
    jobs: list[JobRecord]


class HistoryPoint(_Answer):
    """What happened to a queue's jobs in one bucket of its history (times in seconds)."""

    at: Annotated[str, Field(json_schema_extra=DATE_TIME, description="the bucket's start")]
    sent: int
    started: int = Field(description="attempts started (of jobs finished or running when recorded)")
    completed: int
    failed: int = Field(description="failed for good")
    cancelled: int
    expired: int = Field(description="attempts ended by expiry")
    wait_p50: float | None = Field(description="seconds from ready to start, of the attempts started")
    wait_p95: float | None
    wait_p99: float | None
    run_p50: float | None = Field(description="seconds from start to end, of the jobs finished")
    run_p95: float | None
    run_p99: float | None


class History(_Answer):
    """A queue's history in buckets (a bucket where nothing happened is left out); a bucket wider
    than a minute has the largest of its minutes' percentiles."""

    queue: str
    bucket: int = Field(description="seconds a bucket spans")
    points: list[HistoryPoint]


class RateWindow(_Answer):
    """A rate-limited queue's window: at most `limit` jobs start in any `period` seconds."""

    limit: int
    period: int
    started: int = Field(description="jobs started in the last `period` seconds")
    frees_in: float = Field(description="seconds until the oldest of them leaves the window")
    group_id: str | None = Field(default=None, description="the group whose window it is (null: the queue's)")


class QueueStats(_Answer):
    name: str
    created: int
    retry: int
    queued: int = Field(description="created + retry: waiting to run")
    active: int
    completed: int
    cancelled: int
    failed: int
    oldest_queued_seconds: float
    paused: bool
    rate_window: RateWindow | None = Field(default=None, description="the queue's rate limit and how full it is")
    group_rate_windows: list[RateWindow] = Field(
        default_factory=list, description="under a group_rate_limit: the fullest groups' windows (10 at most)"
    )


class Stats(_Answer):
    queues: list[QueueStats]


class HealthCounts(_Answer):
    pending: int
    dead_letters: int
    active: int
    failed: int
    completed: int


class HorizonHolder(BaseModel):
    """A session, standby, replication slot or prepared transaction holding an old snapshot."""

    model_config = ConfigDict(extra="allow")  # and what the database tells about it (user, application...)
    kind: str
    name: str
    held_seconds: float | None


class HorizonReport(_Answer):
    oldest_snapshot_seconds: float
    dead_job_tuples: int
    warning: str | None
    held_by: list[HorizonHolder]


class Health(_Answer):
    """200 when healthy, 503 (same body) when too many jobs failed."""

    healthy: bool
    stats: HealthCounts
    horizon: HorizonReport


class QueuePaused(_Answer):
    queue: str
    paused: bool


class Redriven(_Answer):
    queue: str
    moved: dict[str, str] = Field(description="dead letter id: the id of the job it went back as")
    skipped: dict[str, str] = Field(description="dead letter id: why it stayed")


QueueActionResult = QueuePaused | Redriven


MEANING = {
    400: "the request is malformed (the error says what is wrong)",
    401: "no credentials, or wrong ones (WWW-Authenticate says which)",
    404: "no such job, queue or action",
    409: "the job's state or its queue's policy refuses the action",
    413: "the body is larger than 1 MB",
    503: "the job database is unavailable; try again",
}


def responses(
    answer: Any,
    *statuses: int,
    status: int = 200,
    description: str = "done",
    others: dict[int, tuple[str, Any]] | None = None,
) -> dict[int, Any]:
    """OpenAPI `responses` of a route: its answer's model under `status`, the Error body under each error
    status it may answer (400, 401 and 503 for every route), and `others` ({status: (meaning, model)})."""
    documented: dict[int, tuple[str, Any]] = {status: (description, answer)}
    documented |= {code: (MEANING[code], Error) for code in (400, 401, *statuses, 503)}
    documented |= others or {}
    return {
        code: {"description": meaning, "content": {"application/json": {"model": model}}}
        for code, (meaning, model) in documented.items()
    }
