"""The dashboard's pages and forms: a Router of the HTTP app (runtime.webapp), under /dashboard.

API Gateway forwards these paths without its IAM authorizer (a browser cannot
sign requests); the app's middleware (runtime.auth) has authenticated the
request by the time a route runs. Forms posted by a signed-in browser carry
a CSRF token derived from the session cookie.
"""

from __future__ import annotations

import mimetypes
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qsl, quote, urlencode

from aws_lambda_powertools import event_handler
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.shared.cookies import Cookie, SameSite
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from jobqueue import Policy
from jobqueue.inspecting import job_states
from jobqueue.options import job_id, queue_name
from runtime import auth, bootstrap, job_actions, openapi
from runtime import sessions as session
from runtime.dashboard import render, views
from runtime.observability import logger

PREFIX = auth.DASHBOARD
STATIC = Path(__file__).parent / "static"
router = Router()

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


class Request:
    """What a page needs to know about the request it answers."""

    def __init__(self, base: str, identity: auth.Identity, query: dict[str, str]) -> None:
        self.base = base
        self.token = identity.token
        self.cookie = identity.session  # set when a session cookie authenticated the request
        self.query = query

    @property
    def csrf(self) -> str:
        return session.csrf_token(self.cookie, self.token) if self.cookie and self.token else ""

    def url(self, path: str = "", **query: Any) -> str:
        params = {k: v for k, v in query.items() if v not in (None, "")}
        return f"{self.base}{PREFIX}{path}" + (f"?{urlencode(params)}" if params else "")


def event() -> APIGatewayProxyEventV2:
    return cast(APIGatewayProxyEventV2, router.current_event)


def current() -> Request:
    """The request being answered (kept in the app's context, which is cleared after each request)."""
    found = router.context.get("dashboard_request")
    if not isinstance(found, Request):
        found = Request(auth.base_path(event()), auth.identity(router), event().query_string_parameters)
        router.append_context(dashboard_request=found)
    return found


def _html(status: int, body: str) -> Response[str]:
    return Response(
        status_code=status,
        content_type="text/html; charset=utf-8",
        body=body,
        headers={**SECURITY_HEADERS, "Cache-Control": "no-store"},
    )


# A Location longer than this is cut down (API Gateway answers 502 to headers of tens of KB).
MAX_LOCATION_CHARS = 2048
MAX_KEPT_VALUE_CHARS = 200


def _redirect(location: str, cookies: list[Cookie] | None = None) -> Response[str]:
    if len(location) > MAX_LOCATION_CHARS:
        # Long filters (a pasted key or data) made it long: the page comes back without them.
        path, _, query = location.partition("?")
        kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if len(v) <= MAX_KEPT_VALUE_CHARS]
        location = f"{path}?{urlencode(kept)}" if kept else path
    return Response(
        status_code=303, headers={"Location": location, "Cache-Control": "no-store"}, body="", cookies=cookies
    )


def page(template: str, status: int = 200, **context: Any) -> Response[str]:
    request = current()
    context.setdefault("notice", _notice(request.query))
    return _html(status, render.page(template, request=request, now=datetime.now(UTC), **context))


def error_page(status: int, message: str) -> Response[str]:
    return page("error.html", status, message=message)


def _notice(query: dict[str, str]) -> str:
    action, done_id = query.get("done"), query.get("job", "")
    for known, text in job_actions.DONE.items():
        if action == known:
            return text.format(id=done_id[:36])
    if action in ("paused", "resumed"):
        return f"Queue {query.get('name', '')[:100]} is {action}."
    if action == "bulk":
        return f"{query.get('count', '0')[:10]} jobs: {query.get('action', '')[:10]} done."
    if action == "redriven":
        return (
            f"{query.get('count', '0')[:10]} dead letters of {query.get('name', '')[:100]} went back to their queues."
        )
    return ""


FORM_EXPIRED = "the form has expired; reload the page and try again"


def _checked_form() -> dict[str, str] | None:
    """The posted form, or None when a signed-in browser's form lacks its session's CSRF token."""
    request, form = current(), _form()
    if request.cookie and not session.csrf_valid(form.get("csrf"), request.cookie, request.token or ""):
        return None
    return form


def _form() -> dict[str, str]:
    return dict(parse_qsl(event().decoded_body or "", keep_blank_values=True))


# -- pages ---------------------------------------------------------------------


@router.get(PREFIX)
def overview() -> Response[str]:
    return page("overview.html", view=views.overview(bootstrap.ready()))


@router.get(PREFIX + "/failed")
def failed() -> Response[str]:
    name = current().query.get("queue") or None
    q = bootstrap.ready()
    if name is not None:
        name = q.require_queue(name)  # an unknown queue is a 404 that suggests the closest
    infos = q.get_queues()
    failed_jobs, retrying = views.failing(q, infos, name)
    return page(
        "failed.html",
        failed=failed_jobs,
        retrying=retrying,
        queue_name=name,
        dead_letters=views.dead_letter_queues(q, infos),
    )


@router.get(PREFIX + "/queue")
def queue_page() -> Response[str]:
    query = current().query
    name = queue_name(query.get("name", ""))
    state = query.get("state") or None
    if state is not None:
        job_states([state])  # an unknown state is a 400 that names it
    q = bootstrap.ready()
    info = q.get_queue(name)
    if info is None:
        q.require_queue(name)  # a 404 that suggests the closest name
        return error_page(404, f"no queue named {name!r}")
    stats = next((s for s in q.get_queue_stats() if s.name == name), None)
    matching = job_actions.filters(state, query.get("key"), query.get("data"))
    jobs = q.find_jobs(name, limit=100, **matching)
    blocked = q.get_blocked_keys(name) if info.policy is Policy.KEY_STRICT_FIFO else []
    groups = q.active_groups(name, limit=20)
    return page(
        "queue.html",
        info=info,
        window=q.rate_window(name),
        group_windows=q.group_rate_windows(name),
        stats=stats,
        jobs=jobs,
        state=state,
        key=query.get("key", ""),
        data=query.get("data", ""),
        blocked=blocked,
        groups=groups,
    )


@router.post(PREFIX + "/queue/bulk/<action>")
def bulk_action(action: str) -> Response[str]:
    """retry, cancel or delete every job the queue page's filters match (up to 1,000)."""
    request = current()
    form = _checked_form()
    if form is None:
        return error_page(403, FORM_EXPIRED)
    name = queue_name(form.get("name", ""))
    state = form.get("state") or None
    if state is not None:
        job_states([state])
    matching = job_actions.filters(state, form.get("key"), form.get("data"))
    count = job_actions.bulk(bootstrap.ready(), name, action, matching)
    logger.info("dashboard action", extra={"action": f"bulk {action}", "queue": name, "jobs": count})
    back = request.url("/queue", name=name, state=state, key=form.get("key"), data=form.get("data"))
    separator = "&" if "?" in back else "?"
    return _redirect(f"{back}{separator}done=bulk&action={action}&count={count}")


@router.get(PREFIX + "/search")
def search() -> Response[str]:
    """A job by id: its page."""
    text = current().query.get("q", "").strip()
    q = bootstrap.ready()
    job = q.get_job(job_id(text))
    if job is None:
        return error_page(404, q.missing_job(job_id(text)))
    return _redirect(current().url(f"/jobs/{job.id}"))


@router.get(PREFIX + "/jobs/<id>")
def job_page(id: str) -> Response[str]:
    q = bootstrap.ready()
    job = q.get_job(job_id(id))
    if job is None:
        return error_page(404, q.missing_job(job_id(id)))
    batch = None if job.batch_id is None else q.get_batch(job.batch_id)
    return page("job.html", job=job, parents=q.get_dependencies(job.id), children=q.get_dependents(job.id), batch=batch)


@router.get(PREFIX + "/history")
def history_page() -> Response[str]:
    """Charts of a queue's history (`queue`), or of every queue's, over `span` (1h, 24h, 14d)."""
    from runtime.dashboard import charts  # on first use: the API's cold start does not need it

    query = current().query
    span = charts.SPANS.get(query.get("span") or "1h")
    if span is None:
        return error_page(400, f"span must be one of {', '.join(charts.SPANS)}, got {query.get('span')!r}")
    q = bootstrap.ready()
    name = q.require_queue(query["queue"]) if query.get("queue") else None
    return page("history.html", view=views.history(q, name, span), spans=charts.SPANS, queues=q.get_queues())


@router.get(PREFIX + "/schedules")
def schedules_page() -> Response[str]:
    return page("schedules.html", schedules=views.schedules(bootstrap.ready()))


@router.post(PREFIX + "/jobs/<id>/<action>")
def act(id: str, action: str) -> Response[str]:
    """retry, cancel or resume one job (runtime.job_actions), then back to the page the form was on."""
    request = current()
    chosen = job_actions.action(action)
    form = _checked_form()
    if form is None:
        return error_page(403, FORM_EXPIRED)
    job = job_actions.apply(bootstrap.ready(), chosen, id)
    logger.info("dashboard action", extra={"action": str(chosen), "job_id": job.id, "queue": job.name})
    back = form.get("next", "")
    # Only paths of this dashboard: an open redirect would let a link send people anywhere.
    if not back.startswith(request.base + PREFIX) or "//" in back or "\\" in back:
        back = request.url(f"/jobs/{job.id}")
    separator = "&" if "?" in back else "?"
    return _redirect(f"{back}{separator}done={chosen}&job={quote(job.id)}")


@router.post(PREFIX + "/queue/<action>")
def act_on_queue(action: str) -> Response[str]:
    """pause or resume the queue named in the form, then back to its page."""
    request = current()
    form = _checked_form()
    if form is None:
        return error_page(403, FORM_EXPIRED)
    name = queue_name(form.get("name", ""))
    chosen = job_actions.queue_action(action)
    outcome = job_actions.apply_to_queue(bootstrap.ready(), chosen, name)
    shown = {"name": name, "done": job_actions.QUEUE_DONE[chosen]}
    if "moved" in outcome:
        shown["count"] = str(len(outcome["moved"]))
    logger.info("dashboard action", extra={"action": f"{chosen} queue", "queue": name, "count": shown.get("count")})
    return _redirect(request.url("/queue", **shown))


@router.get(PREFIX + "/login")
def login_form() -> Response[str]:
    return page("login.html")


@router.post(PREFIX + "/login")
def login() -> Response[str]:
    request = current()
    supplied = _form().get("token", "").strip()
    if not request.token:
        return page("login.html", 401, error="authentication is not configured on this API")
    if not supplied or not session.same(supplied, request.token):
        logger.warning("dashboard sign-in refused")
        refused = page("login.html", 401, error="that token is not valid")
        refused.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'  # a 401 names its scheme
        return refused
    cookie = Cookie(
        name=session.COOKIE,
        value=session.issue(request.token),
        path=request.base + PREFIX,
        secure=_is_https(),
        http_only=True,
        same_site=SameSite.STRICT_MODE,
        max_age=session.LIFETIME_S,
    )
    return _redirect(request.url(), cookies=[cookie])


@router.post(PREFIX + "/logout")
def logout() -> Response[str]:
    request = current()
    cookie = Cookie(
        name=session.COOKIE, value="", path=request.base + PREFIX, http_only=True, max_age=0, secure=_is_https()
    )
    return _redirect(request.url("/login"), cookies=[cookie])


def _is_https() -> bool:
    default = "https" if (event().raw_event.get("requestContext") or {}).get("domainName") else "http"
    return bool(event().headers.get("x-forwarded-proto", default) == "https")


# Swagger UI's files, as Powertools ships them: served by these names, never by a path a client sends.
SWAGGER_UI = Path(event_handler.__file__).parent / "openapi" / "swagger_ui"
VENDORED = {"swagger-ui-bundle.js": "swagger-ui-bundle.min.js", "swagger-ui.css": "swagger-ui.min.css"}


@cache
def static_files() -> dict[str, Path]:
    """The files the dashboard serves, by the name in their URL."""
    own = {p.name: p for p in STATIC.iterdir() if p.is_file() and not p.name.startswith(".")}
    return own | {name: SWAGGER_UI / file for name, file in VENDORED.items()}


@router.get(PREFIX + "/static/<name>", compress=True)
def static(name: str) -> Response[str]:
    # Only known files, by name: nothing a client sends reaches the file system.
    path = static_files().get(name)
    if path is None:
        return Response(status_code=404, content_type="text/plain", body="not found")
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return Response(
        status_code=200,
        content_type=f"{content_type}; charset=utf-8",
        body=path.read_text(),
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )


@router.get(PREFIX + "/api")
def api_docs() -> Response[str]:
    """Swagger UI of the JSON API (runtime.openapi), for a signed-in person."""
    response = page("api.html")
    # Swagger UI fetches the document, and the requests a person tries, from this origin.
    response.headers["Content-Security-Policy"] = SECURITY_HEADERS["Content-Security-Policy"] + "; connect-src 'self'"
    return response


@router.get(PREFIX + "/openapi.json")
def api_document() -> Response[str]:
    """The JSON API's OpenAPI document, under the dashboard's sign-in (Swagger UI reads it)."""
    return Response(
        status_code=200,
        content_type="application/json",
        body=openapi.document(auth.base_path(event())),
        headers={"Cache-Control": "no-store"},
    )
