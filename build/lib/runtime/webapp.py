"""The HTTP application: the JSON API and the dashboard, one resolver behind API Gateway.

Served by the API function (HTTP API, payload v2). One middleware
authenticates every request before routing (runtime.auth); the API
(runtime.api, /api/jobs) and the dashboard (runtime.dashboard.routes,
/dashboard) are Routers included here; the library's errors become statuses
here, once, answered as JSON for the API and as a page for the dashboard.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import BadRequestError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError, ResponseValidationError

from jobqueue import (
    ConfigurationError,
    DatabaseUnavailableError,
    JobQueueError,
    PolicyConflictError,
    UnknownQueueError,
)
from runtime import api, auth, bootstrap, guard, job_actions, openapi
from runtime.dashboard import routes as dashboard
from runtime.observability import logger

# A request's database calls end within this (API Gateway's HTTP API gives an integration 30 s),
# and this long before the invocation's end: time to answer 503.
REQUEST_DATABASE_S = 25.0
RESPONSE_MARGIN_MS = 1_000


def json_body(text: str) -> Any:
    """A request's body as JSON (the API's validation reads it through this); malformed is a 400."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequestError(f"the body is not valid JSON: {exc.msg} at position {exc.pos}") from None
    except RecursionError:
        raise BadRequestError("the body is nested too deeply") from None


app = APIGatewayHttpResolver(json_body_deserializer=json_body)
app.use(middlewares=[guard.refuse_malformed, auth.authenticate])
app.include_router(api.router)
app.include_router(dashboard.router)


def error(status: int, message: str) -> Response[str]:
    """An error answered the way the part of the app that was asked speaks: a page or JSON."""
    if auth.is_dashboard(app.current_event.path) and "identity" in app.context:
        return dashboard.error_page(status, message)
    return api.json_response(status, {"error": message})


@app.exception_handler(job_actions.ActionRefused)
def action_refused(exc: job_actions.ActionRefused) -> Response[str]:
    if isinstance(exc, job_actions.RefusedByPolicy):
        return api.json_response(exc.status, {"id": None, "error": str(exc)})
    return error(exc.status, str(exc))


@app.exception_handler(RequestValidationError)
def invalid_request(exc: RequestValidationError) -> Response[str]:
    return error(400, openapi.describe_errors(exc.errors()))


@app.exception_handler(ResponseValidationError)
def invalid_answer(exc: ResponseValidationError) -> Response[str]:
    # The answer does not match its declared model: the service's bug, never the client's.
    logger.error("an answer does not match its model", extra={"errors": openapi.describe_errors(exc.errors())})
    return error(500, "the service produced an invalid answer (its log says which)")


@app.exception_handler(UnknownQueueError)
def unknown_queue(exc: UnknownQueueError) -> Response[str]:
    return error(404, str(exc))


@app.exception_handler(PolicyConflictError)
def policy_conflict(exc: PolicyConflictError) -> Response[str]:
    return error(409, str(exc))


@app.exception_handler(ConfigurationError)
def misconfigured(exc: ConfigurationError) -> Response[str]:
    # The deployment's fault, not the request's: a 500, and a log line that says what to fix.
    logger.error("the API is misconfigured", extra={"error": str(exc)})
    return error(500, "the service is misconfigured (its log says how)")


@app.exception_handler(DatabaseUnavailableError)
def database_down(exc: DatabaseUnavailableError) -> Response[str]:
    logger.error("database unavailable", extra={"error": str(exc)})
    return error(503, "the job database is unavailable; try again shortly")


@app.exception_handler(JobQueueError)
def bad_input(exc: JobQueueError) -> Response[str]:
    return error(400, str(exc))


@app.exception_handler(BadRequestError)
def bad_request(exc: BadRequestError) -> Response[str]:
    return error(400, str(exc.msg))


@app.not_found
def no_route(exc: Exception) -> Response[str]:
    # Powertools finds no route for a method a path does not take either: that is a 405.
    allowed = allowed_methods(app.current_event.path)
    if allowed:
        response = error(405, f"{app.current_event.http_method} is not allowed here; use {', '.join(allowed)}")
        response.headers["Allow"] = ", ".join(allowed)
        return response
    return error(404, "no such page" if auth.is_dashboard(app.current_event.path) else "no such endpoint")


def allowed_methods(path: str) -> list[str]:
    """The methods some route takes at `path`."""
    routes = [*app._static_routes, *app._dynamic_routes]
    return sorted({route.method for route in routes if route.rule.match(path)})


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """One request. Its database calls end in time for a 503 to reach the client before API
    Gateway gives up on the integration (30 s) or the invocation ends, whichever comes first."""
    seconds = min(REQUEST_DATABASE_S, bootstrap.invocation_deadline_s(context, RESPONSE_MARGIN_MS))
    with bootstrap.calls_within(seconds):
        return app.resolve(event, context)
