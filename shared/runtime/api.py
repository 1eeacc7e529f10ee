"""The JSON API under /api/jobs: health, statistics and operations on jobs.

A Router of the HTTP app (runtime.webapp), which authenticates every request
first (runtime.auth) and turns the library's errors into statuses.
"""

from __future__ import annotations

import binascii
import json
from dataclasses import asdict
from datetime import datetime
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.exceptions import BadRequestError

from jobqueue import Job
from jobqueue.options import integer, job_id, queue_name
from jobqueue.settings import SEND_OPTIONS
from runtime import bootstrap, catalog, horizon, job_actions, scale
from runtime.config import ApiSettings, worker_functions

PREFIX = "/api/jobs"
router = Router()


def json_response(status: int, body: Any) -> Response[str]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps(body, default=str))


def _job(job: Job) -> dict[str, Any]:
    record = asdict(job)
    record.pop("signal", None)  # the worker's, never stored
    record["attempts"] = job.attempts_made  # counted as the dashboard and the CLI count them
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in record.items()}


@router.get(PREFIX + "/health")
def health() -> Response[str]:
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
    return json_response(200 if body["healthy"] else 503, body)


@router.get(PREFIX + "/stats")
def stats() -> Response[str]:
    rows = bootstrap.ready().get_queue_stats()
    return json_response(200, {"queues": [asdict(s) | {"queued": s.queued} for s in rows]})


@router.get(PREFIX + "/failed")
def failed() -> Response[str]:
    params = router.current_event.query_string_parameters
    limit = _int_param(params.get("limit"), "limit", 100)
    name = params.get("queue")
    jobs = bootstrap.ready().failed_jobs(
        limit=limit, name=None if name is None else bootstrap.ready().require_queue(name)
    )
    return json_response(200, {"jobs": [_job(j) for j in jobs]})


@router.get(PREFIX + "/<id>")
def show(id: str) -> Response[str]:
    job = bootstrap.ready().get_job(job_id(id))
    if job is None:
        return json_response(404, {"error": f"no job {id}"})
    return json_response(200, _job(job))


@router.post(PREFIX + "/queues/<name>/<action>")
def act_on_queue(name: str, action: str) -> Response[str]:
    """pause or resume a queue, or redrive a dead letter queue (body: optional {"ids": [...]})."""
    chosen = job_actions.queue_action(action)
    ids = None
    if chosen is job_actions.QueueAction.REDRIVE:
        body = json_body() if router.current_event.body else {}
        ids = body.get("ids") if isinstance(body, dict) else None
        if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)):
            raise BadRequestError("'ids' must be a list of job ids")
    return json_response(200, {"queue": name, **job_actions.apply_to_queue(bootstrap.ready(), chosen, name, ids)})


@router.post(PREFIX + "/<id>/<action>")
def act(id: str, action: str) -> Response[str]:
    """retry, cancel or resume one job (runtime.job_actions)."""
    job = job_actions.apply(bootstrap.ready(), job_actions.action(action), id)
    return json_response(200, _job(job))


def json_body() -> Any:
    """The request's body as JSON; a body that is not base64 (when flagged), UTF-8 or JSON is a 400."""
    try:
        text = router.current_event.decoded_body
    except binascii.Error:
        raise BadRequestError("the body is flagged base64 but is not valid base64") from None
    except UnicodeDecodeError as exc:
        raise BadRequestError(f"the body is not UTF-8 text (byte {exc.start})") from None
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequestError(f"the body is not valid JSON: {exc.msg} at position {exc.pos}") from None
    except RecursionError:
        raise BadRequestError("the body is nested too deeply") from None


@router.post(PREFIX)
def enqueue() -> Response[str]:
    body = json_body()
    if not isinstance(body, dict):
        raise BadRequestError("the body must be a JSON object with 'queue' and 'data'")
    unknown = set(body) - {"queue", "data", "options"}
    if unknown:
        raise BadRequestError(f"unknown field(s) {', '.join(sorted(unknown))}; expected queue, data, options")
    if "queue" not in body:
        raise BadRequestError("'queue' is required")
    options = body.get("options", {})
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise BadRequestError("'options' must be a JSON object")
    unknown_options = set(options) - set(SEND_OPTIONS)
    if unknown_options:
        raise BadRequestError(f"unknown option(s) {', '.join(sorted(unknown_options))}")
    name = queue_name(body["queue"])
    options = catalog.load().send_options(name, body.get("data"), options)
    new_id = bootstrap.ready().send(name, body.get("data"), **options)
    if new_id is None:
        return json_response(409, {"id": None, "error": job_actions.refused_by_policy(name)})
    function = worker_functions().get(name)
    if function:
        scale.kick(function, name)
    return json_response(201, {"id": new_id})


def _int_param(raw: str | None, name: str, default: int) -> int:
    if raw is None:
        return default
    try:
        return integer(name, int(raw))
    except ValueError:
        raise BadRequestError(f"{name} must be an integer, got {raw!r}") from None
