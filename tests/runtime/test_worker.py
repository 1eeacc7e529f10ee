"""The worker function through its events, against the real database."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import psycopg
import pytest

from jobqueue import ConfigurationError, Job, JobError, Queue
from runtime import handlers
from runtime.observability import logger
from tests.runtime.conftest import FakeContext, RecordingLambda, event


@pytest.fixture
def worker(load_function: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("QUEUE_NAME", "send-email")
    monkeypatch.setenv("BATCH_SIZE", "10")
    monkeypatch.setenv("TEAM_SIZE", "5")
    monkeypatch.setenv("MAX_JOBS", "1000")
    monkeypatch.setenv("SAFETY_MARGIN_MS", "1000")
    return load_function("worker")


def test_drains_the_queue_and_reports_counts(worker: ModuleType, dsn: str) -> None:
    seen: list[str] = []

    def send_email(job: Job) -> Any:
        if job.data["to"] == "bounce@example.com":
            raise JobError("mailbox does not exist", should_retry=False)
        if job.data["to"] == "flaky@example.com":
            raise ConnectionError("SES timed out")
        seen.append(job.data["to"])
        return {"messageId": f"m-{job.data['to']}"}

    handlers.set_handler("send-email", send_email)
    with Queue(dsn) as q:
        worker.handler(event("schedule.json"), FakeContext())  # cold start: migrates and registers queues
        recipients = [f"user{n}@example.com" for n in range(25)] + ["bounce@example.com", "flaky@example.com"]
        q.insert("send-email", [{"data": {"to": r}} for r in recipients])
        result = worker.handler(event("schedule.json"), FakeContext())
        assert result["fetched"] == 27
        assert (result["completed"], result["retried"], result["failed"], result["stopped"]) == (25, 1, 1, "empty")
        assert sorted(seen) == sorted(recipients[:25])
        done = q.find_jobs("send-email", state="completed", limit=100)
        assert {j.output["messageId"] for j in done} == {f"m-{r}" for r in recipients[:25]}
        [bounced] = q.find_jobs("send-email", state="failed")
        assert {k: bounced.output[k] for k in ("message", "type")} == {
            "message": "mailbox does not exist",
            "type": "JobError",
        }
        assert "raise JobError" in bounced.output["traceback"]  # where it was raised


def test_runs_up_to_team_size_handlers_at_once(worker: ModuleType, dsn: str) -> None:
    running = 0
    peak = 0
    lock = threading.Lock()
    release = threading.Event()

    def slow(job: Job) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            if running == 5:
                release.set()
        release.wait(timeout=5)
        with lock:
            running -= 1

    handlers.set_handler("send-email", slow)
    worker.handler(event("schedule.json"), FakeContext())
    with Queue(dsn) as q:
        q.insert("send-email", [{"data": {"n": n}} for n in range(10)])
    result = worker.handler(event("schedule.json"), FakeContext())
    assert result["completed"] == 10
    assert peak == 5


def handlers_tracking_peaks_per_tenant() -> dict[str, int]:
    """A send-email handler that records the most jobs of each tenant (their group) running at once."""
    running: dict[str, int] = {}
    peak: dict[str, int] = {}
    lock = threading.Lock()

    def send_email(job: Job) -> None:
        group = job.data["tenant"]
        with lock:
            running[group] = running.get(group, 0) + 1
            peak[group] = max(peak.get(group, 0), running[group])
        time.sleep(0.02)  # stands in for the SMTP call: overlapping handlers would show
        with lock:
            running[group] -= 1

    handlers.set_handler("send-email", send_email)
    return peak


def test_the_declared_group_limit_holds_within_an_invocation(
    worker: ModuleType, dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """send-email declared with group_concurrency=1: one job per group at a time, though the team has five."""
    monkeypatch.setenv("JOBS_PLATFORM", "tests.runtime.sample_catalog:GROUPED")
    peak = handlers_tracking_peaks_per_tenant()
    worker.handler(event("schedule.json"), FakeContext())
    with Queue(dsn) as q:
        q.insert("send-email", [{"data": {"tenant": f"t{n % 3}"}, "group": {"id": f"t{n % 3}"}} for n in range(12)])
    result = worker.handler(event("schedule.json"), FakeContext())
    # One invocation drains them all: when every waiting job's group is full, it fetches again as
    # soon as its own finished jobs are written.
    assert (result["completed"], result["stopped"]) == (12, "empty")
    assert peak == {"t0": 1, "t1": 1, "t2": 1}


def test_the_deployments_group_limit_overrides_the_declared_one(
    worker: ModuleType, load_function: Callable[[str], ModuleType], dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GROUP_CONCURRENCY (the template parameter <Worker>GroupConcurrency) wins over the declaration."""
    monkeypatch.setenv("JOBS_PLATFORM", "tests.runtime.sample_catalog:GROUPED")
    monkeypatch.setenv("GROUP_CONCURRENCY", '{"default": 1, "tiers": {"wide": 3}}')
    worker = load_function("worker")  # a cold start reads it
    peak = handlers_tracking_peaks_per_tenant()
    with Queue(dsn) as q:
        worker.handler(event("schedule.json"), FakeContext())
        q.insert("send-email", [{"data": {"tenant": "w"}, "group": {"id": "w", "tier": "wide"}} for _ in range(9)])
    assert worker.handler(event("schedule.json"), FakeContext())["completed"] == 9
    assert peak == {"w": 3}  # the tier's 3, not the declared 1


@pytest.mark.parametrize(
    ("value", "message"),
    [("{default: 1}", "GROUP_CONCURRENCY is not JSON"), ('{"tiers": {}}', "GROUP_CONCURRENCY: group_concurrency")],
)
def test_a_bad_group_limit_stops_the_cold_start(monkeypatch: pytest.MonkeyPatch, value: str, message: str) -> None:
    from runtime.config import WorkerSettings

    with pytest.raises(ConfigurationError, match=message):
        WorkerSettings.from_env({"QUEUE_NAME": "send-email", "GROUP_CONCURRENCY": value})


def test_stops_at_the_job_cap_and_scales_out(
    worker: ModuleType,
    dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    load_function: Callable[[str], ModuleType],
    lambda_service: RecordingLambda,
) -> None:
    monkeypatch.setenv("MAX_JOBS", "20")
    monkeypatch.setenv("MAX_CONCURRENCY", "3")
    capped = load_function("worker")
    handlers.set_handler("send-email", lambda job: None)
    capped.handler(event("schedule.json"), FakeContext())
    with Queue(dsn) as q:
        q.insert("send-email", [{"data": {"n": n}} for n in range(100)])
        result = capped.handler(event("schedule.json"), FakeContext(function_name="jobs-worker-send-email"))
        assert (result["fetched"], result["stopped"]) == (20, "max_jobs")
        # A root with a backlog of 80 starts chains, at most MAX_CONCURRENCY (one takes over from it).
        assert result["workers_started"] == 3
        assert [c["FunctionName"] for c in lambda_service.calls] == ["jobs-worker-send-email"] * 3
        assert all(c["InvocationType"] == "Event" for c in lambda_service.calls)
        assert lambda_service.calls[0]["Payload"] == {"source": "scale-out", "queue": "send-email"}
        # A worker started by scale-out does not fan out: it hands over to exactly one successor.
        lambda_service.calls.clear()
        again = capped.handler(event("worker-scale-out.json"), FakeContext(function_name="jobs-worker-send-email"))
        assert again["stopped"] == "max_jobs" and again["workers_started"] == 1
        assert [c["Payload"]["source"] for c in lambda_service.calls] == ["scale-out"]
        # A root that finds another invocation at work leaves the backlog to its chains.
        lambda_service.calls.clear()
        q.fetch("send-email", 1)  # another invocation's job, still running
        busy = capped.handler(event("schedule.json"), FakeContext(function_name="jobs-worker-send-email"))
        assert busy["stopped"] == "max_jobs" and busy["workers_started"] == 0 and lambda_service.calls == []
        assert q.queue_size("send-email") == 39


def test_stops_fetching_when_time_runs_low(worker: ModuleType, dsn: str) -> None:
    calls = 0

    def handler(job: Job) -> None:
        nonlocal calls
        calls += 1

    handlers.set_handler("send-email", handler)
    worker.handler(event("schedule.json"), FakeContext())
    with Queue(dsn) as q:
        q.insert("send-email", [{"data": n} for n in range(30)])
    # Less time left than the safety margin (1 s): nothing is fetched.
    result = worker.handler(event("schedule.json"), FakeContext(timeout_ms=500))
    assert (result["fetched"], result["stopped"], calls) == (0, "time", 0)


def test_claimed_jobs_expire_shortly_after_the_invocation(
    worker: ModuleType, dsn: str, conn: psycopg.Connection[Any]
) -> None:
    deadlines: list[Any] = []
    handlers.set_handler("send-email", lambda job: deadlines.append(job.expire_at))
    worker.handler(event("schedule.json"), FakeContext())
    with Queue(dsn) as q:
        q.send("send-email", {})  # the queue's expire_in is an hour
    context = FakeContext(timeout_ms=120_000)
    worker.handler(event("schedule.json"), context)
    (remaining,) = conn.execute("SELECT %s::timestamptz - now()", (deadlines[0],)).fetchone() or (None,)
    # invocation end (<= 120 s) + EXPIRY_MARGIN_S (60 s), far below the hour
    assert remaining is not None and remaining.total_seconds() <= 181


def test_unknown_handler_fails_the_invocation_without_touching_jobs(
    dsn: str, monkeypatch: pytest.MonkeyPatch, load_function: Callable[[str], ModuleType]
) -> None:
    monkeypatch.setenv("QUEUE_NAME", "orphan-jobs")
    orphan = load_function("worker")
    with Queue(dsn) as q:
        q.migrate()
        q.create_queue("orphan-jobs")
        q.send("orphan-jobs", {})
        with pytest.raises(LookupError, match="no handler is registered for job type 'orphan-jobs'"):
            orphan.handler(event("schedule.json"), FakeContext())
        assert q.queue_size("orphan-jobs") == 1


def test_unstorable_output_fails_only_that_job(worker: ModuleType, dsn: str) -> None:
    handlers.set_handler("send-email", lambda job: object() if job.data == 1 else {"ok": job.data})
    worker.handler(event("schedule.json"), FakeContext())
    with Queue(dsn) as q:
        q.insert("send-email", [{"data": n} for n in range(3)])
        result = worker.handler(event("schedule.json"), FakeContext())
        assert (result["completed"], result["failed"], result["retried"]) == (2, 1, 0)
        [failed] = q.find_jobs("send-email", state="failed")
        assert failed.data == 1 and "unstorable output" in failed.output["message"]


def test_a_handler_that_never_returns_cannot_hold_the_invocation(
    worker: ModuleType, dsn: str, conn: psycopg.Connection[Any]
) -> None:
    """The invocation returns within its budget; the stuck jobs are reported, expire and are retried."""
    forever = threading.Event()  # set only when the test ends, so that the stuck threads go away

    def handler(job: Job) -> None:
        if job.data["stuck"]:
            forever.wait()

    handlers.set_handler("send-email", handler)
    worker.handler(event("schedule.json"), FakeContext())
    with Queue(dsn) as q:
        q.insert("send-email", [{"data": {"stuck": n < 2}} for n in range(12)])
        started = time.monotonic()
        try:
            # 4 s to live, a safety margin of 1 s: the invocation must be back after about 3.5 s.
            result = worker.handler(event("schedule.json"), FakeContext(timeout_ms=4000))
            elapsed = time.monotonic() - started
            assert elapsed < 4.0, elapsed
            assert (result["completed"], result["unfinished"], result["stopped"]) == (10, 2, "time")
            stuck = conn.execute(
                "SELECT max(expire_at) - now() FROM jobqueue.job WHERE name = 'send-email' AND state = 'active'"
            ).fetchone()
            assert stuck is not None and stuck[0].total_seconds() <= 61  # the invocation's end + EXPIRY_MARGIN_S
            assert q.expire(now=datetime.now(UTC) + timedelta(seconds=120)) == (2, 0)
        finally:
            forever.set()


def test_claims_no_more_than_the_team_can_run(
    worker: ModuleType, dsn: str, monkeypatch: pytest.MonkeyPatch, load_function: Callable[[str], ModuleType]
) -> None:
    """With slow handlers the worker holds about one job per thread, not a whole batch."""
    monkeypatch.setenv("BATCH_SIZE", "100")
    monkeypatch.setenv("TEAM_SIZE", "2")
    big_batches = load_function("worker")
    started = 0
    lock = threading.Lock()
    too_many: list[tuple[int, int]] = []
    with Queue(dsn) as observer:

        def slow(job: Job) -> None:
            nonlocal started
            with lock:
                started += 1
                waiting = observer.queue_size("send-email", states=["created"])
                # Claimed so far: at most what has started, plus one per thread and one fetched ahead.
                if 20 - waiting > started + 3:
                    too_many.append((started, 20 - waiting))
            time.sleep(0.05)

        handlers.set_handler("send-email", slow)
        big_batches.handler(event("schedule.json"), FakeContext())
        observer.insert("send-email", [{"data": n} for n in range(20)])
        result = big_batches.handler(event("schedule.json"), FakeContext())
    assert result["completed"] == 20
    assert too_many == []  # (jobs started, jobs claimed) whenever more were claimed than the team can use


def test_metrics_are_exact_and_printed_once(worker: ModuleType, dsn: str, capfd: pytest.CaptureFixture[str]) -> None:
    handlers.set_handler("send-email", lambda job: (_ for _ in ()).throw(ValueError("no")) if job.data < 3 else None)
    worker.handler(event("schedule.json"), FakeContext())
    with Queue(dsn) as q:
        q.insert("send-email", [{"data": n, "retry_limit": n % 2} for n in range(250)])
    capfd.readouterr()
    result = worker.handler(event("schedule.json"), FakeContext())
    blobs = [json.loads(line) for line in capfd.readouterr().out.splitlines() if '"_aws"' in line]
    assert len(blobs) == 1, blobs  # one EMF document per invocation, whatever the number of jobs
    [blob] = blobs
    assert (blob["JobsCompleted"], blob["JobsRetried"], blob["JobsFailed"]) == ([247], [1], [2])
    assert (result["completed"], result["retried"], result["failed"]) == (247, 1, 2)
    declared = {m["Name"] for m in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {"HandlerDurationP50", "HandlerDurationP95", "HandlerDurationP99", "EnqueueToStartLatencyP95"} <= declared
    assert all(len(blob[name]) == 1 for name in declared)  # aggregated: one value each, not one per job


def test_a_no_op_drain_logs_under_two_bytes_per_job(
    worker: ModuleType, dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    handlers.set_handler("send-email", lambda job: None)
    worker.handler(event("schedule.json"), FakeContext())
    with Queue(dsn) as q:
        q.insert("send-email", [{"data": {"to": "someone@example.com"}} for _ in range(2000)])
    log = io.StringIO()
    stream = logger.registered_handler.setStream(log)  # the JSON log lines (EMF blobs are printed)
    logger.setLevel("INFO")
    capsys.readouterr()
    drained = invocations = 0
    try:
        while True:
            result = worker.handler(event("schedule.json"), FakeContext())
            drained, invocations = drained + result["completed"], invocations + 1
            if result["stopped"] == "empty":
                break
    finally:
        logger.registered_handler.setStream(stream)
    printed = capsys.readouterr().out
    assert drained == 2000 and invocations == 3  # MAX_JOBS 1000 per invocation
    assert log.getvalue().count('"message":"drained"') == 3  # the operator's line is still there
    assert printed.count('"_aws"') == 3  # and one EMF blob per invocation
    assert (len(log.getvalue()) + len(printed)) / drained < 2


def test_metrics_added_from_handler_threads_are_each_printed_once(capsys: pytest.CaptureFixture[str]) -> None:
    """A handler may add metrics of its own: from many threads at once, none is lost or printed twice."""
    from runtime.observability import metrics

    def add(n: int) -> None:
        for _ in range(n):
            metrics.add_metric(name="HandlerMade", unit="Count", value=1)

    threads = [threading.Thread(target=add, args=(997,)) for _ in range(8)]
    capsys.readouterr()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    metrics.flush_metrics()
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    # Each value once: a lost value or a blob printed twice would change the sum.
    assert sum(len(blob["HandlerMade"]) for blob in blobs) == 8 * 997
    assert all(len(blob["HandlerMade"]) <= 100 for blob in blobs)


def test_jobs_claimed_but_never_started_are_handed_back_without_an_attempt(
    dsn: str, monkeypatch: pytest.MonkeyPatch, load_function: Callable[[str], ModuleType]
) -> None:
    """A warm worker that learnt fast handlers claims a full batch; when they turn slow, what it
    could not start before its end is queued again at once, its attempt not counted."""
    monkeypatch.setenv("QUEUE_NAME", "send-email")
    monkeypatch.setenv("BATCH_SIZE", "50")
    monkeypatch.setenv("TEAM_SIZE", "2")
    monkeypatch.setenv("SAFETY_MARGIN_MS", "1000")
    warm = load_function("worker")
    handlers.set_handler("send-email", lambda job: None)
    warm.handler(event("schedule.json"), FakeContext())
    with Queue(dsn) as q:
        q.insert("send-email", [{"data": n} for n in range(40)])
        assert warm.handler(event("schedule.json"), FakeContext())["completed"] == 40  # learnt: fast
        q.insert("send-email", [{"data": n} for n in range(40)])
        handlers.set_handler("send-email", lambda job: time.sleep(0.4))
        result = warm.handler(event("schedule.json"), FakeContext(timeout_ms=2500))
        assert result["stopped"] == "time" and result["released"] > 0
        assert result["completed"] + result["released"] + result["unfinished"] == result["fetched"]
        waiting = q.find_jobs("send-email", state="retry", limit=100)
        assert len(waiting) == result["released"]
        assert all(job.retry_count == 0 and job.started_on is None for job in waiting)
        assert q.queue_size("send-email") == 40 - result["completed"] - result["unfinished"]


def test_a_handler_that_snoozes_uses_no_attempt_and_stops_at_the_limit(
    load_function: Callable[[str], ModuleType], dsn: str, monkeypatch: pytest.MonkeyPatch, conn: psycopg.Connection[Any]
) -> None:
    monkeypatch.setenv("QUEUE_NAME", "send-email")
    monkeypatch.setenv("MAX_SNOOZES", "2")
    worker = load_function("worker")
    from jobqueue import Snooze

    def not_yet(job: Job) -> None:
        raise Snooze(30)

    handlers.set_handler("send-email", not_yet)
    worker.handler(event("schedule.json"), FakeContext())  # registers the queues
    with Queue(dsn) as q:
        job_id = str(q.send("send-email", {"to": "x"}))
    for expected in ("retry", "retry", "failed"):
        result = worker.handler(event("schedule.json"), FakeContext())
        row = conn.execute("SELECT state::text, retry_count, snoozes FROM jobqueue.job WHERE id = %s", (job_id,))
        state, retry_count, snoozes = row.fetchone()  # type: ignore[misc]
        assert state == expected and retry_count == 0
        conn.execute("UPDATE jobqueue.job SET start_after = now() WHERE id = %s", (job_id,))
    assert (result["snoozed"], result["failed"], snoozes) == (0, 1, 2)  # the third snooze was one too many


def test_a_paused_queues_worker_fetches_nothing_and_returns_at_once(worker: ModuleType, dsn: str) -> None:
    handlers.set_handler("send-email", lambda job: None)
    worker.handler(event("schedule.json"), FakeContext())
    with Queue(dsn) as q:
        q.insert("send-email", [{"data": {"n": n}} for n in range(5)])
        q.pause_queue("send-email")
        result = worker.handler(event("schedule.json"), FakeContext())
        assert (result["fetched"], result["stopped"]) == (0, "empty")
        assert q.queue_size("send-email") == 5
        q.resume_queue("send-email")
    assert worker.handler(event("schedule.json"), FakeContext())["completed"] == 5


def test_a_failed_attempt_keeps_the_handlers_traceback(worker: ModuleType, dsn: str) -> None:
    def send_email(job: Job) -> None:
        raise ConnectionError("SES timed out")  # this line is in the traceback

    handlers.set_handler("send-email", send_email)
    worker.handler(event("schedule.json"), FakeContext())  # registers the queues
    with Queue(dsn) as q:
        job_id = str(q.send("send-email", {"to": "x"}))
        worker.handler(event("schedule.json"), FakeContext())
        job = q.get_job(job_id)
    assert job is not None and job.errors is not None
    [error] = job.errors
    assert (error["attempt"], error["type"], error["message"]) == (1, "ConnectionError", "SES timed out")
    assert 'raise ConnectionError("SES timed out")' in error["traceback"]


def test_a_cancelled_job_is_told_to_stop_and_never_completed(
    worker: ModuleType, dsn: str, conn: psycopg.Connection[Any]
) -> None:
    seen: list[bool] = []

    def long_task(job: Job) -> str:
        deadline = time.monotonic() + 20
        while not job.cancel_requested and time.monotonic() < deadline:
            time.sleep(0.05)  # one step of a long task
        seen.append(job.cancel_requested)
        return "stopped early"

    handlers.set_handler("send-email", long_task)
    worker.handler(event("schedule.json"), FakeContext())
    with Queue(dsn) as q:
        job_id = str(q.send("send-email", {"to": "x"}))

        def cancel_once_running() -> None:
            with Queue(dsn) as other:
                while other.get_job(job_id).state != "active":  # type: ignore[union-attr]
                    time.sleep(0.02)
                other.cancel("send-email", job_id)

        canceller = threading.Thread(target=cancel_once_running)
        canceller.start()
        started = time.monotonic()
        result = worker.handler(event("schedule.json"), FakeContext())
        canceller.join()
        job = q.get_job(job_id)
    assert seen == [True] and time.monotonic() - started < 10  # noticed within a check or two
    assert result["completed"] == 0 and job is not None and job.state == "cancelled"
    assert job.output is None  # its late result was not written over the cancellation


def test_a_handler_is_told_when_its_invocations_time_is_nearly_over(worker: ModuleType, dsn: str) -> None:
    def long_task(job: Job) -> str:
        while not job.cancel_requested:
            time.sleep(0.05)
        return "saved a checkpoint"

    handlers.set_handler("send-email", long_task)
    worker.handler(event("schedule.json"), FakeContext())
    with Queue(dsn) as q:
        job_id = str(q.send("send-email", {"to": "x"}))
        result = worker.handler(event("schedule.json"), FakeContext(timeout_ms=3000))  # margin: 1 s
        assert result["completed"] == 1
        assert q.get_job(job_id).output == "saved a checkpoint"  # type: ignore[union-attr]


def _rate_limited_worker(
    load_function: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch, limit: int, period: int
) -> ModuleType:
    monkeypatch.setenv("QUEUE_NAME", "send-email")
    monkeypatch.setenv("BATCH_SIZE", "10")
    monkeypatch.setenv("TEAM_SIZE", "5")
    monkeypatch.setenv("SAFETY_MARGIN_MS", "1000")
    monkeypatch.setenv("JOBS_QUEUE_OVERRIDES", json.dumps({"rate_limit": {"limit": limit, "period": period}}))
    handlers.set_handler("send-email", lambda job: None)
    return load_function("worker")


def test_a_rate_limited_worker_waits_for_room_while_its_time_allows(
    load_function: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch, dsn: str
) -> None:
    worker = _rate_limited_worker(load_function, monkeypatch, limit=2, period=1)
    worker.handler(event("schedule.json"), FakeContext())  # cold start: the queue gets its limit
    with Queue(dsn) as q:
        q.insert("send-email", [{"data": n} for n in range(5)])
        result = worker.handler(event("schedule.json"), FakeContext())
        assert (result["completed"], result["stopped"]) == (5, "empty")
        assert result["rate_limited_ms"] >= 1000  # two full windows waited out, not fetched against
        starts = sorted(j.started_on for j in q.find_jobs("send-email", state="completed", limit=10))
    assert all(starts[n + 2] - starts[n] >= timedelta(seconds=1) for n in range(len(starts) - 2))


def test_a_rate_limited_worker_leaves_the_jobs_when_the_window_outlasts_its_time(
    load_function: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch, dsn: str
) -> None:
    worker = _rate_limited_worker(load_function, monkeypatch, limit=2, period=3600)
    worker.handler(event("schedule.json"), FakeContext())
    with Queue(dsn) as q:
        q.insert("send-email", [{"data": n} for n in range(5)])
    result = worker.handler(event("schedule.json"), FakeContext(timeout_ms=30_000))
    assert (result["completed"], result["stopped"]) == (2, "rate_limit")
    assert result["elapsed_ms"] < 10_000  # it returned: no fetching against a full window until the end
    with Queue(dsn) as q:
        assert q.queue_size("send-email") == 3


def test_a_rate_limited_worker_with_room_but_nothing_it_can_claim_stops_soon(
    load_function: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch, dsn: str, conn: psycopg.Connection[Any]
) -> None:
    """The window has room and jobs are ready, but another session holds them (its claim not yet
    committed): the worker fetches again a few times, then stops, instead of spinning until its end."""
    worker = _rate_limited_worker(load_function, monkeypatch, limit=100, period=60)
    worker.handler(event("schedule.json"), FakeContext())
    with Queue(dsn) as q:
        q.insert("send-email", [{"data": n} for n in range(3)])
    with conn.transaction():
        conn.execute("SELECT id FROM jobqueue.job WHERE name = 'send-email' FOR UPDATE").fetchall()
        result = worker.handler(event("schedule.json"), FakeContext(timeout_ms=30_000))
    assert (result["fetched"], result["stopped"]) == (0, "empty")
    assert result["elapsed_ms"] < 5_000
    assert worker.handler(event("schedule.json"), FakeContext())["completed"] == 3  # let go: taken at once


def test_a_step_that_outlives_the_invocation_resumes_without_running_the_steps_before_it(
    worker: ModuleType, dsn: str, conn: psycopg.Connection[Any]
) -> None:
    """Three steps; on the first attempt the second outlives the invocation's budget. The next
    attempt completes the job without running the first step again."""
    calls: list[str] = []
    forever = threading.Event()  # set only when the test ends, so that the stuck thread goes away

    def provision(job: Job) -> str:
        slot = job.step("reserve", lambda: calls.append("reserve") or 7)

        def create() -> str:
            calls.append(f"create-{job.attempt}")
            if job.attempt == 1:
                forever.wait()  # the host agent hangs: past the invocation's end
            return f"pod on slot {slot}"

        pod = job.step("create", create)
        registered = job.step("register", lambda: calls.append("register") or "registered")
        return f"{pod}, {registered}"

    handlers.set_handler("send-email", provision)
    worker.handler(event("schedule.json"), FakeContext())
    with Queue(dsn) as q:
        job_id = str(q.send("send-email", {"to": "x"}, retry_limit=3))
        try:
            first = worker.handler(event("schedule.json"), FakeContext(timeout_ms=3000))
            assert (first["completed"], first["unfinished"]) == (0, 1)
            # Its claim runs out (backdated here instead of waited for) and it is retried at once.
            conn.execute("UPDATE jobqueue.job SET expire_at = now() - interval '1 second' WHERE id = %s", (job_id,))
            assert q.expire() == (1, 0)
            conn.execute("UPDATE jobqueue.job SET start_after = now() WHERE id = %s", (job_id,))
            second = worker.handler(event("schedule.json"), FakeContext())
        finally:
            forever.set()
        assert second["completed"] == 1
        done = q.get_job(job_id)
        assert done is not None and done.output == "pod on slot 7, registered"
        assert calls == ["reserve", "create-1", "create-2", "register"]
        assert [(s["name"], s["attempt"]) for s in done.steps or []] == [("reserve", 1), ("create", 2), ("register", 2)]


def test_a_handlers_progress_is_seen_while_it_runs_and_its_last_value_kept(worker: ModuleType, dsn: str) -> None:
    seen = threading.Event()

    def copy_files(job: Job) -> str:
        for done in range(1, 51):
            job.set_progress({"done": done, "total": 100})
        seen.wait(timeout=20)  # until the test has read the progress of the running job
        for done in range(51, 101):
            job.set_progress({"done": done, "total": 100})
        return "copied"

    handlers.set_handler("send-email", copy_files)
    worker.handler(event("schedule.json"), FakeContext())
    with Queue(dsn) as q:
        job_id = str(q.send("send-email", {"to": "x"}))
        runner = threading.Thread(target=worker.handler, args=(event("schedule.json"), FakeContext()))
        runner.start()
        try:
            deadline = time.monotonic() + 20
            progress = None
            while time.monotonic() < deadline and progress is None:
                progress = q.get_job(job_id).progress  # type: ignore[union-attr]
                time.sleep(0.05)
            assert progress == {"done": 50, "total": 100}  # the latest value set, written within a second
        finally:
            seen.set()
            runner.join()
        done = q.get_job(job_id)
        assert done is not None and done.output == "copied" and done.progress == {"done": 100, "total": 100}


def test_a_transactional_handlers_writes_and_its_jobs_completion_commit_together(
    worker: ModuleType, dsn: str, conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """send-email declared transactional: what the handler writes through job.connection commits
    with the completion; a handler that fails leaves no write behind, and its retry runs again."""
    monkeypatch.setenv("JOBS_PLATFORM", "tests.runtime.sample_catalog:TRANSACTIONAL")
    conn.execute("CREATE TABLE public.sent (job_id uuid PRIMARY KEY, recipient text NOT NULL)")

    def send_email(job: Job) -> dict[str, str]:
        assert job.connection is not None and job.connection.info.transaction_status.name == "INTRANS"
        job.connection.execute("INSERT INTO public.sent VALUES (%s, %s)", (job.id, job.data["to"]))
        job.set_progress({"done": 1, "total": 1})
        if job.data["to"] == "flaky@example.com" and job.attempt == 1:
            raise ConnectionError("SES timed out")  # after the write: it must be rolled back
        return {"messageId": f"m-{job.data['to']}"}

    handlers.set_handler("send-email", send_email)
    worker.handler(event("schedule.json"), FakeContext())
    with Queue(dsn) as q:
        recipients = [f"user{n}@example.com" for n in range(8)] + ["flaky@example.com"]
        q.insert("send-email", [{"data": {"to": r}, "retry_limit": 2} for r in recipients])
        first = worker.handler(event("schedule.json"), FakeContext())
        assert (first["completed"], first["retried"]) == (8, 1)
        sent = {r for (r,) in conn.execute("SELECT recipient FROM public.sent")}
        assert sent == set(recipients[:8])  # the flaky one's write went with its failure
        done = q.find_jobs("send-email", state="completed", limit=100)
        assert {j.output["messageId"] for j in done} == {f"m-{r}" for r in recipients[:8]}
        assert {str(j.progress) for j in done} == {"{'done': 1, 'total': 1}"}  # written in the same transaction
        conn.execute("UPDATE jobqueue.job SET start_after = now() WHERE state = 'retry'")
        second = worker.handler(event("schedule.json"), FakeContext())
        assert second["completed"] == 1
        assert conn.execute("SELECT count(*) FROM public.sent").fetchone() == (9,)


def test_a_transactional_handlers_writes_roll_back_when_its_attempt_ended_meanwhile(
    worker: ModuleType, dsn: str, conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job was cancelled while its handler ran: the completion finds no active attempt, and the
    handler's writes are rolled back with it (they would otherwise count twice, or for nothing)."""
    monkeypatch.setenv("JOBS_PLATFORM", "tests.runtime.sample_catalog:TRANSACTIONAL")
    conn.execute("CREATE TABLE public.sent (job_id uuid PRIMARY KEY)")

    def send_email(job: Job) -> None:
        job.connection.execute("INSERT INTO public.sent VALUES (%s)", (job.id,))
        with Queue(dsn) as other:
            other.cancel("send-email", [job.id])  # an operator, meanwhile

    handlers.set_handler("send-email", send_email)
    worker.handler(event("schedule.json"), FakeContext())
    with Queue(dsn) as q:
        job_id = str(q.send("send-email", {"to": "x"}))
        result = worker.handler(event("schedule.json"), FakeContext())
        assert result["completed"] == 0
        assert q.get_job(job_id).state == "cancelled"  # type: ignore[union-attr]
    assert conn.execute("SELECT count(*) FROM public.sent").fetchone() == (0,)


def test_a_transactional_handlers_steps_roll_back_with_its_writes(
    worker: ModuleType, dsn: str, conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step's record is written in the handler's transaction: when the handler fails, the step's
    writes and its record go together, and the retry runs the step again."""
    monkeypatch.setenv("JOBS_PLATFORM", "tests.runtime.sample_catalog:TRANSACTIONAL")
    conn.execute("CREATE TABLE public.sent (job_id uuid, attempt integer)")
    runs: list[int] = []

    def send_email(job: Job) -> None:
        def record() -> int:
            runs.append(job.attempt)
            job.connection.execute("INSERT INTO public.sent VALUES (%s, %s)", (job.id, job.attempt))
            return job.attempt

        job.step("record", record)
        if job.attempt == 1:
            raise ConnectionError("SES timed out")

    handlers.set_handler("send-email", send_email)
    worker.handler(event("schedule.json"), FakeContext())
    with Queue(dsn) as q:
        job_id = str(q.send("send-email", {"to": "x"}, retry_limit=1))
        assert worker.handler(event("schedule.json"), FakeContext())["retried"] == 1
        assert q.get_job(job_id).steps is None  # type: ignore[union-attr]
        conn.execute("UPDATE jobqueue.job SET start_after = now() WHERE id = %s", (job_id,))
        assert worker.handler(event("schedule.json"), FakeContext())["completed"] == 1
        assert [s["attempt"] for s in q.get_job(job_id).steps or []] == [2]  # type: ignore[union-attr]
    assert runs == [1, 2]
    assert conn.execute("SELECT attempt FROM public.sent").fetchall() == [(2,)]
