"""The dashboard through the API function: sign-in, pages, and the retry/cancel/resume forms."""

from __future__ import annotations

import base64
import copy
import gzip
import html
import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

import psycopg
import pytest

from jobqueue import Queue
from runtime import sessions as session
from tests.runtime.conftest import API_TOKEN, FakeContext, event

Call = Callable[..., dict[str, Any]]


@pytest.fixture
def web(load_function: Callable[[str], ModuleType]) -> Call:
    module = load_function("api")

    def call(
        path: str,
        *,
        method: str = "GET",
        form: dict[str, str] | None = None,
        cookie: str | None = None,
        token: str | None = None,
        browser: bool = True,
        query: dict[str, str] | None = None,
        stage: str = "$default",
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        request = copy.deepcopy(event("api-health.json"))
        raw = path if stage == "$default" else f"/{stage}{path}"
        request["rawPath"] = request["requestContext"]["http"]["path"] = raw
        request["requestContext"]["http"]["method"] = method
        request["requestContext"]["stage"] = stage
        extra, headers = headers or {}, request["headers"]
        headers.update(extra)
        headers.pop("authorization", None)
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        if browser:
            headers["accept"] = "text/html,application/xhtml+xml"
        if cookie is not None:
            request["cookies"] = [f"{session.COOKIE}={cookie}"]
        if form is not None:
            headers["content-type"] = "application/x-www-form-urlencoded"
            request["body"] = urlencode(form)
        if query is not None:
            request["queryStringParameters"] = query
            request["rawQueryString"] = urlencode(query)
        response = module.handler(request, FakeContext(function_name="jobs-api"))
        response.setdefault("headers", {})
        return response

    return call


def sign_in(web: Call) -> str:
    response = web("/dashboard/login", method="POST", form={"token": API_TOKEN})
    assert response["statusCode"] == 303
    (set_cookie,) = response["cookies"]
    match = re.match(rf"{session.COOKIE}=([^;]+)", set_cookie)
    assert match
    return match.group(1)


def csrf(page: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


def row_counts(page: str, queue: str) -> dict[str, int]:
    row = re.search(rf'<tr data-queue="{re.escape(queue)}".*?</tr>', page, re.S)
    assert row, f"no row for queue {queue}"
    cells = re.findall(r'data-state="(\w+)">(?:<a [^>]*>)?(\d+)', row.group(0))
    return {state: int(count) for state, count in cells}


@pytest.fixture
def jobs(dsn: str) -> Iterator[Queue]:
    with Queue(dsn) as q:
        q.create_queue("dash-dead")
        q.create_queue("dash", retry_limit=1, retry_delay=3600, dead_letter="dash-dead")
        yield q


def test_without_credentials_the_dashboard_is_refused(web: Call, jobs: Queue) -> None:
    jobs.send("dash", {"secret": "payload-marker"})
    browser = web("/dashboard")
    assert browser["statusCode"] == 303
    assert browser["headers"]["Location"] == "/dashboard/login"
    script = web("/dashboard", browser=False)
    assert script["statusCode"] == 401
    assert "payload-marker" not in script["body"] and "data-queue" not in script["body"]
    assert web("/dashboard", token="wrong")["statusCode"] == 401
    for forged in ("0.abc", f"{int(time.time()) + 3600}.{'0' * 64}", "garbage", ""):
        assert web("/dashboard", cookie=forged)["statusCode"] == 303
    # An expired session, correctly signed, is refused too.
    expired = session.issue(API_TOKEN, now=time.time() - session.LIFETIME_S - 1)
    assert web("/dashboard", cookie=expired)["statusCode"] == 303
    # Actions too: nothing changes without credentials.
    failed_id = jobs.send("dash", {})
    assert web(f"/dashboard/jobs/{failed_id}/cancel", method="POST", form={}, browser=False)["statusCode"] == 401
    assert jobs.get_job(failed_id).state == "created"  # type: ignore[union-attr]


def test_sign_in_sets_a_strict_http_only_session(web: Call) -> None:
    login = web("/dashboard/login")
    assert login["statusCode"] == 200 and 'name="token"' in login["body"]
    assert "default-src 'none'" in login["headers"]["Content-Security-Policy"]
    wrong = web("/dashboard/login", method="POST", form={"token": "nope"})
    assert wrong["statusCode"] == 401 and "not valid" in wrong["body"] and "WWW-Authenticate" in wrong["headers"]
    assert not wrong.get("cookies")
    response = web("/dashboard/login", method="POST", form={"token": API_TOKEN})
    (cookie,) = response["cookies"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/dashboard" in cookie
    assert "Secure" in cookie  # the request came through API Gateway's HTTPS endpoint
    assert API_TOKEN not in cookie
    assert response["headers"]["Location"] == "/dashboard"
    signed_out = web("/dashboard/logout", method="POST", cookie=sign_in(web), form={})
    assert "Max-Age=0" in signed_out["cookies"][0]


def test_overview_shows_counts_throughput_and_dead_letters(web: Call, jobs: Queue) -> None:
    for n in range(5):
        jobs.send("dash", {"n": n})
    done = jobs.fetch("dash", 2)
    jobs.complete("dash", done)
    broken = jobs.fetch("dash", 1)
    jobs.fail("dash", broken, {"message": "host unreachable"})  # one attempt left: retry
    cookie = sign_in(web)
    page = web("/dashboard", cookie=cookie)
    assert page["statusCode"] == 200, page["body"]
    body = page["body"]
    assert row_counts(body, "dash") == {
        "created": 2,
        "retry": 1,
        "active": 0,
        "completed": 2,
        "failed": 0,
        "cancelled": 0,
    }
    assert 'data-dlq="dash-dead"' in body
    assert "2 / <span" in body  # two completed in the last hour
    # The same with a bearer token instead of a session.
    assert row_counts(web("/dashboard", token=API_TOKEN)["body"], "dash")["completed"] == 2


def test_retry_from_the_failed_page_needs_the_form_token(web: Call, jobs: Queue) -> None:
    job_id = jobs.send("dash", {"to": "x"}, retry_limit=0)
    assert job_id
    jobs.fail("dash", jobs.fetch("dash", 1), {"message": "<b>boom</b>"})
    cookie = sign_in(web)
    page = web("/dashboard/failed", cookie=cookie)["body"]
    assert "<title>Failed jobs · Jobs dashboard</title>" in page
    assert f'data-job="{job_id}"' in page
    assert html.escape("<b>boom</b>") in page and "<b>boom</b>" not in page
    dead_letters = re.search(r'<li data-dlq="dash-dead">.*?</li>', page, re.S)
    assert dead_letters and "<strong>1</strong> waiting" in dead_letters.group(0)  # the failed job's copy
    forged = web(f"/dashboard/jobs/{job_id}/retry", method="POST", cookie=cookie, form={"csrf": "0" * 64})
    assert forged["statusCode"] == 403
    assert jobs.get_job(job_id).state == "failed"  # type: ignore[union-attr]
    response = web(
        f"/dashboard/jobs/{job_id}/retry",
        method="POST",
        cookie=cookie,
        form={"csrf": csrf(page), "next": "/dashboard/failed"},
    )
    assert response["statusCode"] == 303
    assert response["headers"]["Location"] == f"/dashboard/failed?done=retry&job={job_id}"
    assert jobs.get_job(job_id).state == "created"  # type: ignore[union-attr]
    again = web(f"/dashboard/jobs/{job_id}/retry", method="POST", cookie=cookie, form={"csrf": csrf(page)})
    assert again["statusCode"] == 409 and "is created" in again["body"]
    # "retried" is no state and no action: the actions and their states come from one module.
    retried = web(f"/dashboard/jobs/{job_id}/retried", method="POST", cookie=cookie, form={"csrf": csrf(page)})
    assert retried["statusCode"] == 404 and "unknown action" in retried["body"]


def test_cancel_and_resume_and_no_open_redirect(web: Call, jobs: Queue) -> None:
    job_id = jobs.send("dash", {})
    assert job_id
    cookie = sign_in(web)
    token = csrf(web(f"/dashboard/jobs/{job_id}", cookie=cookie)["body"])
    cancel = web(
        f"/dashboard/jobs/{job_id}/cancel",
        method="POST",
        cookie=cookie,
        form={"csrf": token, "next": "https://evil.example/"},
    )
    assert cancel["headers"]["Location"] == f"/dashboard/jobs/{job_id}?done=cancel&job={job_id}"
    assert jobs.get_job(job_id).state == "cancelled"  # type: ignore[union-attr]
    page = web(f"/dashboard/jobs/{job_id}", cookie=cookie, query={"done": "cancel", "job": job_id})["body"]
    assert f"Job {job_id} is cancelled." in page
    web(f"/dashboard/jobs/{job_id}/resume", method="POST", cookie=cookie, form={"csrf": token})
    assert jobs.get_job(job_id).state == "created"  # type: ignore[union-attr]
    unknown = web(f"/dashboard/jobs/{job_id}/explode", method="POST", cookie=cookie, form={"csrf": token})
    assert unknown["statusCode"] == 404


def test_job_page_shows_data_and_error_escaped(web: Call, jobs: Queue) -> None:
    job_id = jobs.send("dash", {"note": "<script>alert(1)</script>"}, retry_limit=0)
    assert job_id
    jobs.fail("dash", jobs.fetch("dash", 1), {"message": "disk full"})
    page = web(f"/dashboard/jobs/{job_id}", token=API_TOKEN)
    assert page["statusCode"] == 200
    body = page["body"]
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "disk full" in body and "Started" in body and "Failed" in body
    missing = web("/dashboard/jobs/01939c59-0000-7000-8000-000000000000", token=API_TOKEN)
    assert missing["statusCode"] == 404
    assert web("/dashboard/jobs/not-a-uuid", token=API_TOKEN)["statusCode"] == 400


def test_queue_page_filters_by_state(web: Call, jobs: Queue) -> None:
    first = jobs.send("dash", {"n": 1})
    second = jobs.send("dash", {"n": 2})
    jobs.complete("dash", jobs.fetch("dash", 1))
    page = web("/dashboard/queue", token=API_TOKEN, query={"name": "dash", "state": "created"})["body"]
    assert f'data-job="{second}"' in page and f'data-job="{first}"' not in page
    assert "dash-dead" in page  # where its dead letters go
    assert web("/dashboard/queue", token=API_TOKEN, query={"name": "nope"})["statusCode"] == 404
    bad = web("/dashboard/queue", token=API_TOKEN, query={"name": "dash", "state": "sleeping"})
    assert bad["statusCode"] == 400


def test_queue_page_shows_blocked_keys_and_active_groups(web: Call, jobs: Queue) -> None:
    jobs.create_queue("fifo", policy="key_strict_fifo", retry_limit=0)
    for pod in ("pod-1", "pod-2"):
        jobs.send("fifo", {}, singleton_key=pod, group={"id": "host-a"})
    first, _ = jobs.fetch("fifo", 2)
    jobs.fail("fifo", [first], "boom")
    page = web("/dashboard/queue", token=API_TOKEN, query={"name": "fifo"})["body"]
    assert f'data-blocked-key="{first.singleton_key}"' in page
    row = re.search(r'<tr data-group="host-a">.*?</tr>', page, re.S)
    assert row and '<td class="num">1</td>' in row.group(0)
    plain = web("/dashboard/queue", token=API_TOKEN, query={"name": "dash"})["body"]
    assert "Blocked keys" not in plain and "Active per group" not in plain


def test_schedules_show_next_fire_times(web: Call, jobs: Queue) -> None:
    jobs.schedule("dash", "*/5 * * * *", tz="Europe/Berlin")
    page = web("/dashboard/schedules", token=API_TOKEN)["body"]
    row = re.search(r'<tr data-schedule="dash">.*?</tr>', page, re.S)
    assert row, "the schedule is not listed"
    assert "*/5 * * * *" in row.group(0) and "Europe/Berlin" in row.group(0) and "not yet" in row.group(0)
    fires = [datetime.fromisoformat(t) for t in re.findall(r'<time datetime="([^"]+)"', row.group(0))]
    assert len(fires) == 3
    assert all(f > datetime.now(UTC) and f.minute % 5 == 0 and f.second == 0 for f in fires)
    assert fires == sorted(fires) and fires[1] - fires[0] == timedelta(minutes=5)
    # After a fire, the time it fired for is shown.
    jobs.run_schedules(now=fires[0] + timedelta(seconds=1))
    row = re.search(r'<tr data-schedule="dash">.*?</tr>', web("/dashboard/schedules", token=API_TOKEN)["body"], re.S)
    assert row and "not yet" not in row.group(0) and fires[0].isoformat() in row.group(0)


def test_static_files_and_stage_prefix(web: Call) -> None:
    css = web("/dashboard/static/dashboard.css")
    assert css["statusCode"] == 200 and css["headers"]["Content-Type"].startswith("text/css")
    for name in ("..%2Fsession.py", ".hidden", "nope.css"):
        assert web(f"/dashboard/static/{name}")["statusCode"] == 404
    staged = web("/dashboard", token=API_TOKEN, stage="prod")
    assert staged["statusCode"] == 200
    assert 'href="/prod/dashboard/failed"' in staged["body"]
    assert web("/dashboard", stage="prod")["headers"]["Location"] == "/prod/dashboard/login"


def test_an_old_dead_letter_is_no_backlog_warning(web: Call, jobs: Queue, conn: psycopg.Connection[Any]) -> None:
    jobs.send("dash-dead", {"copied": True})
    jobs.send("dash", {"n": 1})
    three_hours_ago = "now() - interval '3 hours'"
    conn.execute(f"UPDATE jobqueue.job SET created_on = {three_hours_ago}, start_after = {three_hours_ago}")
    conn.execute(f"UPDATE jobqueue.fetch_floor SET created_on = {three_hours_ago}")  # the floors go back with them
    body = web("/dashboard", token=API_TOKEN)["body"]
    rows = {m.group(1): m.group(2) for m in re.finditer(r'<tr data-queue="([^"]+)"([^>]*)>', body)}
    assert rows["dash"] == ' class="warn"'  # waiting work, 3 hours old
    assert rows["dash-dead"] == ""  # a failure waiting for a person: shown apart, not a backlog


def test_an_unknown_queue_is_a_404_page_that_suggests(web: Call, jobs: Queue) -> None:
    for path, query in (("/dashboard/failed", {"queue": "dahs"}), ("/dashboard/queue", {"name": "dahs"})):
        page = web(path, query=query, token=API_TOKEN)
        assert page["statusCode"] == 404, path
        assert "unknown queue &#39;dahs&#39; (did you mean &#39;dash&#39;?)" in page["body"], page["body"]


def test_attempts_are_counted_alike_and_the_history_is_in_order(web: Call, jobs: Queue) -> None:
    jobs.create_queue("tries", retry_limit=3, retry_delay=60)
    job_id = jobs.send("tries", {"n": 1})
    jobs.fail("tries", jobs.fetch("tries"), "first attempt failed")  # waits for its second attempt
    page = web(f"/dashboard/jobs/{job_id}", token=API_TOKEN)["body"]
    failed = web("/dashboard/failed", token=API_TOKEN)["body"]
    listing = web("/dashboard/queue", query={"name": "tries"}, token=API_TOKEN)["body"]
    assert "<dt>Attempts</dt><dd>1 of 4</dd>" in page
    assert '<td class="num">1 of 4</td>' in failed and '<td class="num">1 of 4</td>' in listing
    history = re.findall(r"<li><span>([^<]+)</span>", page.split('<ol class="timeline">')[1].split("</ol>")[0])
    assert history[:3] == ["Created", "Started", "Next attempt after"], history
    shown = web(f"/api/jobs/{job_id}", token=API_TOKEN)
    assert json.loads(shown["body"])["attempts"] == 1


def test_pause_and_resume_a_queue_from_its_page(web: Call, jobs: Queue) -> None:
    jobs.send("dash", {})
    cookie = sign_in(web)
    page = web("/dashboard/queue", query={"name": "dash"}, cookie=cookie)["body"]
    assert 'data-queue-action="pause"' in page and "data-paused" not in page
    forged = web("/dashboard/queue/pause", method="POST", cookie=cookie, form={"name": "dash", "csrf": "0" * 64})
    assert forged["statusCode"] == 403
    paused = web("/dashboard/queue/pause", method="POST", cookie=cookie, form={"name": "dash", "csrf": csrf(page)})
    assert paused["statusCode"] == 303
    assert paused["headers"]["Location"] == "/dashboard/queue?name=dash&done=paused"
    assert jobs.fetch("dash") == []
    shown = web("/dashboard/queue", query={"name": "dash", "done": "paused"}, cookie=cookie)["body"]
    assert "Queue dash is paused." in shown and 'data-queue-action="resume"' in shown
    overview = web("/dashboard", cookie=cookie)["body"]
    assert re.search(r'<tr data-queue="dash"[^>]*>.*?data-paused', overview, re.S)
    web("/dashboard/queue/resume", method="POST", cookie=cookie, form={"name": "dash", "csrf": csrf(page)})
    assert len(jobs.fetch("dash")) == 1


def test_the_job_page_lists_each_attempts_error(web: Call, jobs: Queue, conn: psycopg.Connection[Any]) -> None:
    job_id = str(jobs.send("dash", {}))
    first = {"message": "first <b>boom</b>", "type": "HostError", "traceback": "at line 1"}
    jobs.fail("dash", jobs.fetch("dash"), first)
    conn.execute("UPDATE jobqueue.job SET start_after = now() WHERE id = %s", (job_id,))
    jobs.fail("dash", jobs.fetch("dash"), "second boom")
    page = web(f"/dashboard/jobs/{job_id}", token=API_TOKEN)["body"]
    history = page.split('id="job-errors"')[1]
    assert history.index('data-attempt="1"') < history.index('data-attempt="2"')
    assert html.escape("first <b>boom</b>") in history and "<b>boom</b>" not in history
    assert "<summary>Traceback</summary>" in history and "second boom" in history


def test_the_job_page_shows_its_progress_and_steps(web: Call, jobs: Queue) -> None:
    job_id = str(jobs.send("dash", {}))
    [job] = jobs.fetch("dash")
    job.context = context = jobs.context_for("dash")
    job.step("reserve <slot>", lambda: {"slot": 7})
    job.step("create", lambda: "pod-1")
    job.set_progress({"done": 3, "total": 10})
    page = web(f"/dashboard/jobs/{job_id}", token=API_TOKEN)["body"]
    assert '<progress value="3" max="10">30%</progress>' in page and "3 of 10 (30%)" in page
    steps = page.split('id="job-steps"')[1]
    assert steps.index('data-step="reserve &lt;slot&gt;"') < steps.index('data-step="create"')
    assert "<td>1</td>" in steps and " ms</td>" in steps
    job.set_progress("copying the last files")  # not done/total: shown as it is
    context.flush()  # type: ignore[attr-defined]
    page = web(f"/dashboard/jobs/{job_id}", token=API_TOKEN)["body"]
    assert '<pre class="json" id="job-progress">&#34;copying the last files&#34;</pre>' in page or (
        "copying the last files" in page.split('id="job-progress"')[1].split("</pre>")[0]
    )


def test_the_job_page_shows_its_batch(web: Call, jobs: Queue) -> None:
    _, second = jobs.insert("dash", [{"data": 1}, {"data": 2}], batch={"id": "nightly <1>"})
    jobs.complete("dash", jobs.fetch("dash"))
    page = web(f"/dashboard/jobs/{second}", token=API_TOKEN)["body"]
    assert '<span class="mono">nightly &lt;1&gt;</span>: 1 of 2 finished (1 completed, 0 failed, 0 cancelled)' in page


def test_redrive_from_the_dashboard(web: Call, jobs: Queue) -> None:
    jobs.send("dash", {"n": 1}, retry_limit=0)
    jobs.fail("dash", jobs.fetch("dash"), "boom")
    cookie = sign_in(web)
    page = web("/dashboard", cookie=cookie)["body"]
    assert 'data-redrive="dash-dead"' in page
    form = {"name": "dash-dead", "csrf": csrf(page)}
    moved = web("/dashboard/queue/redrive", method="POST", cookie=cookie, form=form)
    assert moved["statusCode"] == 303 and "done=redriven&count=1" in moved["headers"]["Location"]
    assert jobs.queue_size("dash") == 1 and jobs.queue_size("dash-dead") == 0
    assert 'data-redrive="dash-dead"' not in web("/dashboard", cookie=cookie)["body"]  # nothing left to move


def test_the_job_page_shows_its_flow(web: Call, jobs: Queue) -> None:
    ids = jobs.flow([{"ref": "a", "name": "dash"}, {"ref": "b", "name": "dash", "depends_on": ["a"]}])
    child = web(f"/dashboard/jobs/{ids['b']}", token=API_TOKEN)["body"]
    assert f'data-parent="{ids["a"]}"' in child and "1 not completed yet" in child
    parent = web(f"/dashboard/jobs/{ids['a']}", token=API_TOKEN)["body"]
    assert f'data-child="{ids["b"]}"' in parent


def test_filter_by_key_and_data_then_act_on_all_of_them(web: Call, jobs: Queue) -> None:
    for n in range(4):
        jobs.send("dash", {"pod": f"p{n % 2}", "n": n}, singleton_key=f"k{n % 2}")
    cookie = sign_in(web)
    by_key = web("/dashboard/queue", query={"name": "dash", "key": "k1"}, cookie=cookie)["body"]
    assert by_key.count('<tr data-job="') == 2
    query = {"name": "dash", "data": '{"pod": "p0"}'}
    by_data = web("/dashboard/queue", query=query, cookie=cookie)["body"]
    assert by_data.count('<tr data-job="') == 2
    form = {"name": "dash", "state": "", "key": "", "data": '{"pod": "p0"}', "csrf": csrf(by_data)}
    done = web("/dashboard/queue/bulk/cancel", method="POST", cookie=cookie, form=form)
    assert done["statusCode"] == 303 and "done=bulk&action=cancel&count=2" in done["headers"]["Location"]
    states = sorted((j.data["pod"], str(j.state)) for j in jobs.find_jobs("dash"))
    assert states == [("p0", "cancelled"), ("p0", "cancelled"), ("p1", "created"), ("p1", "created")]
    deleted = web("/dashboard/queue/bulk/delete", method="POST", cookie=cookie, form={**form, "state": "cancelled"})
    assert "count=2" in deleted["headers"]["Location"] and len(jobs.find_jobs("dash")) == 2
    bad = web("/dashboard/queue", query={"name": "dash", "data": "{nope"}, cookie=cookie)
    assert bad["statusCode"] == 400 and "data filter is not JSON" in bad["body"]


def test_find_a_job_by_its_id(web: Call, jobs: Queue) -> None:
    job_id = str(jobs.send("dash", {}))
    found = web("/dashboard/search", query={"q": f" {job_id} "}, token=API_TOKEN)
    assert found["statusCode"] == 303 and found["headers"]["Location"] == f"/dashboard/jobs/{job_id}"
    missing = web("/dashboard/search", query={"q": "01a221cc-a803-7b0d-b34b-9d342cafd700"}, token=API_TOKEN)
    assert missing["statusCode"] == 404
    assert web("/dashboard/search", query={"q": "not an id"}, token=API_TOKEN)["statusCode"] == 400


def test_the_api_described_behind_sign_in(web: Call) -> None:
    # A browser without a session is sent to sign in, for the page and the document alike.
    assert web("/dashboard/api")["headers"]["Location"] == "/dashboard/login"
    assert web("/dashboard/openapi.json", browser=False)["statusCode"] == 401
    cookie = sign_in(web)
    page = web("/dashboard/api", cookie=cookie)
    assert page["statusCode"] == 200 and 'id="swagger-ui"' in page["body"]
    assert "connect-src 'self'" in page["headers"]["Content-Security-Policy"]  # the document, tried requests
    assert "script-src 'self'" in page["headers"]["Content-Security-Policy"]  # and still no inline script
    document = json.loads(web("/dashboard/openapi.json", cookie=cookie)["body"])
    assert "/api/jobs/{id}/{action}" in document["paths"] and document["servers"] == [{"url": "/"}]
    staged = json.loads(web("/dashboard/openapi.json", cookie=cookie, stage="prod")["body"])
    assert staged["servers"] == [{"url": "/prod"}]  # tried requests go to the stage


def test_swagger_ui_files_are_served_by_name_and_compressed(web: Call) -> None:
    bundle = web("/dashboard/static/swagger-ui-bundle.js")
    assert bundle["statusCode"] == 200 and bundle["headers"]["Content-Type"].startswith("text/javascript")
    assert "SwaggerUIBundle" in bundle["body"]
    assert web("/dashboard/static/swagger-ui.min.css")["statusCode"] == 404  # only the names served
    zipped = web("/dashboard/static/swagger-ui-bundle.js", headers={"accept-encoding": "gzip, br"})
    raw = gzip.decompress(base64.b64decode(zipped["body"]))
    assert zipped["isBase64Encoded"] and len(zipped["body"]) < len(raw) / 2 and raw.decode() == bundle["body"]


def test_a_queue_that_does_not_archive_says_so_and_so_does_its_deleted_jobs_page(web: Call, jobs: Queue) -> None:
    jobs.create_queue("fleeting", archive=False, archive_after=0)
    job_id = str(jobs.send("fleeting", {}))
    jobs.complete("fleeting", jobs.fetch("fleeting"))
    page = web("/dashboard/queue", token=API_TOKEN, query={"name": "fleeting"})["body"]
    assert "data-not-archived>deleted" in page and "Archived after" not in page
    assert "Archived after" in web("/dashboard/queue", token=API_TOKEN, query={"name": "dash"})["body"]
    assert jobs.maintain(now=datetime.now(UTC) + timedelta(seconds=1)).deleted == 1
    gone = web(f"/dashboard/jobs/{job_id}", token=API_TOKEN)
    assert gone["statusCode"] == 404
    assert "these queues delete finished jobs instead of archiving them: fleeting" in html.unescape(gone["body"])


def test_a_partitioned_queue_says_where_its_jobs_are_kept(web: Call, jobs: Queue) -> None:
    jobs.create_queue("bulk", partition=True)
    page = web("/dashboard/queue", token=API_TOKEN, query={"name": "bulk"})["body"]
    assert "data-partition>a partition of the job table of their own" in page
    assert "data-partition" not in web("/dashboard/queue", token=API_TOKEN, query={"name": "dash"})["body"]


def test_a_rate_limited_queue_shows_its_window(web: Call, jobs: Queue) -> None:
    jobs.create_queue("email", rate_limit={"limit": 3, "period": 60})
    jobs.insert("email", [{"data": n} for n in range(5)])
    jobs.fetch("email", 5)
    page = web("/dashboard/queue", token=API_TOKEN, query={"name": "email"})["body"]
    assert "data-rate-window>3 jobs started in any 1m 0s: 3 in the window now, full for" in page
    assert "data-rate-window" not in web("/dashboard/queue", token=API_TOKEN, query={"name": "dash"})["body"]


def test_a_round_robin_queue_says_so(web: Call, jobs: Queue) -> None:
    jobs.create_queue("fair", fairness={"tiers": {"paid": 3}})
    page = web("/dashboard/queue", token=API_TOKEN, query={"name": "fair"})["body"]
    assert "data-fairness>round robin between groups, jobs a turn per tier: paid 3</dd>" in page
    assert "data-fairness" not in web("/dashboard/queue", token=API_TOKEN, query={"name": "dash"})["body"]


def test_a_group_rate_limited_queue_shows_its_fullest_groups(web: Call, jobs: Queue) -> None:
    jobs.create_queue("github", group_rate_limit={"limit": 2, "period": 60})
    jobs.insert("github", [{"data": n, "group": {"id": g}} for g in ("token-a", "token-b") for n in range(3)])
    jobs.fetch("github", 3)  # token-a's two (its third is held back)
    jobs.fetch("github", 1)  # token-b's first
    page = web("/dashboard/queue", token=API_TOKEN, query={"name": "github"})["body"]
    assert "data-group-rate-limit>2 jobs started in any 1m 0s per group; fullest now: token-a 2 (full for" in page
    assert ", token-b 1</dd>" in page


def test_the_history_page_charts_what_maintenance_recorded(web: Call, jobs: Queue) -> None:
    jobs.insert("dash", [{"data": {"n": n}} for n in range(6)])
    jobs.complete("dash", jobs.fetch("dash", 4))
    jobs.record_history(now=datetime.now(UTC) + timedelta(minutes=2))
    cookie = sign_in(web)
    page = web("/dashboard/history", cookie=cookie, query={"queue": "dash", "span": "24h"})
    assert page["statusCode"] == 200, page["body"]
    body = page["body"]
    totals = dict(re.findall(r'data-history-total="(\w+)">([\d,]+)<', body))
    assert (totals["sent"], totals["started"], totals["completed"]) == ("6", "4", "4")
    assert body.count("<figure") == 3 and 'class="ok"' in body and "polyline" in body
    # Every queue's, over the default hour; a span or a queue that does not exist is refused.
    assert "History · every queue" in web("/dashboard/history", cookie=cookie)["body"]
    assert web("/dashboard/history", cookie=cookie, query={"span": "2w"})["statusCode"] == 400
    assert web("/dashboard/history", cookie=cookie, query={"queue": "dahs"})["statusCode"] == 404
