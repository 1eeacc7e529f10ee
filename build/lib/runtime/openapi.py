"""The JSON API's validation and its OpenAPI document, both from Powertools' event handler.

Validation runs as route middleware (VALIDATED), not as the resolver's
`enable_validation`: Powertools puts its validation before the app's own
middleware, which would answer an unauthenticated request with the API's schema
errors instead of a 401, and it would load the schema machinery at import, in
every cold start. Here it loads at the first API request, and runs after the
guard and authentication (runtime.guard, runtime.auth).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.exceptions import BadRequestError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

TITLE = "pgjobs API"
DESCRIPTION = (
    "Health, statistics and operations on the jobs. Every request is authenticated: signed with IAM "
    "(SigV4, through API Gateway) or with `Authorization: Bearer <token>`."
)


@cache
def _validators() -> tuple[Any, Any]:
    from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
        OpenAPIRequestValidationMiddleware,
        OpenAPIResponseValidationMiddleware,
    )

    # An answer that fails its model is the service's bug: a ResponseValidationError (runtime.webapp: 500).
    request = OpenAPIRequestValidationMiddleware()  # type: ignore[no-untyped-call]
    return request, OpenAPIResponseValidationMiddleware(has_response_validation_error=True)


def validate_request(app: Any, next_middleware: NextMiddleware) -> Response[Any]:
    """Parameters and body parsed into the route's declared types, or a RequestValidationError (400).
    A query parameter the route does not take is refused too: a misspelt `limt=5` is not ignored."""
    route = app.context["_route"]
    known = {param.alias for param in route.dependant.query_params}
    unknown = sorted(set(app.current_event.query_string_parameters or {}) - known)
    if unknown:
        takes = f"; this route takes {', '.join(sorted(known))}" if known else "; this route takes none"
        raise BadRequestError(f"unknown query parameter(s) {', '.join(map(repr, unknown))}{takes}")
    return _validators()[0].handler(app, next_middleware)  # type: ignore[no-any-return]


def validate_answer(app: Any, next_middleware: NextMiddleware) -> Response[Any]:
    """The route's answer checked against its declared model, then serialised."""
    return _validators()[1].handler(app, next_middleware)  # type: ignore[no-any-return]


VALIDATED = [validate_request, validate_answer]


def describe_errors(errors: Any) -> str:
    """Powertools' (pydantic's) validation errors as one readable line: where, and what is wrong."""
    parts = []
    for error in errors:
        where = ".".join(str(part) for part in error.get("loc", ()))
        message = error.get("msg", "invalid")
        if error.get("type") == "json_invalid":
            message = f"the body is not valid JSON: {error.get('ctx', {}).get('error', '')}".rstrip(": ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts) or "the request is invalid"


@cache
def document(base: str = "") -> str:
    """The OpenAPI 3.1 document of /api/jobs as JSON, generated once per container from the API's routes;
    `base` is the stage's path prefix ("" for $default), where the API's paths are served."""
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer, Server

    from runtime import api

    # A resolver of the API's routes alone (not the dashboard's pages); without
    # enable_validation it does not document a 422: a malformed request is a 400 here.
    resolver = APIGatewayHttpResolver()
    # Each route registered again, not include_router: that would hand the Router (its
    # current event) to this resolver.
    for route, function in api.router._routes.items():
        resolver.route(*route)(function)
    described = json.loads(
        resolver.get_openapi_json_schema(
            title=TITLE,
            version=_version(),
            description=DESCRIPTION,
            servers=[Server(url=base or "/")],
            security_schemes={"bearer": HTTPBearer(description="the API token (Secrets Manager)")},
            security=[{"bearer": []}],
        )
    )
    # Powertools adds its validation errors' schemas; this API answers a malformed request with Error (400).
    schemas = described["components"]["schemas"]
    for unused in ("HTTPValidationError", "ResponseValidationError", "ValidationError"):  # referrers first
        others = {name: schema for name, schema in schemas.items() if name != unused}
        if f'"#/components/schemas/{unused}"' not in json.dumps([described["paths"], others]):
            schemas.pop(unused, None)
    return json.dumps(described, separators=(",", ":"))


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pgjobs")
    except PackageNotFoundError:  # run from a checkout without installing
        return "0.0.0"
