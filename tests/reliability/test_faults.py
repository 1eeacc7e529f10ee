"""Faults: the database restarting or unreachable, secrets kept out of logs.

| fault                                   | outcome checked here                                          |
|-----------------------------------------|---------------------------------------------------------------|
| Postgres restarted mid-drain            | the invocation fails with a clear error; the next one resumes; |
|                                         | every job completed, none lost or stuck                        |
| database unreachable at cold start      | DatabaseUnavailableError naming host and port, no password,   |
|                                         | nothing written                                               |
| secrets in logs                         | DB password, API token, host API key never printed            |
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from types import ModuleType

import pytest

from jobqueue import DatabaseUnavailableError, Job, Queue
from local.embedded_postgres import EmbeddedPostgres, free_port, temporary_postgres
from runtime import bootstrap, handlers
from tests.netproxy import Proxy
from tests.runtime.conftest import API_TOKEN, FakeContext, event

pytestmark = pytest.mark.slow


@pytest.fixture
def own_server() -> Iterator[EmbeddedPostgres]:
    """A server of this test's own: it is restarted, which the shared one must not be."""
    with temporary_postgres() as server:
        yield server


def test_postgres_restart_mid_drain_loses_nothing(
    own_server: EmbeddedPostgres,
    load_function: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = own_server.url()
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("QUEUE_NAME", "send-email")
    monkeypatch.setenv("EXPIRY_MARGIN_S", "0")
    monkeypatch.setenv("SAFETY_MARGIN_MS", "500")
    worker = load_function("worker")
    with Queue(url) as setup:
        setup.migrate()
        setup.create_queue("send-email")
        ids = setup.insert("send-email", [{"data": n} for n in range(60)])
    done: list[int] = []
    restarted = threading.Event()

    def handler(job: Job) -> None:
        if job.data == 25 and not restarted.is_set():
            restarted.set()
            own_server.restart()  # the database goes away under the worker
        done.append(job.data)

    handlers.set_handler("send-email", handler)
    with pytest.raises(DatabaseUnavailableError, match="lost the database connection"):
        worker.handler(event("schedule.json"), FakeContext(timeout_ms=5_000))
    assert "database unavailable; this invocation stops" in caplog.text
    # The jobs of the interrupted batch stay claimed until their invocation's end, then expire.
    with Queue(url) as q:
        assert q.expire(now=datetime.now(UTC) + timedelta(seconds=10))[0] >= 1
        q.db.connection().execute("UPDATE jobqueue.job SET start_after = now() WHERE state = 'retry'")
    result = worker.handler(event("schedule.json"), FakeContext())  # the next invocation reconnects
    assert result["stopped"] == "empty"
    with Queue(url) as q:
        states = dict(q.db.connection().execute("SELECT state::text, count(*) FROM jobqueue.job GROUP BY 1").fetchall())
        assert states == {"completed": 60}
        assert sorted(j.id for j in q.find_jobs("send-email", limit=100)) == sorted(ids)
    assert set(done) == set(range(60))  # every job ran; some twice (at least once, as documented)


def test_database_unreachable_at_cold_start(
    load_function: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    monkeypatch.setenv("DATABASE_URL", f"postgresql://app:db-pass-123@127.0.0.1:{port}/jobs")
    monkeypatch.setenv("QUEUE_NAME", "send-email")
    monkeypatch.setenv("CONNECT_TIMEOUT", "2")
    worker = load_function("worker")
    with pytest.raises(DatabaseUnavailableError, match=f"cannot connect to the database .*port={port}") as info:
        worker.handler(event("schedule.json"), FakeContext())
    assert "db-pass-123" not in str(info.value)
    out, err = capfd.readouterr()
    assert "db-pass-123" not in out + err


def test_secrets_never_reach_the_logs(
    dsn: str,
    load_function: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    password = "pg-secret-pass-9f1"
    host_key = "host-key-7c2e"
    parts = dict(item.split("=", 1) for item in dsn.split())
    # The test server trusts local connections: the password travels but is not checked.
    monkeypatch.setenv(
        "DATABASE_URL", f"postgresql://{parts['user']}:{password}@{parts['host']}:{parts['port']}/{parts['dbname']}"
    )
    monkeypatch.setenv("HOST_API_KEY", host_key)
    monkeypatch.setenv("QUEUE_NAME", "send-email")
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    worker = load_function("worker")

    def leaky(job: Job) -> None:
        raise RuntimeError("the SMTP relay said no")

    handlers.set_handler("send-email", leaky)
    worker.handler(event("schedule.json"), FakeContext())
    with Queue(dsn) as q:
        q.send("send-email", {"to": "a@b.c"})
    worker.handler(event("schedule.json"), FakeContext())
    api = load_function("api")
    for token in (API_TOKEN, "wrong", None):
        request = event("api-failed.json")
        request["headers"].pop("authorization", None)
        if token:
            request["headers"]["authorization"] = f"Bearer {token}"
        api.handler(request, FakeContext())
    scheduler = load_function("scheduler")
    scheduler.handler(event("schedule.json"), FakeContext())
    out, err = capfd.readouterr()
    logged = out + err + caplog.text
    assert "job failed" in logged  # the logs were captured
    for secret in (password, API_TOKEN, host_key):
        assert secret not in logged, f"{secret!r} appeared in the logs"
    assert json.loads(out.splitlines()[0])  # structured (JSON) log lines


def test_a_network_stall_mid_drain_ends_the_invocation_on_time_and_loses_nothing(
    dsn: str,
    load_function: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The database's network stalls without closing (a hung pooler): the invocation still ends a
    quarter of its safety margin before its own end, and once the network is back every job is
    completed exactly once."""
    parts = dict(item.split("=", 1) for item in dsn.split())
    with Proxy(parts["host"], int(parts["port"])) as proxy:
        monkeypatch.setenv("DATABASE_URL", f"postgresql://{parts['user']}@127.0.0.1:{proxy.port}/{parts['dbname']}")
        monkeypatch.setenv("QUEUE_NAME", "send-email")
        monkeypatch.setenv("EXPIRY_MARGIN_S", "0")
        monkeypatch.setenv("SAFETY_MARGIN_MS", "2000")
        worker = load_function("worker")
        with Queue(dsn) as setup:
            setup.create_queue("send-email")
            ids = setup.insert("send-email", [{"data": n} for n in range(60)])
        runs: list[int] = []

        def handler(job: Job) -> None:
            if job.data == 25 and not runs.count(25):
                proxy.stall()  # from here on nothing reaches the database, and nothing says so
            runs.append(job.data)

        handlers.set_handler("send-email", handler)
        context = FakeContext(timeout_ms=6_000)
        with pytest.raises(DatabaseUnavailableError):
            worker.handler(event("schedule.json"), context)
        assert context.get_remaining_time_in_millis() >= 2_000 / 4 - 300  # a quarter of the margin, give or take
        assert "database unavailable; this invocation stops" in caplog.text
        proxy.resume()
    # The network is back. What the stalled invocation claimed expires and is retried.
    with Queue(dsn) as q:
        q.expire(now=datetime.now(UTC) + timedelta(seconds=10))
        q.db.connection().execute("UPDATE jobqueue.job SET start_after = now() WHERE state = 'retry'")
        monkeypatch.setenv(
            "DATABASE_URL", f"postgresql://{parts['user']}@{parts['host']}:{parts['port']}/{parts['dbname']}"
        )
        bootstrap.reset()  # a new container, straight to the database
        result = worker.handler(event("schedule.json"), FakeContext())
        assert result["stopped"] == "empty"
        completed = (
            q.db.connection()
            .execute("SELECT id::text, count(*) FROM jobqueue.job WHERE state = 'completed' GROUP BY 1")
            .fetchall()
        )
        assert sorted(job_id for job_id, _ in completed) == sorted(ids)  # every job completed, each once
        assert {count for _, count in completed} == {1}
    assert set(runs) == set(range(60))  # every job ran; some twice (at least once, as documented)


@pytest.mark.parametrize("function", ["api", "scheduler", "maintenance"])
def test_a_network_stall_ends_every_function_on_time(
    dsn: str, load_function: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch, function: str
) -> None:
    """The API answers 503 within its invocation; the scheduler and maintenance end with
    DatabaseUnavailableError before their invocation does, however long the network stalls."""
    parts = dict(item.split("=", 1) for item in dsn.split())
    with Proxy(parts["host"], int(parts["port"])) as proxy:
        monkeypatch.setenv("DATABASE_URL", f"postgresql://{parts['user']}@127.0.0.1:{proxy.port}/{parts['dbname']}")
        monkeypatch.setenv("SAFETY_MARGIN_MS", "2000")
        module = load_function(function)
        warm = event("api-health.json") if function == "api" else event("schedule.json")
        module.handler(warm, FakeContext(timeout_ms=30_000))  # a warm container: connected, migrated
        proxy.stall()
        context = FakeContext(timeout_ms=4_000)
        if function == "api":
            response = module.handler(event("api-health.json"), context)
            assert response["statusCode"] == 503 and "unavailable" in response["body"]
        else:
            with pytest.raises(DatabaseUnavailableError):
                module.handler(event("schedule.json"), context)
        assert context.get_remaining_time_in_millis() > 0  # it ended before its invocation did
        proxy.resume()
