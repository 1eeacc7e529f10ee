"""Bad input: each gives a clear error that names the problem, and changes nothing.

| input                                             | expected error                                  |
|---------------------------------------------------|-------------------------------------------------|
| queue name with quotes / SQL                      | InvalidNameError "invalid queue name"           |
| schema name with quotes / SQL                     | InvalidNameError "invalid schema name"          |
| unknown queue                                     | UnknownQueueError "unknown queue"               |
| data not JSON-serialisable / NaN / NUL / > 1 MiB  | PayloadError                                    |
| priority 10**9, "high"; retry_limit -1, 10**6     | InvalidOptionError naming the option and bounds |
| retry_delay -5; expire_in 0                       | InvalidOptionError                              |
| start_after "tomorrow", naive time, -1 s          | InvalidOptionError                              |
| invalid cron / time zone                          | InvalidCronError / InvalidTimezoneError         |
| malformed DATABASE_URL                            | ConfigurationError                              |
| API: malformed JSON, unknown id, bad credentials  | 400 / 404 / 401 with a JSON error               |
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from types import ModuleType
from typing import Any

import psycopg
import pytest

from jobqueue import (
    ConfigurationError,
    InvalidCronError,
    InvalidNameError,
    InvalidOptionError,
    InvalidTimezoneError,
    PayloadError,
    Queue,
    UnknownQueueError,
)
from tests.runtime.conftest import FakeContext, event

INJECTION = "q'; DROP TABLE jobqueue.job; --"

QUEUE_CASES: list[tuple[str, Callable[[Queue], Any], type[Exception], str]] = [
    ("queue name with SQL", lambda q: q.send(INJECTION, {}), InvalidNameError, "invalid queue name"),
    ("queue name with quotes", lambda q: q.create_queue('a"b'), InvalidNameError, "invalid queue name"),
    ("unknown queue", lambda q: q.send("nope", {}), UnknownQueueError, "unknown queue 'nope'"),
    ("data not JSON", lambda q: q.send("q", {"x": object()}), PayloadError, "not JSON-serialisable"),
    ("data with NaN", lambda q: q.send("q", float("nan")), PayloadError, "not JSON-serialisable"),
    ("data with NUL", lambda q: q.send("q", "a\x00b"), PayloadError, "NUL"),
    ("data over 1 MiB", lambda q: q.send("q", "x" * 1_100_000), PayloadError, "over the limit of 1048576 bytes"),
    ("absurd priority", lambda q: q.send("q", {}, priority=10**9), InvalidOptionError, "priority must be between"),
    (
        "priority not a number",
        lambda q: q.send("q", {}, priority="high"),
        InvalidOptionError,
        "priority must be an integer",
    ),
    (
        "negative retry limit",
        lambda q: q.send("q", {}, retry_limit=-1),
        InvalidOptionError,
        "retry_limit must be between 0",
    ),
    (
        "absurd retry limit",
        lambda q: q.send("q", {}, retry_limit=10**6),
        InvalidOptionError,
        "retry_limit must be between",
    ),
    ("negative delay", lambda q: q.send("q", {}, retry_delay=-5), InvalidOptionError, "retry_delay must be between"),
    ("zero expiry", lambda q: q.send("q", {}, expire_in=0), InvalidOptionError, "expire_in must be between 1"),
    ("start_after words", lambda q: q.send("q", {}, start_after="tomorrow"), InvalidOptionError, "not an ISO 8601"),
    ("start_after naive", lambda q: q.send("q", {}, start_after=datetime(2030, 1, 1)), InvalidOptionError, "time zone"),
    ("start_after negative", lambda q: q.send("q", {}, start_after=-1), InvalidOptionError, "between 0"),
    (
        "batch of bad jobs",
        lambda q: q.insert("q", [{"data": 1}, {"data": 2, "priority": "x"}]),
        InvalidOptionError,
        "priority",
    ),
    ("invalid cron", lambda q: q.schedule("q", "every day"), InvalidCronError, "expected 5 fields"),
    (
        "invalid time zone",
        lambda q: q.schedule("q", "0 * * * *", tz="Moon/Base"),
        InvalidTimezoneError,
        "unknown time zone",
    ),
]


@pytest.mark.parametrize(("case", "call", "error", "message"), QUEUE_CASES, ids=[c[0] for c in QUEUE_CASES])
def test_bad_queue_input(
    queue: Queue,
    conn: psycopg.Connection[Any],
    case: str,
    call: Callable[[Queue], Any],
    error: type[Exception],
    message: str,
) -> None:
    queue.create_queue("q")
    before = conn.execute(
        "SELECT (SELECT count(*) FROM jobqueue.job), (SELECT count(*) FROM jobqueue.schedule)"
    ).fetchone()
    with pytest.raises(error, match=message):
        call(queue)
    after = conn.execute(
        "SELECT (SELECT count(*) FROM jobqueue.job), (SELECT count(*) FROM jobqueue.schedule)"
    ).fetchone()
    assert before == after
    assert conn.execute("SELECT to_regclass('jobqueue.job') IS NOT NULL").fetchone() == (True,)


@pytest.mark.parametrize("schema", ['x"; DROP SCHEMA public CASCADE; --', "public; select 1", "Jobs", "a b"])
def test_bad_schema_names(dsn: str, schema: str) -> None:
    with pytest.raises(InvalidNameError, match="invalid schema name"):
        Queue(dsn, schema=schema)


@pytest.mark.parametrize(
    "url", ["", "mysql://u@h/db", "postgresql://u@h:port/db", "host=h port=99999", "not a url at all"]
)
def test_malformed_database_url(url: str) -> None:
    with pytest.raises(ConfigurationError, match="database URL"):
        Queue(url)


@pytest.mark.parametrize(
    ("name", "change", "status", "message"),
    [
        ("api-enqueue.json", {"body": "{broken"}, 400, "not valid JSON"),
        ("api-get-job.json", {"rawPath": "/api/jobs/01a221cc-a803-7b0d-b34b-9d342cafd700"}, 404, "no job"),
        ("api-get-job.json", {"rawPath": "/api/jobs/'%20OR%201=1"}, 400, "path.id: Input should be a valid UUID"),
        ("api-health.json", {"headers": {}}, 401, "authentication required"),
        ("api-health.json", {"headers": {"authorization": "Bearer nope"}}, 401, "invalid token"),
        ("api-health.json", {"headers": {"authorization": "Basic dXNlcjpwYXNz"}}, 401, "authentication required"),
    ],
)
def test_bad_api_requests(
    load_function: Callable[[str], ModuleType], name: str, change: dict[str, Any], status: int, message: str
) -> None:
    api = load_function("api")
    request = event(name)
    for key, value in change.items():
        request[key] = value
        if key == "rawPath":
            request["requestContext"]["http"]["path"] = value
    response = api.handler(request, FakeContext())
    assert response["statusCode"] == status
    assert message in json.loads(response["body"])["error"]
