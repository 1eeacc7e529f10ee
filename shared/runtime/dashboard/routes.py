"""The dashboard's HTTP side: authentication, pages, and the retry/cancel/resume forms.

Served by the API function under /dashboard (API Gateway forwards the path
without its own authorizer: a browser cannot sign requests with IAM). Every
page needs one of: a bearer token header, an IAM-authorized request, or the
session cookie that signing in with the API token sets (runtime.dashboard.session).
Only the sign-in page and the static files are served without credentials.
"""

from __future__ import annotations

import mimetypes
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.shared.cookies import Cookie, SameSite

from jobqueue import DatabaseUnavailableError, Job, JobQueueError, JobState, PolicyConflictError, Queue
from jobqueue.options import job_id, queue_name
from runtime import bootstrap
from runtime.dashboard import render, session, views
from runtime.observability import logger

PREFIX = "/dashboard"
STATIC = Path(__file__).parent / "static"
app = APIGatewayHttpResolver()

# No inline script or style, nothing from other origins, no framing.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
ACTIONS = {
    "retry": ("failed", "retried"),
    "cancel": ("created", "retry", "active"),
    "resume": ("cancelled",),
}
DONE = {
    "retry": "Job {id} is queued again with a fresh set of attempts.",
    "cancel": "Job {id} is cancelled.",
    "resume": "Job {id} is queued again.",
}


def is_dashboard(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def _base(event: dict[str, Any]) -> str:
    """The URL prefix of the API stage ("" for $default), for links and redirects."""
    stage = (event.get("requestContext") or {}).get("stage") or "$default"
    return "" if stage == "$default" else f"/{stage}"


def _headers(event: dict[str, Any]) -> dict[str, str]:
    return {k.lower(): v for k, v in (event.get("headers") or {}).items()}


def _cookies(event: dict[str, Any]) -> dict[str, str]:
    # API Gateway (payload v2) moves Cookie headers into event["cookies"].
    raw = list(event.get("cookies") or [])
    header = _headers(event).get("cookie")
    if header:
        raw.append(header)
    jar: SimpleCookie = SimpleCookie()
    for item in raw:
        try:
            jar.load(item)
        except Exception:  # a malformed cookie from elsewhere on the domain is ignored, not fatal
            continue
    return {key: morsel.value for key, morsel in jar.items()}


def _is_https(event: dict[str, Any]) -> bool:
    headers = _headers(event)
    default = "https" if (event.get("requestContext") or {}).get("domainName") else "http"
    return bool(headers.get("x-forwarded-proto", default) == "https")


class Request:
    """What a page needs to know about the request it answers."""

    def __init__(self, event: dict[str, Any], token: str | None, cookie: str | None) -> None:
        self.event = event
        self.base = _base(event)
        self.token = token
        self.cookie = cookie  # set when a session cookie authenticated the request

    @property
    def csrf(self) -> str:
        return session.csrf_token(self.cookie, self.token) if self.cookie and self.token else ""

    def url(self, path: str = "", **query: Any) -> str:
        params = {k: v for k, v in query.items() if v not in (None, "")}
        return f"{self.base}{PREFIX}{path}" + (f"?{urlencode(params)}" if params else "")


_request: Request | None = None


def current() -> Request:
    assert _request is not None, "dashboard routes run inside handle()"
    return _request


def queue() -> Queue:
    return bootstrap.ready()


def _html(status: int, body: str) -> Response[str]:
    return Response(
        status_code=status,
        content_type="text/html; charset=utf-8",
        body=body,
        headers={**SECURITY_HEADERS, "Cache-Control": "no-store"},
    )


def _redirect(location: str, cookies: list[Cookie] | None = None) -> Response[str]:
    return Response(
        status_code=303, headers={"Location": location, "Cache-Control": "no-store"}, body="", cookies=cookies
    )


def page(template: str, status: int = 200, **context: Any) -> Response[str]:
    request = current()
    context.setdefault("notice", _notice(request.event))
    return _html(status, render.page(template, request=request, now=datetime.now(UTC), **context))


def _notice(event: dict[str, Any]) -> str:
    params = event.get("queryStringParameters") or {}
    action, done_id = params.get("done"), params.get("job", "")
    if action in DONE:
        return DONE[action].format(id=done_id[:36])
    return ""


def _form(event: dict[str, Any]) -> dict[str, str]:
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

    body = APIGatewayProxyEventV2(event).decoded_body or ""
    return dict(parse_qsl(body, keep_blank_values=True))


# -- pages ---------------------------------------------------------------------


@app.get(PREFIX)
def overview() -> Response[str]:
    return page("overview.html", view=views.overview(queue()))


@app.get(PREFIX + "/failed")
def failed() -> Response[str]:
    params = app.current_event.query_string_parameters or {}
    name = params.get("queue") or None
    if name is not None:
        name = queue_name(name)
    q = queue()
    infos = q.get_queues()
    failed_jobs, retrying = views.failing(q, infos, name)
    return page(
        "failed.html",
        failed=failed_jobs,
        retrying=retrying,
        queue_name=name,
        dead_letters=views.dead_letter_queues(q, infos),
    )


@app.get(PREFIX + "/queue")
def queue_page() -> Response[str]:
    params = app.current_event.query_string_parameters or {}
    name = queue_name(params.get("name", ""))
    state = params.get("state") or None
    if state is not None and state not in JobState.__members__.values():
        return page("error.html", 400, message=f"unknown job state {state!r}")
    q = queue()
    info = q.get_queue(name)
    if info is None:
        return page("error.html", 404, message=f"no queue named {name!r}")
    stats = next((s for s in q.get_queue_stats() if s.name == name), None)
    jobs = q.find_jobs(name, state=state, limit=100)
    return page("queue.html", info=info, stats=stats, jobs=jobs, state=state)


@app.get(PREFIX + "/jobs/<id>")
def job_page(id: str) -> Response[str]:
    job = queue().get_job(job_id(id))
    if job is None:
        return page("error.html", 404, message=f"no job {id}")
    return page("job.html", job=job)


@app.get(PREFIX + "/schedules")
def schedules_page() -> Response[str]:
    return page("schedules.html", schedules=views.schedules(queue()))


def _checked(request: Request, form: dict[str, str], id: str, action: str) -> tuple[Queue, Job] | Response[str]:
    """The queue and job an action applies to, or the page that says why it cannot."""
    if action not in ACTIONS:
        return page("error.html", 404, message=f"unknown action {action!r}")
    if request.cookie and not session.csrf_valid(form.get("csrf"), request.cookie, request.token or ""):
        return page("error.html", 403, message="the form has expired; reload the page and try again")
    q = queue()
    job = q.get_job(job_id(id))
    if job is None:
        return page("error.html", 404, message=f"no job {id}")
    if job.state not in ACTIONS[action]:
        allowed = " or ".join(ACTIONS[action])
        return page("error.html", 409, message=f"job {id} is {job.state}; to {action} it, it must be {allowed}")
    return q, job


@app.post(PREFIX + "/jobs/<id>/<action>")
def act(id: str, action: str) -> Response[str]:
    request = current()
    form = _form(request.event)
    checked = _checked(request, form, id, action)
    if isinstance(checked, Response):
        return checked
    q, job = checked
    operation = {"retry": q.retry, "cancel": q.cancel, "resume": q.resume}[action]
    try:
        changed = operation(job.name, [job.id])
    except PolicyConflictError as exc:
        return page("error.html", 409, message=str(exc))
    if not changed:
        return page("error.html", 409, message=f"job {id} changed meanwhile; reload the page")
    logger.info("dashboard action", extra={"action": action, "job_id": job.id, "queue": job.name})
    back = form.get("next", "")
    # Only paths of this dashboard: an open redirect would let a link send people anywhere.
    if not back.startswith(request.base + PREFIX) or "//" in back or "\\" in back:
        back = request.url(f"/jobs/{job.id}")
    separator = "&" if "?" in back else "?"
    return _redirect(f"{back}{separator}done={action}&job={quote(job.id)}")


@app.get(PREFIX + "/login")
def login_form() -> Response[str]:
    return page("login.html")


@app.post(PREFIX + "/login")
def login() -> Response[str]:
    request = current()
    supplied = _form(request.event).get("token", "").strip()
    if not request.token:
        return page("login.html", 401, error="authentication is not configured on this API")
    if not supplied or not session.same(supplied, request.token):
        logger.warning("dashboard sign-in refused")
        return page("login.html", 403, error="that token is not valid")
    cookie = Cookie(
        name=session.COOKIE,
        value=session.issue(request.token),
        path=request.base + PREFIX,
        secure=_is_https(request.event),
        http_only=True,
        same_site=SameSite.STRICT_MODE,
        max_age=session.LIFETIME_S,
    )
    return _redirect(request.url(), cookies=[cookie])


@app.post(PREFIX + "/logout")
def logout() -> Response[str]:
    request = current()
    cookie = Cookie(
        name=session.COOKIE,
        value="",
        path=request.base + PREFIX,
        http_only=True,
        max_age=0,
        secure=_is_https(request.event),
    )
    return _redirect(request.url("/login"), cookies=[cookie])


@app.get(PREFIX + "/static/<name>")
def static(name: str) -> Response[str]:
    path = STATIC / name
    # Only files of the static folder itself; the name cannot climb out of it.
    if "/" in name or name.startswith(".") or not path.is_file():
        return Response(status_code=404, content_type="text/plain", body="not found")
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return Response(
        status_code=200,
        content_type=f"{content_type}; charset=utf-8",
        body=path.read_text(),
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )


@app.not_found
def no_page(error: Exception) -> Response[str]:
    return page("error.html", 404, message="no such page")


@app.exception_handler(DatabaseUnavailableError)
def database_down(error: DatabaseUnavailableError) -> Response[str]:
    logger.error("database unavailable", extra={"error": str(error)})
    return page("error.html", 503, message="the job database is unavailable; try again shortly")


@app.exception_handler(JobQueueError)
def bad_input(error: JobQueueError) -> Response[str]:
    return page("error.html", 400, message=str(error))


# -- entry -----------------------------------------------------------------------

OPEN = {PREFIX + "/login"}


def handle(event: dict[str, Any], context: Any, path: str, authorize: Any, expected_token: Any) -> dict[str, Any]:
    """Serve a dashboard request. `authorize` is the API's header check (IAM or bearer)."""
    global _request
    token = expected_token()
    cookie = _cookies(event).get(session.COOKIE)
    signed_in = bool(token) and session.valid(cookie, token)
    headers = _headers(event)
    open_path = path in OPEN or path.startswith(PREFIX + "/static/")
    if not open_path and not signed_in:
        if headers.get("authorization") or (event.get("requestContext") or {}).get("authorizer", {}).get("iam"):
            denial = authorize(event)
            if denial is not None:
                return denial  # type: ignore[no-any-return]
        else:
            method = (event.get("requestContext") or {}).get("http", {}).get("method", "GET")
            if method == "GET" and "text/html" in headers.get("accept", ""):
                # A person with a browser: send them to sign in.
                return {
                    "statusCode": 303,
                    "headers": {"Location": f"{_base(event)}{PREFIX}/login", "Cache-Control": "no-store"},
                    "body": "",
                }
            return {
                "statusCode": 401,
                "headers": {"Content-Type": "text/plain; charset=utf-8", "WWW-Authenticate": "Bearer"},
                "body": "authentication required: sign in at /dashboard/login or send 'Authorization: Bearer <token>'",
            }
        cookie = None  # authenticated by the header: no CSRF token needed
    _request = Request(event, token, cookie if signed_in else None)
    try:
        return app.resolve(event, context)
    finally:
        _request = None
