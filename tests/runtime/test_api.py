"""The API function: every route, authentication, malformed requests."""

from __future__ import annotations

import base64
import copy
import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any
from urllib.parse import quote

import pytest

from jobqueue import Queue
from tests.runtime.conftest import API_TOKEN, FakeContext, RecordingLambda, event

REFUSED = "the policy of queue {queue!r} refused the job: one with its key is already queued or active"


@pytest.fixture
def api(load_function: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch) -> Callable[..., dict[str, Any]]:
    monkeypatch.setenv("WORKER_FUNCTIONS", json.dumps({"pod-lifecycle": "jobs-pod-lifecycle"}))
    module = load_function("api")

    def call(
        name: str,
        *,
        path: str | None = None,
        body: Any = ...,
        token: str | None = API_TOKEN,
        query: dict[str, str] | None = None,
        raw_body: str | None = None,
        base64_body: str | None = None,
        iam: bool = False,
    ) -> dict[str, Any]:
        request = copy.deepcopy(event(name))
        if path is not None:
            request["rawPath"] = request["requestContext"]["http"]["path"] = path
        if body is not ...:
            request["body"] = json.dumps(body)
        if raw_body is not None:
            request["body"] = raw_body
        if base64_body is not None:
            request["body"], request["isBase64Encoded"] = base64_body, True
        if query is not None:
            request["queryStringParameters"] = query
        headers = request["headers"]
        headers.pop("authorization", None)
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        if iam:
            request["requestContext"]["authorizer"] = {
                "iam": {"accessKey": "AKIA", "userArn": "arn:aws:iam::1:user/ops"}
            }
        response = module.handler(request, FakeContext(function_name="jobs-api"))
        response["json"] = json.loads(response["body"]) if response.get("body") else None
        return response

    return call


def test_health_and_stats(api: Callable[..., dict[str, Any]], dsn: str) -> None:
    first = api("api-health.json")
    assert first["statusCode"] == 200
    assert {key: value for key, value in first["json"].items() if key != "horizon"} == {
        "healthy": True,
        "stats": {"pending": 0, "dead_letters": 0, "active": 0, "failed": 0, "completed": 0},
    }
    assert first["json"]["horizon"]["warning"] is None  # nothing holds a snapshot
    with Queue(dsn) as q:
        q.insert("send-email", [{"data": n} for n in range(3)])
    stats = api("api-stats.json")
    assert stats["statusCode"] == 200
    queues = {row["name"]: row for row in stats["json"]["queues"]}
    assert queues["send-email"]["queued"] == 3
    assert set(queues) >= {"pod-lifecycle", "health-check-all", "dead-letters"}
    assert queues["send-email"]["rate_window"] is None  # no rate limit


def test_stats_show_a_rate_limited_queues_window(api: Callable[..., dict[str, Any]], dsn: str) -> None:
    api("api-health.json")  # cold start: the queues exist
    with Queue(dsn) as q:
        q.update_queue("send-email", rate_limit={"limit": 14, "period": 1})
        q.insert("send-email", [{"data": n} for n in range(20)])
        assert len(q.fetch("send-email", 20)) == 14
    queues = {row["name"]: row for row in api("api-stats.json")["json"]["queues"]}
    window = queues["send-email"]["rate_window"]
    assert (window["limit"], window["period"], window["started"]) == (14, 1, 14)
    assert 0 < window["frees_in"] <= 1
    assert queues["send-email"]["group_rate_windows"] == []


def test_stats_show_a_group_rate_limited_queues_fullest_groups(api: Callable[..., dict[str, Any]], dsn: str) -> None:
    api("api-health.json")
    with Queue(dsn) as q:
        q.update_queue("send-email", group_rate_limit={"limit": 2, "period": 60})
        q.insert("send-email", [{"data": n, "group": {"id": g}} for g in ("a", "b") for n in range(3)])
        assert len(q.fetch("send-email", 10)) == 4
    queues = {row["name"]: row for row in api("api-stats.json")["json"]["queues"]}
    windows = queues["send-email"]["group_rate_windows"]
    assert [(w["group_id"], w["started"], w["limit"], w["period"]) for w in windows] == [
        ("a", 2, 2, 60),
        ("b", 2, 2, 60),
    ]


def test_health_turns_unhealthy_past_the_threshold(
    api: Callable[..., dict[str, Any]], dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    api("api-health.json")
    monkeypatch.setenv("HEALTH_FAILED_THRESHOLD", "2")
    with Queue(dsn) as q:
        q.insert("send-email", [{"data": n, "retry_limit": 0} for n in range(2)])
        q.fail("send-email", q.fetch("send-email", 2), "boom")
    response = api("api-health.json")
    assert response["statusCode"] == 503
    assert response["json"]["healthy"] is False and response["json"]["stats"]["failed"] == 2
    # Their copies wait in the dead letter queue: counted as dead letters, not as pending work.
    assert (response["json"]["stats"]["pending"], response["json"]["stats"]["dead_letters"]) == (0, 2)


def test_enqueue_kicks_the_worker_then_get_cancel_and_retry(
    api: Callable[..., dict[str, Any]], dsn: str, lambda_service: RecordingLambda
) -> None:
    created = api("api-enqueue.json")
    assert created["statusCode"] == 201, created
    job_id = created["json"]["id"]
    assert lambda_service.calls == [
        {
            "FunctionName": "jobs-pod-lifecycle",
            "InvocationType": "Event",
            "Payload": {"source": "kick", "queue": "pod-lifecycle"},
        }
    ]
    shown = api("api-get-job.json", path=f"/api/jobs/{job_id}")
    assert shown["statusCode"] == 200
    assert shown["json"]["data"]["podId"] == "pod-123" and shown["json"]["priority"] == 10
    cancelled = api("api-cancel.json", path=f"/api/jobs/{job_id}/cancel")
    assert cancelled["statusCode"] == 200 and cancelled["json"]["state"] == "cancelled"
    again = api("api-cancel.json", path=f"/api/jobs/{job_id}/cancel")
    assert again["statusCode"] == 409 and "is cancelled" in again["json"]["error"]
    not_failed = api("api-retry.json", path=f"/api/jobs/{job_id}/retry")
    assert not_failed["statusCode"] == 409
    resumed = api("api-retry.json", path=f"/api/jobs/{job_id}/resume")
    assert resumed["statusCode"] == 200 and resumed["json"]["state"] == "created"
    with Queue(dsn) as q:
        failed_id = q.send("send-email", {"to": "x"}, retry_limit=0)
        q.fail("send-email", q.fetch("send-email"), "boom")
    listed = api("api-failed.json", query={"limit": "5"})
    assert [j["id"] for j in listed["json"]["jobs"]] == [failed_id]
    retried = api("api-retry.json", path=f"/api/jobs/{failed_id}/retry")
    assert retried["statusCode"] == 200 and retried["json"]["state"] == "created"


def test_enqueue_adds_the_options_the_job_type_derives_from_its_data(
    api: Callable[..., dict[str, Any]], dsn: str
) -> None:
    """A pod's actions are keyed by the pod and a provision grouped by its user and tier, whoever sends them."""
    provision = {"action": "provision", "podId": "p-1", "spec": {"tier": "dev.small"}}
    created = api("api-enqueue.json", body={"queue": "pod-lifecycle", "data": provision})
    assert created["statusCode"] == 201, created
    stop = api("api-enqueue.json", body={"queue": "pod-lifecycle", "data": {"action": "stop", "podId": "p-1"}})
    with Queue(dsn) as q:
        first, second = q.get_job(created["json"]["id"]), q.get_job(stop["json"]["id"])
        assert first is not None and second is not None
        assert (first.singleton_key, first.group_id, first.group_tier) == ("p-1", "unknown/dev.small", "dev.small")
        assert (second.singleton_key, second.group_id) == ("p-1", None)
    no_pod = api("api-enqueue.json", body={"queue": "pod-lifecycle", "data": {"action": "stop"}})
    assert no_pod["statusCode"] == 400 and "payload is missing 'podId'" in no_pod["json"]["error"]
    unknown = api("api-enqueue.json", body={"queue": "pod-lifecycle", "data": {"action": "reboot", "podId": "p"}})
    assert unknown["statusCode"] == 400 and "unknown action 'reboot'" in unknown["json"]["error"]
    other_key = api(
        "api-enqueue.json",
        body={"queue": "pod-lifecycle", "data": {"action": "stop", "podId": "p-1"}, "options": {"singleton_key": "x"}},
    )
    assert other_key["statusCode"] == 400 and "singleton_key is set from the job's data" in other_key["json"]["error"]


def test_enqueue_refused_by_policy_is_a_conflict(api: Callable[..., dict[str, Any]]) -> None:
    body = {"queue": "cleanup-old", "data": {}}
    assert api("api-enqueue.json", body=body)["statusCode"] == 201
    refused = api("api-enqueue.json", body=body)
    assert refused["statusCode"] == 409 and refused["json"]["id"] is None
    # The CLI says the same words (tests/ops/test_cli.py).
    assert refused["json"]["error"] == REFUSED.format(queue="cleanup-old")


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        ({"raw_body": "{not json"}, 400, "not valid JSON"),
        ({"raw_body": "[" * 10_000 + "]" * 10_000}, 400, "nested too deeply"),
        ({"raw_body": '{"queue": "send-email", "data": "\\ud800"}'}, 400, "lone surrogate"),
        ({"raw_body": '{"queue": "send-email", "data": "\\u0000"}'}, 400, "NUL character"),
        ({"base64_body": base64.b64encode(b'{"queue": "send-email", "data": "\xff"}').decode()}, 400, "not UTF-8"),
        ({"base64_body": "e30"}, 400, "not valid base64"),
        ({"body": ["a list"]}, 400, "body: Input should be a valid dictionary"),
        ({"body": {"data": {}}}, 400, "body.queue: Field required"),
        ({"body": {"queue": "send-email", "extra": 1}}, 400, "body.extra: Extra inputs are not permitted"),
        ({"body": {"queue": "nope", "data": {}}}, 404, "unknown queue 'nope'"),
        ({"body": {"queue": "bad name!", "data": {}}}, 400, "body.queue: String should match pattern"),
        (
            {"body": {"queue": "send-email", "options": {"priority": "high"}}},
            400,
            "body.options.priority: Input should be a valid integer",
        ),
        (
            {"body": {"queue": "send-email", "options": {"conn": "x"}}},
            400,
            "body.options.conn: Extra inputs are not permitted",
        ),
        ({"body": {"queue": "send-email", "options": []}}, 400, "body.options: Input should be a valid dictionary"),
    ],
)
def test_malformed_enqueue_requests(
    api: Callable[..., dict[str, Any]], dsn: str, kwargs: dict[str, Any], status: int, message: str
) -> None:
    response = api("api-enqueue.json", **kwargs)
    assert response["statusCode"] == status, response
    assert message in response["json"]["error"]
    with Queue(dsn) as q:
        assert all(s.queued == 0 for s in q.get_queue_stats())


def test_data_with_the_text_of_a_nul_escape_is_stored_as_sent(api: Callable[..., dict[str, Any]], dsn: str) -> None:
    data = {"pattern": "\\u0000", "path": "C:\\new\\u0000"}
    created = api(
        "api-enqueue.json",
        base64_body=base64.b64encode(json.dumps({"queue": "send-email", "data": data}).encode()).decode(),
    )
    assert created["statusCode"] == 201, created
    with Queue(dsn) as q:
        job = q.get_job(created["json"]["id"])
    assert job is not None and job.data == data


def test_an_unknown_queue_is_a_404_that_suggests_on_every_route(api: Callable[..., dict[str, Any]]) -> None:
    expected = "unknown queue 'send-emial' (did you mean 'send-email'?)"
    sent = api("api-enqueue.json", body={"queue": "send-emial", "data": {}})
    listed = api("api-failed.json", query={"queue": "send-emial"})
    assert [r["statusCode"] for r in (sent, listed)] == [404] * 2
    assert sent["json"]["error"] == listed["json"]["error"] == expected


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/api/jobs/not-a-uuid", 400, "path.id: Input should be a valid UUID"),
        ("/api/jobs/01a221cc-a803-7b0d-b34b-9d342cafd700", 404, "no job"),
        ("/api/jobs/01a221cc-a803-7b0d-b34b-9d342cafd700/retry", 404, "no job"),
        ("/api/nothing-here", 404, "no such endpoint"),
    ],
)
def test_unknown_ids_and_routes(api: Callable[..., dict[str, Any]], path: str, status: int, message: str) -> None:
    name = "api-retry.json" if path.endswith("/retry") else "api-get-job.json"
    response = api(name, path=path)
    assert response["statusCode"] == status
    assert message in response["json"]["error"]


def test_failed_limit_must_be_a_number(api: Callable[..., dict[str, Any]]) -> None:
    response = api("api-failed.json", query={"limit": "lots"})
    assert response["statusCode"] == 400 and "query.limit: Input should be a valid integer" in response["json"]["error"]


def test_authentication(api: Callable[..., dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    missing = api("api-health.json", token=None)
    assert missing["statusCode"] == 401 and "authentication required" in missing["json"]["error"]
    wrong = api("api-health.json", token="guess")
    # RFC 6750: a wrong token is a 401 too, with the error in the challenge.
    assert wrong["statusCode"] == 401 and wrong["headers"]["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert api("api-health.json", token=None, iam=True)["statusCode"] == 200  # signed by IAM at the gateway
    monkeypatch.delenv("API_TOKEN")
    unconfigured = api("api-health.json", token="anything")
    assert unconfigured["statusCode"] == 401 and "not configured" in unconfigured["json"]["error"]


def test_refused_requests_change_nothing(api: Callable[..., dict[str, Any]], dsn: str) -> None:
    api("api-health.json")  # migrate and register
    assert api("api-enqueue.json", token="guess")["statusCode"] == 401
    assert api("api-enqueue.json", token=None)["statusCode"] == 401
    with Queue(dsn) as q:
        assert q.queue_size("pod-lifecycle") == 0


def test_pause_and_resume_a_queue(api: Callable[..., dict[str, Any]], dsn: str) -> None:
    api("api-health.json")
    paused = api("api-retry.json", path="/api/jobs/queues/send-email/pause")
    assert paused["statusCode"] == 200 and paused["json"] == {"queue": "send-email", "paused": True}
    with Queue(dsn) as q:
        q.send("send-email", {"to": "x"})
        assert q.fetch("send-email") == []
    rows = {r["name"]: r for r in api("api-stats.json")["json"]["queues"]}
    assert rows["send-email"]["paused"] is True and rows["send-email"]["queued"] == 1
    resumed = api("api-retry.json", path="/api/jobs/queues/send-email/resume")
    assert resumed["json"] == {"queue": "send-email", "paused": False}
    unknown = api("api-retry.json", path="/api/jobs/queues/send-emial/pause")
    assert unknown["statusCode"] == 404 and "did you mean 'send-email'" in unknown["json"]["error"]
    wrong = api("api-retry.json", path="/api/jobs/queues/send-email/stop")
    assert wrong["statusCode"] == 400
    assert "path.action: Input should be 'pause', 'resume' or 'redrive'" in wrong["json"]["error"]


def test_redrive_a_dead_letter_queue(api: Callable[..., dict[str, Any]], dsn: str) -> None:
    api("api-health.json")
    with Queue(dsn) as q:
        for n in range(2):
            q.send("send-email", {"to": n}, retry_limit=0)
        q.fail("send-email", q.fetch("send-email", 2), "SES said no")
        letters = sorted(j.id for j in q.find_jobs("dead-letters"))
    one = api("api-retry.json", path="/api/jobs/queues/dead-letters/redrive", body={"ids": letters[:1]})
    assert one["statusCode"] == 200 and list(one["json"]["moved"]) == letters[:1]
    rest = api("api-retry.json", path="/api/jobs/queues/dead-letters/redrive")
    assert list(rest["json"]["moved"]) == letters[1:] and rest["json"]["skipped"] == {}
    bad = api("api-retry.json", path="/api/jobs/queues/dead-letters/redrive", body={"ids": "all"})
    assert bad["statusCode"] == 400 and "body.ids: Input should be a valid list" in bad["json"]["error"]


def test_get_job_waits_for_it_to_finish_when_asked(api: Callable[..., dict[str, Any]], dsn: str) -> None:
    api("api-health.json")
    with Queue(dsn) as q:
        job_id = str(q.send("send-email", {"to": "x"}))
        [job] = q.fetch("send-email")
        job.context = q.context_for("send-email")
        job.step("render", lambda: "<p>hi</p>")
        # Unfinished: without wait the answer is at once; with wait, after it (a 1 s wait here).
        now = api("api-get-job.json", path=f"/api/jobs/{job_id}")["json"]
        assert now["state"] == "active" and [s["name"] for s in now["steps"]] == ["render"]
        started = time.monotonic()
        waited = api("api-get-job.json", path=f"/api/jobs/{job_id}", query={"wait": "1"})
        assert waited["statusCode"] == 200 and waited["json"]["state"] == "active"
        assert time.monotonic() - started >= 1.0
        finisher = threading.Timer(0.3, lambda: q.complete("send-email", [job], {"messageId": "m-1"}))
        finisher.start()
        done = api("api-get-job.json", path=f"/api/jobs/{job_id}", query={"wait": "20"})
        finisher.join()
    assert done["json"]["state"] == "completed" and done["json"]["output"] == {"messageId": "m-1"}
    refused = api("api-get-job.json", path=f"/api/jobs/{job_id}", query={"wait": "26"})
    assert refused["statusCode"] == 400 and "query.wait" in refused["json"]["error"]


def test_enqueue_can_wait_for_the_jobs_result(api: Callable[..., dict[str, Any]], dsn: str) -> None:
    api("api-health.json")

    def work() -> None:
        with Queue(dsn) as worker:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if jobs := worker.fetch("send-email"):
                    worker.complete("send-email", jobs, {"messageId": "m-1"})
                    return
                time.sleep(0.02)

    thread = threading.Thread(target=work)
    thread.start()
    made = api("api-enqueue.json", body={"queue": "send-email", "data": {"to": "x"}}, query={"wait": "20"})
    thread.join()
    assert made["statusCode"] == 201
    assert made["json"]["job"]["state"] == "completed" and made["json"]["job"]["output"] == {"messageId": "m-1"}
    assert made["json"]["job"]["id"] == made["json"]["id"]
    plain = api("api-enqueue.json", body={"queue": "send-email", "data": {"to": "y"}})
    assert plain["statusCode"] == 201 and plain["json"].get("job") is None


def test_a_batch_is_shown_with_its_counts(api: Callable[..., dict[str, Any]], dsn: str) -> None:
    api("api-health.json")
    with Queue(dsn) as q:
        q.insert("send-email", [{"data": {"to": f"u{n}"}} for n in range(3)], batch={"id": "welcome-1"})
        q.complete("send-email", q.fetch("send-email", 2))
    shown = api("api-get-job.json", path="/api/jobs/batches/welcome-1")
    assert shown["statusCode"] == 200
    assert {k: shown["json"][k] for k in ("total", "completed", "unfinished", "finished_on")} == {
        "total": 3,
        "completed": 2,
        "unfinished": 1,
        "finished_on": None,
    }
    missing = api("api-get-job.json", path="/api/jobs/batches/nothing")
    assert missing["statusCode"] == 404 and "no batch 'nothing'" in missing["json"]["error"]


def test_a_batch_id_is_percent_decoded(api: Callable[..., dict[str, Any]], dsn: str) -> None:
    """The path arrives as sent: an id with spaces, a '/' or letters beyond ASCII is found once decoded,
    and an id longer than any batch's (255 characters once decoded) is simply not found."""
    api("api-health.json")
    odd = "nightly/𝕋 run #1"
    with Queue(dsn) as q:
        q.insert("send-email", [{"data": {"to": "u"}}], batch={"id": odd})
    shown = api("api-get-job.json", path="/api/jobs/batches/" + quote(odd, safe=""))
    assert shown["statusCode"] == 200 and shown["json"]["total"] == 1
    assert api("api-get-job.json", path="/api/jobs/batches/" + quote("𝕋", safe="") * 255)["statusCode"] == 404
    too_long = api("api-get-job.json", path="/api/jobs/batches/" + quote("𝕋", safe="") * 256)
    assert too_long["statusCode"] == 404 and "no batch" in too_long["json"]["error"]


def test_a_queue_s_history_in_buckets(api: Callable[..., dict[str, Any]], dsn: str) -> None:
    api("api-health.json")
    with Queue(dsn) as q:
        q.insert("send-email", [{"data": {"to": f"u{n}"}} for n in range(4)])
        q.complete("send-email", q.fetch("send-email", 3))
        q.record_history(now=datetime.now(UTC) + timedelta(minutes=2))
    # Recorded up to the minute before last: ask for the last hours, in buckets of an hour.
    shown = api("api-get-job.json", path="/api/jobs/queues/send-email/history", query={"hours": "2", "bucket": "7200"})
    assert shown["statusCode"] == 200, shown
    assert shown["json"]["queue"] == "send-email" and shown["json"]["bucket"] == 7200
    [point] = shown["json"]["points"]
    assert (point["sent"], point["started"], point["completed"]) == (4, 3, 3)
    assert point["run_p50"] is not None and point["wait_p99"] is not None
    for query, problem in (({"bucket": "90"}, "bucket"), ({"hours": "400"}, "hours")):
        refused = api("api-get-job.json", path="/api/jobs/queues/send-email/history", query=query)
        assert refused["statusCode"] == 400 and problem in refused["json"]["error"], refused
    missing = api("api-get-job.json", path="/api/jobs/queues/send-emails/history")
    assert missing["statusCode"] == 404 and "send-email" in missing["json"]["error"]
