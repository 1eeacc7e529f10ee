"""The dashboard in a real browser: headless Chromium (Debian's package) driven by Playwright.

The pages are served by the local stack's API server (`local.api_server`, what
`make dev` runs) on the test database. The screenshots are kept in
artifacts/ (ARTIFACTS_DIR) for a person to look at.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from jobqueue import Queue
from tests.helpers import api_server

ROOT = Path(__file__).parents[2]
ARTIFACTS = Path(os.environ.get("ARTIFACTS_DIR", ROOT / "artifacts"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TOKEN = "e2e-dashboard-token"
# Chromium as root in a container, on a machine without network: no sandbox, and
# no background connections to Google's services.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if not Path(CHROMIUM).exists():
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: run `make browser`", pytrace=False)
    pytest.skip("Chromium is not installed (make browser installs it)", allow_module_level=True)

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402


@pytest.fixture
def server(dsn: str) -> Iterator[str]:
    with api_server(dsn, TOKEN, POWERTOOLS_METRICS_NAMESPACE="JobsE2E") as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def jobs(dsn: str, server: str) -> Iterator[Queue]:
    with Queue(dsn) as q:
        q.migrate()
        q.create_queue("e2e-dead")
        q.create_queue("e2e", retry_limit=0, dead_letter="e2e-dead")
        yield q


def sign_in(page: Page, url: str) -> None:
    page.goto(f"{url}/dashboard")
    expect(page).to_have_url(f"{url}/dashboard/login")
    page.fill("#token", TOKEN)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{url}/dashboard")


def test_requests_without_credentials_are_refused(server: str, browser: Browser, jobs: Queue) -> None:
    assert httpx.get(f"{server}/dashboard").status_code == 401
    # RFC 6750: a wrong token is a 401 too.
    assert httpx.get(f"{server}/dashboard", headers={"Authorization": "Bearer wrong"}).status_code == 401
    page = browser.new_page()
    page.goto(f"{server}/dashboard")
    expect(page).to_have_url(f"{server}/dashboard/login")  # sent to sign in, no data shown
    expect(page.locator("tr[data-queue]")).to_have_count(0)
    page.fill("#token", "not-the-token")
    page.click("button[type=submit]")
    expect(page.locator(".error-box")).to_contain_text("not valid")
    page.close()


def test_counts_retry_and_cancel_in_the_browser(server: str, browser: Browser, jobs: Queue) -> None:
    for n in range(3):
        jobs.send("e2e", {"n": n})
    jobs.complete("e2e", jobs.fetch("e2e", 1))
    failing = jobs.fetch("e2e", 1)
    jobs.fail("e2e", failing, {"message": "host agent unreachable"})
    failed_id = failing[0].id
    (waiting,) = jobs.find_jobs("e2e", state="created")

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    sign_in(page, server)
    row = page.locator('tr[data-queue="e2e"]')
    expect(row.locator('[data-state="created"]')).to_have_text("1")
    expect(row.locator('[data-state="completed"]')).to_have_text("1")
    expect(row.locator('[data-state="failed"]')).to_have_text("1")
    expect(page.locator('[data-dlq="e2e-dead"]')).to_be_visible()
    expect(page.locator(".chart svg rect.ok")).not_to_have_count(0)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-overview.png"), full_page=True)

    page.click("text=Failed")
    failed_row = page.locator(f'#failed tr[data-job="{failed_id}"]')
    expect(failed_row).to_contain_text("host agent unreachable")
    page.screenshot(path=str(ARTIFACTS / "dashboard-failed.png"), full_page=True)
    failed_row.locator('button[data-action="retry"]').click()
    expect(page.locator(".notice")).to_contain_text(f"Job {failed_id} is queued again")
    assert jobs.get_job(failed_id).state == "created"  # type: ignore[union-attr]

    # Cancel asks first; dismissing the question changes nothing.
    page.goto(f"{server}/dashboard/jobs/{waiting.id}")
    expect(page.locator("#job-data")).to_contain_text('"n"')
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click('button[data-action="cancel"]')
    assert jobs.get_job(waiting.id).state == "created"  # type: ignore[union-attr]
    page.once("dialog", lambda dialog: dialog.accept())
    page.click('button[data-action="cancel"]')
    expect(page.locator(".notice")).to_contain_text("is cancelled")
    assert jobs.get_job(waiting.id).state == "cancelled"  # type: ignore[union-attr]
    assert errors == []
    context.close()


def test_readable_on_a_phone(server: str, browser: Browser, jobs: Queue) -> None:
    jobs.send("e2e", {"n": 1})
    jobs.schedule("e2e", "0 * * * *", tz="Europe/Berlin")
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    sign_in(page, server)
    # Wide tables scroll inside their box; the page itself does not scroll sideways.
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    expect(page.locator('tr[data-queue="e2e"] [data-state="created"]')).to_have_text("1")
    page.screenshot(path=str(ARTIFACTS / "dashboard-phone.png"), full_page=True)
    page.click("text=Schedules")
    expect(page.locator('tr[data-schedule="e2e"]')).to_contain_text("Europe/Berlin")
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    expect(page.locator('tr[data-schedule="e2e"] time')).to_have_count(3)  # the next three fire times
    context.close()


def test_the_api_in_swagger_ui(server: str, browser: Browser, jobs: Queue) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []  # a script or style the page's CSP refuses shows here
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(f"{server}/dashboard/api")
    expect(page).to_have_url(f"{server}/dashboard/login")  # behind sign-in
    sign_in(page, server)
    page.goto(f"{server}/dashboard/api")
    expect(page.locator(".information-container .title")).to_contain_text("pgjobs API")
    expect(page.locator(".opblock")).to_have_count(9)  # every operation of the document
    expect(page.locator(".auth-wrapper .authorize")).to_be_visible()  # the bearer token can be given
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-api.png"), full_page=True)
    assert errors == []
    page.close()


def test_a_long_jobs_progress_and_steps(server: str, browser: Browser, jobs: Queue) -> None:
    [job_id] = jobs.insert("e2e", [{"data": {"pod": "p-1"}}], batch={"id": "nightly-1"})
    [job] = jobs.fetch("e2e")
    job.context = context = jobs.context_for("e2e")
    job.step("reserve slot", lambda: {"host": "host-1", "slot": 3})
    job.step("create pod", lambda: "10.0.0.7")
    job.set_progress({"done": 2, "total": 3})
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, server)
    page.goto(f"{server}/dashboard/jobs/{job_id}")
    expect(page.locator("#job-progress progress")).to_have_attribute("value", "2")
    expect(page.locator("#job-progress")).to_contain_text("2 of 3 (67%)")
    expect(page.locator("#job-steps tr[data-step]")).to_have_count(2)
    expect(page.locator("#job-batch")).to_contain_text("0 of 1 finished")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-job-steps.png"), full_page=True)
    context.flush()  # type: ignore[attr-defined]
    page.close()


def _fill_history(conn_dsn: str, name: str, now: datetime) -> None:
    """A day and a half of minutes, a busy afternoon and a slow spell, written as maintenance writes them."""
    import math

    import psycopg

    rows = []
    for back in range(0, 36 * 60, 1):
        minute = (now - timedelta(minutes=back)).replace(second=0, microsecond=0)
        load = 40 + 30 * math.sin(back / 90) + (60 if 120 < back < 180 else 0)
        failed = 3 if back % 17 == 0 else 0
        slow = 4.0 if 30 < back < 45 else 1.0
        rows.append(
            (
                name,
                minute,
                int(load) + 2,
                int(load),
                int(load) - failed,
                failed,
                0,
                1 if back % 53 == 0 else 0,
                0.05 * slow,
                0.4 * slow,
                1.2 * slow,
                0.8,
                2.5 * slow,
                6.0 * slow,
            )
        )
    with psycopg.connect(conn_dsn, autocommit=True) as conn:
        conn.cursor().executemany(
            "INSERT INTO jobqueue.queue_history (name, minute, sent, started, completed, failed, cancelled, expired,"
            " wait_p50, wait_p95, wait_p99, run_p50, run_p95, run_p99)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            rows,
        )


def test_a_queue_s_history_as_charts(server: str, browser: Browser, jobs: Queue, dsn: str) -> None:
    _fill_history(dsn, "e2e", datetime.now(UTC))
    page = browser.new_page(viewport={"width": 1280, "height": 1100})
    sign_in(page, server)
    page.goto(f"{server}/dashboard/queue?name=e2e")
    page.click("a[data-history-link]")
    expect(page.locator("h1")).to_contain_text("History · e2e")
    expect(page.locator("[data-chart]")).to_have_count(3)
    # 1 hour in minutes: a stack of bars per minute, and p50/p95/p99 lines for wait and run.
    assert page.locator("[data-chart='1'] rect.ok").count() >= 55
    expect(page.locator("[data-chart='2'] polyline.line-p99")).to_have_count(1)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-history-1h.png"), full_page=True)
    page.click("text=24 hours")
    expect(page.locator("nav.choices strong")).to_have_text("24 hours")
    assert page.locator("[data-chart='1'] rect.ok").count() == 96  # 15-minute buckets, each busy
    page.screenshot(path=str(ARTIFACTS / "dashboard-history-24h.png"), full_page=True)
    # Every queue at once, from the queue chooser.
    page.select_option("select[name=queue]", "")
    expect(page.locator("h1")).to_contain_text("every queue")
    page.click("text=14 days")
    expect(page.locator("[data-history-total='sent']")).not_to_have_text("0")
    page.screenshot(path=str(ARTIFACTS / "dashboard-history-14d.png"), full_page=True)
    page.close()
