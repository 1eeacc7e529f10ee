"""No request a client can send yields a 5xx from the HTTP app.

Every route (the app's own route table) gets nasty values in its path parameters, query
parameters, form fields, headers and body: a NUL character, a lone surrogate, invalid UTF-8,
a 1 MB string; a body over the size limit gets 413; a method a path does not take gets 405
with the ones it does in Allow. Requests go through the API function with a valid token (the
dashboard with a session cookie, CSRF token included), so each reaches its route.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from collections.abc import Callable
from types import ModuleType
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from runtime import sessions
from tests.runtime.conftest import API_TOKEN, FakeContext, event

pytestmark = pytest.mark.slow

MEGABYTE = "x" * (1 << 20)
NASTY: dict[str, str] = {
    "nul": "a\x00b",
    "surrogate": "a\ud800b",
    "megabyte": MEGABYTE,
    "non-ascii": "ünïcødé ☃ 𝄞",
    "negative": "-1",
    "huge number": "9" * 40,
}
FIELDS = ("name", "queue", "state", "limit", "q", "id", "ids", "token", "csrf", "action", "data", "options")


@pytest.fixture(scope="module")
def routes() -> list[tuple[str, str]]:
    from runtime.webapp import app

    return [(route.method, route.path) for route in app._static_routes + app._dynamic_routes]


@pytest.fixture
def call(load_function: Callable[[str], ModuleType]) -> Callable[..., dict[str, Any]]:
    module = load_function("api")

    def send(
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: str | bytes | None = None,
        form: bool = False,
        cookie: str | None = None,
    ) -> dict[str, Any]:
        request = copy.deepcopy(event("api-health.json"))
        request["rawPath"] = request["requestContext"]["http"]["path"] = path
        request["requestContext"]["http"]["method"] = method
        request["headers"]["authorization"] = f"Bearer {API_TOKEN}"
        # A cookie carries its expiry second: a form's CSRF token must be signed over the very cookie sent.
        request["cookies"] = [f"{sessions.COOKIE}={cookie or sessions.issue(API_TOKEN)}"]
        request["headers"].update(headers or {})
        if query is not None:
            request["queryStringParameters"] = query
            request["rawQueryString"] = urlencode(query, errors="surrogatepass")
        if form:
            request["headers"]["content-type"] = "application/x-www-form-urlencoded"
        if isinstance(body, bytes):
            request["body"], request["isBase64Encoded"] = base64.b64encode(body).decode(), True
        elif body is not None:
            request["body"] = body
        return module.handler(request, FakeContext(function_name="jobs-api"))

    return send


def concrete(path: str, value: str) -> str:
    """The route's path with every parameter set to `value` (percent-encoded as a client sends it)."""
    return re.sub(r"<\w+>", quote(value, safe="", errors="surrogatepass") if value else "x", path)


@pytest.mark.parametrize("kind", sorted(NASTY))
def test_nasty_values_anywhere_never_get_a_5xx(
    call: Callable[..., dict[str, Any]], routes: list[tuple[str, str]], kind: str
) -> None:
    value = NASTY[kind]
    for method, path in routes:
        fields = dict.fromkeys(FIELDS, value)
        attempts = {
            "path": call(method, concrete(path, value)),
            "query": call(method, concrete(path, "x"), query=fields),
            "header": call(method, concrete(path, "x"), headers={"x-anything": value, "accept": value}),
        }
        if method == "POST":
            attempts["form"] = call(
                method, concrete(path, "x"), body=urlencode(fields, errors="surrogatepass"), form=True
            )
            attempts["json"] = call(method, concrete(path, "x"), body='{"queue": "' + value + '", "data": 1}')
        for where, response in attempts.items():
            assert response["statusCode"] < 500, (
                kind,
                method,
                path,
                where,
                response["statusCode"],
                response.get("body", "")[:300],
            )


def test_invalid_utf8_and_malformed_bodies_get_a_4xx(
    call: Callable[..., dict[str, Any]], routes: list[tuple[str, str]]
) -> None:
    for method, path in routes:
        if method != "POST":
            continue
        for body in (b"\xff\xfe\x00junk", b'{"queue": "\xc3\x28"}', b"queue=%ff%fe&data=%00"):
            response = call(method, concrete(path, "x"), body=body, form=body.startswith(b"queue="))
            assert 400 <= response["statusCode"] < 500 or response["statusCode"] in (200, 303), (
                method,
                path,
                body,
                response["statusCode"],
                response.get("body", "")[:300],
            )


def test_a_body_over_the_limit_gets_413(call: Callable[..., dict[str, Any]]) -> None:
    response = call("POST", "/api/jobs", body='{"queue": "send-email", "data": "' + "x" * (2 << 20) + '"}')
    assert response["statusCode"] == 413


def test_a_method_a_path_does_not_take_gets_405_with_allow(call: Callable[..., dict[str, Any]]) -> None:
    response = call("DELETE", "/api/jobs/health")
    assert response["statusCode"] == 405 and response["headers"]["Allow"] == "GET"
    response = call("GET", "/api/jobs/queues/send-email/pause")
    assert response["statusCode"] == 405 and response["headers"]["Allow"] == "POST"
    assert call("GET", "/api/jobs/no/such/thing/here")["statusCode"] == 404


def test_a_bulk_form_with_huge_filters_redirects_with_a_short_location(call: Callable[..., dict[str, Any]]) -> None:
    call("GET", "/api/jobs/health")  # migrate and register the platform's queues
    cookie = sessions.issue(API_TOKEN)
    form = {
        "name": "send-email",
        "key": "k" * 300_000,
        "data": json.dumps({"note": "d" * 300_000}),
        "csrf": sessions.csrf_token(cookie, API_TOKEN),
    }
    response = call("POST", "/dashboard/queue/bulk/retry", body=urlencode(form), form=True, cookie=cookie)
    assert response["statusCode"] == 303, response.get("body", "")[-300:]
    location = response["headers"]["Location"]
    assert len(location) <= 2048 and "done=bulk" in location
