"""Who may call the HTTP app: IAM, a bearer token, or the dashboard's session cookie.

One middleware of the HTTP app (runtime.webapp) decides for every request
before any route runs, so a refused request never reaches the database:

- /api/jobs/*: a request API Gateway authorized with IAM (SigV4), or
  `Authorization: Bearer <token>`. The token is read from Secrets Manager
  (API_TOKEN_SECRET_ARN) or, locally, the environment (API_TOKEN); with neither
  configured every request is refused: the API never runs open by accident.
- /dashboard/*: the same, or the session cookie that signing in with the token
  sets (runtime.sessions). A browser without credentials is sent to
  the sign-in page. The sign-in page and the static files are open.

The outcome, an `Identity`, is in the app's context for the routes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, Literal

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from runtime import sessions as session
from runtime.observability import logger
from runtime.secrets import secret_or_env

DASHBOARD: Final = "/dashboard"
OPEN_PATHS: Final = frozenset({DASHBOARD + "/login"})
OPEN_PREFIXES: Final = (DASHBOARD + "/static/",)


@dataclass(frozen=True)
class Identity:
    """How the request was authenticated, and what the dashboard needs of it."""

    via: Literal["iam", "bearer", "session", "none"]
    token: str | None = None  # the configured API token (dashboard: sessions and CSRF)
    session: str | None = None  # the session cookie, when it authenticated the request (CSRF applies)


def expected_token() -> str | None:
    return secret_or_env("API_TOKEN_SECRET_ARN", "API_TOKEN", required=False)


def is_dashboard(path: str) -> bool:
    return path == DASHBOARD or path.startswith(DASHBOARD + "/")


def base_path(event: APIGatewayProxyEventV2) -> str:
    """The URL prefix of the API stage ("" for $default), for links and redirects."""
    stage = event.request_context.stage or "$default"
    return "" if stage == "$default" else f"/{stage}"


def _signed_by_iam(event: APIGatewayProxyEventV2) -> bool:
    authorizer = (event.raw_event.get("requestContext") or {}).get("authorizer") or {}
    return bool(authorizer.get("iam"))  # API Gateway verified the caller's SigV4 signature


def _denial(message: str, challenge: str = "Bearer") -> Response[str]:
    """401, as RFC 6750 has it for a missing or wrong token (403 is for an identity that may not act)."""
    return Response(
        status_code=401,
        content_type=content_types.APPLICATION_JSON,
        headers={"WWW-Authenticate": challenge},
        body=json.dumps({"error": message}),
    )


def check_header(event: APIGatewayProxyEventV2, token: str | None) -> Identity | Response[str]:
    """IAM or a bearer token: the identity, or the 401 to send."""
    if _signed_by_iam(event):
        return Identity("iam", token)
    supplied = event.headers.get("authorization", "")
    if not supplied.startswith("Bearer ") or not supplied[7:].strip():
        return _denial("authentication required: send 'Authorization: Bearer <token>' or sign with IAM")
    if token is None:
        logger.error("API token is not configured; refusing the request")
        return _denial("authentication is not configured on this API")
    if not session.same(supplied[7:].strip(), token):
        return _denial("invalid token", 'Bearer error="invalid_token"')
    return Identity("bearer", token)


def _cookie(event: APIGatewayProxyEventV2) -> str | None:
    # API Gateway (payload v2) moves Cookie headers into event["cookies"]; a local server may not.
    raw = [*event.cookies]
    header = event.headers.get("cookie")
    if header:
        raw.append(header)
    return session.read_cookie(raw)


def identify(event: APIGatewayProxyEventV2) -> Identity | Response[str]:
    path = event.path
    if not is_dashboard(path):
        has_header = bool(event.headers.get("authorization"))
        return check_header(event, expected_token() if has_header and not _signed_by_iam(event) else None)
    token = expected_token()
    cookie = _cookie(event)
    if token and session.valid(cookie, token):
        return Identity("session", token, cookie)
    if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
        return Identity("none", token)
    if event.headers.get("authorization") or _signed_by_iam(event):
        return check_header(event, token)
    if event.http_method == "GET" and "text/html" in event.headers.get("accept", ""):
        # A person with a browser: send them to sign in.
        return Response(
            status_code=303,
            headers={"Location": f"{base_path(event)}{DASHBOARD}/login", "Cache-Control": "no-store"},
            body="",
        )
    return Response(
        status_code=401,
        content_type="text/plain; charset=utf-8",
        headers={"WWW-Authenticate": "Bearer"},
        body="authentication required: sign in at /dashboard/login or send 'Authorization: Bearer <token>'",
    )


def authenticate(app: Any, next_middleware: NextMiddleware) -> Response[Any]:
    """The HTTP app's middleware: refuse, or record the Identity and go on to the route."""
    outcome = identify(app.current_event)
    if isinstance(outcome, Response):
        return outcome
    app.append_context(identity=outcome)
    return next_middleware(app)


def identity(app: Any) -> Identity:
    found = app.context.get("identity")
    assert isinstance(found, Identity), "routes run behind the authenticate middleware"
    return found
