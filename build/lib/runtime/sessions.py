"""Browser sessions for the dashboard, derived from the API token.

A browser cannot send the API's bearer token on a page load, so signing in
with the token sets a cookie instead: `<expiry>.<HMAC-SHA256(token, expiry)>`.
The cookie holds no secret, cannot be forged without the token, expires on
its own, and every session ends when the token is rotated. Forms carry a CSRF
token derived from the cookie, checked on every POST that a cookie
authenticated (a request carrying the bearer header cannot be forged by
another site).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable
from http.cookies import CookieError, SimpleCookie

COOKIE = "jobs_session"
LIFETIME_S = 12 * 3600


def _sign(token: str, message: str) -> str:
    return hmac.new(token.encode(), message.encode(), hashlib.sha256).hexdigest()


def issue(token: str, now: float | None = None) -> str:
    expires = int((time.time() if now is None else now) + LIFETIME_S)
    return f"{expires}.{_sign(token, f'session:{expires}')}"


def valid(cookie: str | None, token: str, now: float | None = None) -> bool:
    if not cookie or "." not in cookie:
        return False
    expires, _, signature = cookie.partition(".")
    if not (expires.isascii() and expires.isdigit() and len(expires) <= 12) or int(expires) <= (
        time.time() if now is None else now
    ):
        return False
    return hmac.compare_digest(_bytes(signature), _bytes(_sign(token, f"session:{expires}")))


def csrf_token(cookie: str, token: str) -> str:
    return _sign(token, f"csrf:{cookie}")


def csrf_valid(supplied: str | None, cookie: str, token: str) -> bool:
    return bool(supplied) and hmac.compare_digest(_bytes(str(supplied)), _bytes(csrf_token(cookie, token)))


def same(supplied: str, expected: str) -> bool:
    """Constant-time comparison of a supplied token with the expected one."""
    return hmac.compare_digest(_bytes(supplied), _bytes(expected))


def _bytes(text: str) -> bytes:
    """Text compared in constant time as bytes (compare_digest refuses non-ASCII str), whatever it holds."""
    return text.encode("utf-8", "surrogatepass")


def read_cookie(headers: Iterable[str]) -> str | None:
    """The session cookie among Cookie header values ("a=1; b=2"), if there is one."""
    jar: SimpleCookie = SimpleCookie()
    for item in headers:
        try:
            jar.load(item)
        except CookieError:  # a malformed cookie from elsewhere on the domain is ignored, not fatal
            continue
    morsel = jar.get(COOKIE)
    return None if morsel is None else morsel.value
