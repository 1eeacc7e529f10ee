"""The HTTP API: health, statistics and operations on jobs.

Behind API Gateway (HTTP API, payload v2) with IAM authorization. The same
function serves the dashboard's pages under /dashboard (runtime.dashboard). Where IAM is
absent (the local stack, or an API without an authorizer) a bearer token is
required, read from Secrets Manager (API_TOKEN_SECRET_ARN) or, locally, the
environment (API_TOKEN). With neither configured every request is refused:
the API never runs open by accident.
"""

from __future__ import annotations

import hmac
import json
import os
from dataclasses import asdict
from datetime import datetime
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import BadRequestError
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from jobqueue import (
    DatabaseUnavailableError,
    Job,
    JobQueueError,
    PolicyConflictError,
    Queue,
    UnknownQueueError,
)
from jobqueue.options import integer, job_id, queue_name
from jobqueue.settings import SEND_OPTIONS
from runtime import bootstrap, scale
from runtime.dashboard import routes as dashboard
from runtime.observability import logger
from runtime.secrets import secret_or_env
from runtime.settings import worker_functions

app = APIGatewayHttpResolver()
HEALTH_FAILED_THRESHOLD = int(os.environ.get("HEALTH_FAILED_THRESHOLD", "100"))


def queue() -> Queue:
    return bootstrap.ready()


def _json(status: int, body: Any) -> Response[str]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps(body, default=str))


def _job(job: Job) -> dict[str, Any]:
    record = asdict(job)
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in record.items()}


@app.get("/api/jobs/health")
def health() -> Response[str]:
    stats = queue().get_queue_stats()
    failed = sum(s.failed for s in stats)
    body = {
        "healthy": failed < HEALTH_FAILED_THRESHOLD,
        "stats": {
            "pending": sum(s.queued for s in stats),
            "active": sum(s.active for s in stats),
            "failed": failed,
            "completed": sum(s.completed for s in stats),
        },
    }
    return _json(200 if body["healthy"] else 503, body)


@app.get("/api/jobs/stats")
def stats() -> Response[str]:
    rows = queue().get_queue_stats()
    return _json(200, {"queues": [asdict(s) | {"queued": s.queued} for s in rows]})


@app.get("/api/jobs/failed")
def failed() -> Response[str]:
    params = app.current_event.query_string_parameters or {}
    limit = _int_param(params.get("limit"), "limit", 100)
    name = params.get("queue")
    jobs = queue().failed_jobs(limit=limit, name=None if name is None else queue_name(name))
    return _json(200, {"jobs": [_job(j) for j in jobs]})


@app.get("/api/jobs/<id>")
def show(id: str) -> Response[str]:
    job = queue().get_job(job_id(id))
    if job is None:
        return _json(404, {"error": f"no job {id}"})
    return _json(200, _job(job))


@app.post("/api/jobs/<id>/retry")
def retry(id: str) -> Response[str]:
    return _requeue(id, "failed", lambda q, job: q.retry(job.name, [job.id]))


@app.post("/api/jobs/<id>/cancel")
def cancel(id: str) -> Response[str]:
    return _requeue(id, ("created", "retry", "active"), lambda q, job: q.cancel(job.name, [job.id]))


def _requeue(id: str, states: str | tuple[str, ...], action: Any) -> Response[str]:
    q = queue()
    job = q.get_job(job_id(id))
    if job is None:
        return _json(404, {"error": f"no job {id}"})
    allowed = (states,) if isinstance(states, str) else states
    if job.state not in allowed:
        return _json(409, {"error": f"job {id} is {job.state}; this needs it to be {' or '.join(allowed)}"})
    changed = action(q, job)
    if not changed:
        return _json(409, {"error": f"job {id} changed meanwhile or its queue's policy refused it"})
    updated = q.get_job(job.id)
    return _json(200, _job(updated) if updated else {"id": job.id})


@app.post("/api/jobs")
def enqueue() -> Response[str]:
    body = app.current_event.json_body
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
    new_id = queue().send(name, body.get("data"), **options)
    if new_id is None:
        return _json(
            409, {"id": None, "error": f"the policy of queue {name!r} refused the job (one is already queued)"}
        )
    function = worker_functions().get(name)
    if function:
        scale.kick(function, name)
    return _json(201, {"id": new_id})


def _int_param(raw: str | None, name: str, default: int) -> int:
    if raw is None:
        return default
    try:
        return integer("limit", int(raw))
    except ValueError:
        raise BadRequestError(f"{name} must be an integer, got {raw!r}") from None


@app.exception_handler(json.JSONDecodeError)
def malformed_json(error: json.JSONDecodeError) -> Response[str]:
    return _json(400, {"error": f"the body is not valid JSON: {error.msg} at position {error.pos}"})


@app.exception_handler(UnknownQueueError)
def unknown_queue(error: UnknownQueueError) -> Response[str]:
    return _json(404, {"error": str(error)})


@app.exception_handler(PolicyConflictError)
def policy_conflict(error: PolicyConflictError) -> Response[str]:
    return _json(409, {"error": str(error)})


@app.exception_handler(DatabaseUnavailableError)
def database_down(error: DatabaseUnavailableError) -> Response[str]:
    logger.error("database unavailable", extra={"error": str(error)})
    return _json(503, {"error": "the job database is unavailable; try again shortly"})


@app.exception_handler(JobQueueError)
def bad_request(error: JobQueueError) -> Response[str]:
    return _json(400, {"error": str(error)})


@app.exception_handler(BadRequestError)
def bad_request_error(error: BadRequestError) -> Response[str]:
    return _json(400, {"error": error.msg})


@app.not_found
def no_route(error: Exception) -> Response[str]:
    return _json(404, {"error": "no such endpoint"})


# -- authentication -----------------------------------------------------------


def expected_token() -> str | None:
    return secret_or_env("API_TOKEN_SECRET_ARN", "API_TOKEN", required=False)


def authorize(event: dict[str, Any]) -> dict[str, Any] | None:
    """None if the request may proceed, else the 401/403 response to send."""
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    if authorizer.get("iam"):
        return None  # API Gateway verified the caller's SigV4 signature
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    supplied = headers.get("authorization", "")
    if not supplied.startswith("Bearer ") or not supplied[7:].strip():
        return _denial(401, "authentication required: send 'Authorization: Bearer <token>' or sign with IAM")
    token = expected_token()
    if token is None:
        logger.error("API token is not configured; refusing the request")
        return _denial(401, "authentication is not configured on this API")
    if not hmac.compare_digest(supplied[7:].strip().encode(), token.encode()):
        return _denial(403, "invalid token")
    return None


def _denial(status: int, message: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", "WWW-Authenticate": "Bearer"},
        "body": json.dumps({"error": message}),
        "isBase64Encoded": False,
    }


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    path = APIGatewayProxyEventV2(event).path  # without the stage's prefix, as the resolver sees it
    if dashboard.is_dashboard(path):
        # Pages for browsers: the dashboard signs people in with the same token (or accepts IAM/bearer).
        return dashboard.handle(event, context, path, authorize, expected_token)
    denial = authorize(event)
    if denial is not None:
        return denial
    return app.resolve(event, context)
