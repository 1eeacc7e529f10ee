"""The JSON API under /api/jobs: health, statistics and operations on jobs.

A Router of the HTTP app (runtime.webapp), which authenticates every request
first (runtime.auth) and turns the library's errors into statuses. Each route
declares its parameters, body and answer with the models of runtime.api_models:
Powertools validates the request against them (after authentication: see
runtime.openapi.VALIDATED) and the answer on its way out, and describes the API
from them at /api/openapi.json.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import unquote
from uuid import UUID

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query

from jobqueue import FINISHED, Job, RateWindow
from jobqueue.models import RUNNER_FIELDS
from jobqueue.options import queue_name
from runtime import api_models as models
from runtime import auth, bootstrap, catalog, horizon, job_actions, openapi, scale
from runtime.config import ApiSettings, worker_functions
from runtime.openapi import VALIDATED

PREFIX = "/api/jobs"
MAX_LIST = 1000  # jobs one list answers at most
HISTORY_HOURS = 14 * 24  # as long as maintenance keeps a queue's history
# GET /api/jobs/{id}?wait= waits this long at most (API Gateway's HTTP API gives a request 30 s),
# and answers this long before the function's own end.
MAX_WAIT_S = 25
WAIT_MARGIN_S = 2.0
router = Router()


def json_response(status: int, body: Any) -> Response[str]:
    """An answer serialised here (errors, and routes without a model)."""
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps(body, default=str))


def answer(status: int, body: Any) -> Response[Any]:
    """An answer with a status of its own, validated against the route's model before it is serialised."""
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


def _job(job: Job) -> dict[str, Any]:
    record = asdict(job)
    for runner_only in RUNNER_FIELDS:
        record.pop(runner_only, None)
    record["attempts"] = job.attempts_made  # counted as the dashboard and the CLI count them
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in record.items()}


@router.get(
    PREFIX + "/health",
    middlewares=VALIDATED,
    summary="Health of the jobs",
    responses=models.responses(
        models.Health,
        description="healthy",
        others={
            503: ("unhealthy (too many failed jobs), or the job database is unavailable", models.Health | models.Error)
        },
    ),
)
def health() -> Response[models.Health]:
    queue = bootstrap.ready()
    settings = ApiSettings.from_env()
    stats = queue.get_queue_stats()
    dead_letters = queue.dead_letter_sources()
    failed = sum(s.failed for s in stats)
    body = {
        "healthy": failed < settings.health_failed_threshold,
        "stats": {
            "pending": sum(s.queued for s in stats if s.name not in dead_letters),
            "dead_letters": sum(s.queued for s in stats if s.name in dead_letters),
            "active": sum(s.active for s in stats),
            "failed": failed,
            "completed": sum(s.completed for s in stats),
        },
        # A snapshot held open elsewhere does not make the jobs unhealthy (the fetch stays fast),
        # but the tables grow until it ends: a warning naming who holds it.
        "horizon": horizon.report(queue.horizon(), settings.horizon_warn_seconds),
    }
    return answer(200 if body["healthy"] else 503, body)


@router.get(
    PREFIX + "/stats",
    middlewares=VALIDATED,
    responses=models.responses(models.Stats),
    summary="Jobs of each queue by state",
)
def stats() -> models.Stats:
    queue = bootstrap.ready()
    rows = queue.get_queue_stats()
    infos = queue.get_queues()
    windows = {info.name: queue.rate_window(info.name) for info in infos if info.rate_limit}
    groups = {info.name: queue.group_rate_windows(info.name) for info in infos if info.group_rate_limit}
    return {  # type: ignore[return-value]  # validated
        "queues": [
            asdict(s)
            | {
                "queued": s.queued,
                "rate_window": _window(windows.get(s.name)),
                "group_rate_windows": [asdict(window) for window in groups.get(s.name, [])],
            }
            for s in rows
        ]
    }


def _window(window: RateWindow | None) -> dict[str, Any] | None:
    return None if window is None else asdict(window)


@router.get(
    PREFIX + "/failed",
    middlewares=VALIDATED,
    responses=models.responses(models.Jobs, 404),
    summary="Failed jobs, newest first",
)
def failed(
    limit: Annotated[int, Query(ge=1, le=MAX_LIST, description="jobs at most")] = 100,
    queue: Annotated[str | None, Query(pattern=models.QUEUE_PATTERN, description="only this queue's")] = None,
) -> models.Jobs:
    jobs = bootstrap.ready().failed_jobs(
        limit=limit, name=None if queue is None else bootstrap.ready().require_queue(queue)
    )
    return {"jobs": [_job(j) for j in jobs]}  # type: ignore[return-value]


@router.get(
    PREFIX + "/queues/<name>/history",
    middlewares=VALIDATED,
    responses=models.responses(models.History, 404),
    summary="A queue's history: jobs sent, started and finished, wait and run percentiles, per bucket",
)
def history(
    name: Annotated[str, Path(pattern=models.PATH_QUEUE_PATTERN, description="the queue")],
    hours: Annotated[int, Query(ge=1, le=HISTORY_HOURS, description="the last this many hours")] = 1,
    bucket: Annotated[
        int, Query(ge=60, le=86_400, multiple_of=60, description="seconds a bucket spans (whole minutes)")
    ] = 60,
) -> models.History:
    queue = bootstrap.ready()
    found = queue.require_queue(name)
    until = datetime.now(UTC)
    points = queue.history(found, until - timedelta(hours=hours), until, bucket_seconds=bucket)
    return {  # type: ignore[return-value]  # validated
        "queue": found,
        "bucket": bucket,
        "points": [{**asdict(p), "at": p.at.isoformat()} for p in points],
    }


@router.get(
    PREFIX + "/batches/<id>",
    middlewares=VALIDATED,
    responses=models.responses(models.BatchRecord, 404),
    summary="A batch of jobs and how many have finished",
)
def batch(
    id: Annotated[
        str,
        Path(
            min_length=1,
            pattern=r"^[^\x00]+$",  # Postgres stores no NUL: no batch has one (the guard refuses it, 400)
            description="the batch's id (up to 255 characters), percent-encoded",
        ),
    ],
) -> models.BatchRecord:
    # The path arrives as sent (API Gateway's rawPath): a batch id may hold any character, so it is
    # decoded here, and its length is known only once decoded.
    id = unquote(id)
    queue = bootstrap.ready()
    found = queue.get_batch(id)
    if found is None:
        raise job_actions.JobNotFound(queue.missing_batch(id))
    record = {**asdict(found), "unfinished": found.unfinished}
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in record.items()}  # type: ignore[return-value]


@router.get(
    PREFIX + "/<id>", middlewares=VALIDATED, responses=models.responses(models.JobRecord, 404), summary="One job"
)
def show(
    id: Annotated[UUID, Path(description="the job's id")],
    wait: Annotated[
        int,
        Query(
            ge=0,
            le=MAX_WAIT_S,
            description="seconds to wait for the job to finish (completed, failed or cancelled) before answering "
            "as it is; bounded by what is left of the request's time",
        ),
    ] = 0,
) -> models.JobRecord:
    queue = bootstrap.ready()
    job = queue.get_job(str(id))
    if job is None:
        raise job_actions.JobNotFound(queue.missing_job(str(id)))
    if wait and job.state not in FINISHED:
        job = queue.wait(job.name, job.id, timeout=_wait_within(wait)) or job
    return _job(job)  # type: ignore[return-value]  # validated into the model on the way out


@router.post(
    PREFIX + "/queues/<name>/<action>",
    middlewares=VALIDATED,
    responses=models.responses(models.QueueActionResult, 404, 409, 413),
    summary="Pause or resume a queue, or redrive a dead letter queue",
)
def act_on_queue(
    name: Annotated[str, Path(pattern=models.PATH_QUEUE_PATTERN, description="the queue")],
    action: job_actions.QueueAction,
    body: Annotated[models.RedriveRequest | None, Body(description="redrive: which dead letters")] = None,
) -> models.QueueActionResult:
    """pause or resume a queue, or redrive a dead letter queue (all its jobs, or `ids`)."""
    ids = body.ids if body is not None and action is job_actions.QueueAction.REDRIVE else None
    done = job_actions.apply_to_queue(bootstrap.ready(), action, name, ids)
    return {"queue": name, **done}  # type: ignore[return-value]  # validated into one of the models


@router.post(
    PREFIX + "/<id>/<action>",
    middlewares=VALIDATED,
    responses=models.responses(models.JobRecord, 404, 409, 413),
    summary="Retry, cancel or resume one job",
)
def act(id: Annotated[UUID, Path(description="the job's id")], action: job_actions.Action) -> models.JobRecord:
    """retry, cancel or resume one job (runtime.job_actions)."""
    job = job_actions.apply(bootstrap.ready(), action, str(id))
    return _job(job)  # type: ignore[return-value]


@router.post(
    PREFIX,
    middlewares=VALIDATED,
    summary="Add a job",
    responses=models.responses(
        models.Enqueued,
        404,
        413,
        status=201,
        description="the job was added",
        others={409: (models.Refused.__doc__ or "", models.Refused)},
    ),
)
def enqueue(
    request: models.EnqueueRequest,
    wait: Annotated[
        int,
        Query(
            ge=0,
            le=MAX_WAIT_S,
            description="seconds to wait for the job to finish before answering (then with the job); bounded by "
            "what is left of the request's time",
        ),
    ] = 0,
) -> Response[models.Enqueued]:
    name = queue_name(request.queue)
    given: dict[str, Any] = {} if request.options is None else request.options.model_dump(exclude_unset=True)
    options = catalog.load().send_options(name, request.data, given)
    queue = bootstrap.ready()
    new_id = queue.send(name, request.data, **options)
    if new_id is None:
        raise job_actions.RefusedByPolicy(job_actions.refused_by_policy(name))
    function = worker_functions().get(name)
    if function:
        scale.kick(function, name)
    if not wait:
        return answer(201, {"id": new_id})
    job = queue.wait(name, new_id, timeout=_wait_within(wait))
    return answer(201, {"id": new_id, "job": None if job is None else _job(job)})


def _wait_within(wait: int) -> float:
    """Seconds a request may wait: what it asked, within what is left of the function's time."""
    return max(0.0, min(wait, router.lambda_context.get_remaining_time_in_millis() / 1000 - WAIT_MARGIN_S))


@router.get("/api/openapi.json", include_in_schema=False)
def openapi_document() -> Response[str]:
    """This API described (OpenAPI 3.1), generated from the routes and models above."""
    document = openapi.document(auth.base_path(router.current_event))  # type: ignore[arg-type]  # payload v2
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=document)
