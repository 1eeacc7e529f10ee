"""The HTTP app's first middleware: requests no route could handle are answered here, with a 4xx.

Before authentication and routing: a body over MAX_BODY_BYTES is 413; a body that is not valid
UTF-8, or a NUL character or a lone surrogate anywhere a route may read (the path, the query,
headers, cookies, the body, a form's decoded fields) is 400. Postgres cannot store either
character, and a driver that meets one raises an error no route expects: refused once, here,
they never reach a route or the database.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Final
from urllib.parse import parse_qsl, unquote

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

from runtime import api

# The largest request body taken (API Gateway's own limit is 10 MB): a bulk form of a few
# thousand job ids is a few hundred KB.
MAX_BODY_BYTES: Final = 1 << 20


def _refusal(status: int, message: str) -> Response[str]:
    return api.json_response(status, {"error": message})


def _unstorable(text: str) -> str | None:
    """Why `text` cannot be taken (a NUL, a lone surrogate), or None."""
    if "\x00" in text:
        return "a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "a lone surrogate (not valid Unicode)"
    return None


def _body(event: dict[str, Any]) -> str | Response[str]:
    raw = event.get("body") or ""
    if not isinstance(raw, str):
        return _refusal(400, "the request body is not text")
    if event.get("isBase64Encoded"):
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            return _refusal(400, "the request body is not valid base64")
    else:
        data = raw.encode("utf-8", "surrogatepass")
    if len(data) > MAX_BODY_BYTES:
        return _refusal(413, f"the request body is over {MAX_BODY_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return _refusal(400, "the request body is not UTF-8")


def check(event: dict[str, Any]) -> Response[str] | None:
    """The refusal of a request no route could handle, or None."""
    body = _body(event)
    if isinstance(body, Response):
        return body
    headers = event.get("headers") or {}
    texts: list[tuple[str, str]] = [
        ("the path", unquote(str(event.get("rawPath") or ""), errors="strict")),
        ("the query string", unquote(str(event.get("rawQueryString") or ""))),
        ("the body", body),
    ]
    texts += [(f"query parameter {k!r}", f"{k}{v}") for k, v in (event.get("queryStringParameters") or {}).items()]
    texts += [("a header", f"{k}{v}") for k, v in headers.items()]
    texts += [("a cookie", str(c)) for c in event.get("cookies") or []]
    content_type = str(headers.get("content-type", "")).lower()
    if content_type.startswith("application/x-www-form-urlencoded"):
        try:
            fields = parse_qsl(body, keep_blank_values=True, errors="strict")
        except (UnicodeDecodeError, ValueError):
            return _refusal(400, "a form field is not valid UTF-8")
        texts += [("a form field", f"{k}{v}") for k, v in fields]
    for where, text in texts:
        reason = _unstorable(text)
        if reason:
            return _refusal(400, f"{where} contains {reason}")
    return None


def refuse_malformed(app: Any, next_middleware: NextMiddleware) -> Response[Any]:
    """Middleware: refuse what no route could handle, before anything else looks at the request."""
    try:
        refusal = check(app.current_event.raw_event)
    except UnicodeDecodeError:
        refusal = _refusal(400, "the path is not valid UTF-8")
    return refusal if refusal is not None else next_middleware(app)
