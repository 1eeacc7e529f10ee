"""Functions run as Lambda runs them: AWS's runtime interface client in a process of its own, against
the Runtime API on loopback (local.runtime_api), and the Lambda service around it (local.lambda_service)."""

from __future__ import annotations

import json
import os
import re
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from local.lambda_service import LambdaService
from local.runtime_api import MAX_PAYLOAD, FunctionConfig, InvocationError, Sandbox, check_event

pytestmark = pytest.mark.slow

HANDLER = textwrap.dedent(
    """
    import os, pathlib, time

    def handler(event, context):
        if event.get("fail"):
            raise ValueError("asked to fail")
        if event.get("hang"):
            time.sleep(60)
        if event.get("big"):
            return "x" * event["big"]
        if event.get("eat_mb"):
            global hog
            hog = bytearray(event["eat_mb"] * 1024 * 1024)
            hog[::4096] = b"x" * len(hog[::4096])  # touched: resident, not only reserved
            time.sleep(5)
        if event.get("hold"):  # wait (bounded) until the test releases every held invocation
            pathlib.Path(event["hold"], str(os.getpid())).touch()
            release = pathlib.Path(event["hold"], "release")
            deadline = time.monotonic() + 20
            while not release.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        print("handled", context.aws_request_id)
        return {
            "pid": os.getpid(),
            "function": context.function_name,
            "arn": context.invoked_function_arn,
            "memory": context.memory_limit_in_mb,
            "remaining_ms": context.get_remaining_time_in_millis(),
            "env": {k: os.environ.get(k) for k in (
                "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
                "LAMBDA_TASK_ROOT", "_HANDLER", "AWS_REGION", "AWS_LAMBDA_LOG_GROUP_NAME",
                "AWS_LAMBDA_LOG_STREAM_NAME", "MY_SETTING")},
        }
    """
)
REPORT = re.compile(
    r"^REPORT RequestId: (?P<id>[0-9a-f-]{36})\tDuration: (?P<duration>[\d.]+) ms\tBilled Duration: (?P<billed>\d+) ms"
    r"\tMemory Size: (?P<memory>\d+) MB\tMax Memory Used: (?P<used>\d+) MB(\tInit Duration: (?P<init>[\d.]+) ms)?$"
)


@pytest.fixture
def code(tmp_path: Path) -> Path:
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "app.py").write_text(HANDLER)
    (folder / "broken.py").write_text("raise RuntimeError('the init fails')\n")
    return folder


def config(code: Path, *, handler: str = "app.handler", timeout_s: float = 30, memory_mb: int = 256) -> FunctionConfig:
    return FunctionConfig(
        "test-fn", handler, code, timeout_s, memory_mb, {"MY_SETTING": "set", "PATH": "/usr/bin:/bin"}
    )


@pytest.fixture
def lines() -> list[str]:
    return []


@pytest.fixture
def sandboxes() -> Iterator[list[Sandbox]]:
    made: list[Sandbox] = []
    yield made
    for sandbox in made:
        sandbox.stop()


def event(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def test_a_result_the_context_and_the_environment_are_lambdas(
    code: Path, lines: list[str], sandboxes: list[Sandbox]
) -> None:
    sandbox = Sandbox(config(code, timeout_s=30), lines.append)
    sandboxes.append(sandbox)
    first = sandbox.invoke(event())
    assert first.ok and first.function_error is None
    result = first.payload
    assert result["function"] == "test-fn" and result["memory"] == "256"
    assert result["arn"] == "arn:aws:lambda:eu-west-1:000000000000:function:test-fn"
    assert 25_000 < result["remaining_ms"] <= 30_000  # from the deadline header
    env = result["env"]
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "test-fn" and env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST" and env["_HANDLER"] == "app.handler"
    assert env["LAMBDA_TASK_ROOT"] == str(code.resolve()) and env["AWS_REGION"] == "eu-west-1"
    assert (
        env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/test-fn" and "[$LATEST]" in env["AWS_LAMBDA_LOG_STREAM_NAME"]
    )
    assert env["MY_SETTING"] == "set"
    # Warm: the same process serves the next invocation, with no init this time.
    second = sandbox.invoke(event())
    assert second.payload["pid"] == result["pid"]
    assert first.report.init_ms is not None and second.report.init_ms is None
    reports = [match for line in lines if (match := REPORT.match(line))]
    assert [m["id"] for m in reports] == [first.report.request_id, second.report.request_id]
    assert reports[0]["init"] is not None and reports[1]["init"] is None
    assert reports[0]["memory"] == "256" and int(reports[0]["used"]) > 5
    # Billed: the duration rounded up, with the init phase on a cold start.
    assert int(reports[0]["billed"]) == first.report.billed_ms >= float(reports[0]["init"])
    assert f"START RequestId: {first.report.request_id} Version: $LATEST" in lines
    assert f"handled {first.report.request_id}" in lines and f"END RequestId: {first.report.request_id}" in lines


def test_an_error_has_lambdas_shape_and_the_environment_stays_warm(
    code: Path, lines: list[str], sandboxes: list[Sandbox]
) -> None:
    sandbox = Sandbox(config(code), lines.append)
    sandboxes.append(sandbox)
    failed = sandbox.invoke(event(fail=True))
    assert failed.function_error == "Unhandled" and not failed.ok
    assert failed.payload["errorType"] == "ValueError" and failed.payload["errorMessage"] == "asked to fail"
    assert failed.payload["requestId"] == failed.report.request_id and failed.payload["stackTrace"]
    assert sandbox.invoke(event()).ok and not sandbox.dead


def test_a_timeout_kills_the_process_and_the_next_invocation_is_cold(code: Path, lines: list[str]) -> None:
    service = LambdaService({"test-fn": config(code, timeout_s=2)}, log=lambda name, line: lines.append(line))
    try:
        warm = service.invoke("test-fn", event())
        timed_out = service.invoke("test-fn", event(hang=True))
        assert timed_out.timed_out and timed_out.function_error == "Unhandled"
        assert timed_out.payload == {
            "errorType": "Sandbox.Timedout",
            "errorMessage": f"RequestId: {timed_out.report.request_id} Error: Task timed out after 2.00 seconds",
        }
        assert not Path(f"/proc/{warm.payload['pid']}").exists() or _is_zombie(warm.payload["pid"])
        after = service.invoke("test-fn", event())
        assert after.ok and after.payload["pid"] != warm.payload["pid"]
        assert after.report.init_ms is not None  # a new environment: a cold start, Init Duration reported
        assert any(f"{timed_out.report.request_id} Task timed out after 2.00 seconds" in line for line in lines)
        assert service.functions["test-fn"].stats.timeouts == 1 and service.functions["test-fn"].stats.cold_starts == 2
    finally:
        service.stop()


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_an_init_error_is_reported_as_lambda_reports_it(code: Path, lines: list[str]) -> None:
    sandbox = Sandbox(config(code, handler="broken.handler"), lines.append)
    outcome = sandbox.invoke(event())
    assert outcome.function_error == "Unhandled" and sandbox.dead
    assert outcome.payload["errorType"] == "RuntimeError" and outcome.payload["errorMessage"] == "the init fails"
    assert any(line.startswith("INIT_REPORT Init Duration: ") and "Status: error" in line for line in lines)
    missing = Sandbox(config(code, handler="nowhere.handler"), lines.append).invoke(event())
    assert missing.payload["errorType"] == "Runtime.ImportModuleError"


def test_payloads_over_lambdas_limits_are_refused(code: Path, lines: list[str], sandboxes: list[Sandbox]) -> None:
    with pytest.raises(InvocationError, match="too large") as refused:
        check_event(b"x" * (MAX_PAYLOAD + 1))
    assert refused.value.error_type == "RequestEntityTooLargeException" and refused.value.status == 413
    check_event(b"x" * MAX_PAYLOAD)  # at the limit: taken
    with pytest.raises(InvocationError):
        check_event(b"x" * 1_048_577, asynchronous=True)
    sandbox = Sandbox(config(code), lines.append)
    sandboxes.append(sandbox)
    outcome = sandbox.invoke(event(big=MAX_PAYLOAD + 10))
    assert outcome.payload["errorType"] == "Function.ResponseSizeTooLarge" and outcome.function_error == "Unhandled"


def test_memory_past_memory_size_ends_the_runtime(code: Path, lines: list[str]) -> None:
    sandbox = Sandbox(config(code, memory_mb=128), lines.append)
    outcome = sandbox.invoke(event(eat_mb=200))
    assert outcome.payload["errorType"] == "Runtime.OutOfMemory", outcome.payload
    assert "Runtime exited with error: signal: killed" in outcome.payload["errorMessage"]
    assert sandbox.dead and outcome.report.max_memory_mb >= 128


def test_overlapping_invocations_get_environments_of_their_own_up_to_the_reserved_concurrency(
    code: Path, tmp_path: Path
) -> None:
    hold = tmp_path / "hold"
    hold.mkdir()
    service = LambdaService({"test-fn": config(code)}, reserved={"test-fn": 2})
    results: list[Any] = []
    try:
        threads = [
            threading.Thread(target=lambda: results.append(service.invoke("test-fn", event(hold=str(hold)))))
            for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while len(list(hold.glob("[0-9]*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        held = sorted(int(p.name) for p in hold.glob("[0-9]*"))
        assert len(held) == 2  # two processes, each holding one invocation
        with pytest.raises(InvocationError) as throttled:  # a third, synchronous: throttled
            service.invoke("test-fn", event())
        assert throttled.value.error_type == "TooManyRequestsException" and throttled.value.status == 429
        service.invoke_async("test-fn", event(hold=str(hold)))  # an event waits for a free environment
        (hold / "release").touch()
        for thread in threads:
            thread.join(timeout=30)
        assert sorted(r.payload["pid"] for r in results) == held
        deadline = time.monotonic() + 30
        while service.functions["test-fn"].stats.invocations < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        stats = service.functions["test-fn"].stats
        assert stats.invocations == 3 and stats.cold_starts == 2  # the event ran warm, in one of the two
        assert service.environments("test-fn") == 2
        assert service.reap(now=time.monotonic() + 3600) == 2 and service.environments("test-fn") == 0
    finally:
        service.stop()


def test_the_invoke_api_answers_boto3_as_lambda_does(code: Path) -> None:
    service = LambdaService({"test-fn": config(code)})
    try:
        url = service.serve()
        client = boto3.client(
            "lambda",
            endpoint_url=url,
            region_name="eu-west-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=Config(retries={"max_attempts": 0}),
        )
        answered = client.invoke(FunctionName="test-fn", Payload=b"{}")
        assert answered["StatusCode"] == 200 and "FunctionError" not in answered
        assert json.loads(answered["Payload"].read())["function"] == "test-fn"
        failed = client.invoke(
            FunctionName="arn:aws:lambda:eu-west-1:000000000000:function:test-fn", Payload=event(fail=1)
        )
        assert failed["FunctionError"] == "Unhandled"
        assert json.loads(failed["Payload"].read())["errorType"] == "ValueError"
        queued = client.invoke(FunctionName="test-fn", InvocationType="Event", Payload=b"{}")
        assert queued["StatusCode"] == 202
        deadline = time.monotonic() + 30
        while service.functions["test-fn"].stats.invocations < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert service.functions["test-fn"].stats.invocations == 3
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            client.invoke(FunctionName="nope", Payload=b"{}")
    finally:
        service.stop()


def test_a_process_left_running_is_none_after_stop(code: Path) -> None:
    service = LambdaService({"test-fn": config(code)})
    pid = service.invoke("test-fn", event()).payload["pid"]
    service.stop()
    assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid)
    assert os.getpid() != pid


def test_stopping_the_service_ends_an_invocation_under_way_and_its_process(code: Path, tmp_path: Path) -> None:
    hold = tmp_path / "hold"
    hold.mkdir()
    service = LambdaService({"test-fn": config(code)})
    outcomes: list[Any] = []
    thread = threading.Thread(target=lambda: outcomes.append(service.invoke("test-fn", event(hold=str(hold)))))
    thread.start()
    deadline = time.monotonic() + 30
    while not list(hold.glob("[0-9]*")) and time.monotonic() < deadline:
        time.sleep(0.01)
    [pid] = [int(p.name) for p in hold.glob("[0-9]*")]
    service.stop()
    thread.join(timeout=30)
    assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid)  # no process left behind
    assert outcomes[0].payload["errorType"] == "Runtime.ExitError"


def test_a_failed_event_is_retried_twice_as_lambda_retries_it(code: Path, tmp_path: Path) -> None:
    (code / "flaky.py").write_text(
        "import pathlib\n"
        "def handler(event, context):\n"
        "    tries = pathlib.Path(event['tries'])\n"
        "    tries.write_text(tries.read_text() + 'x' if tries.exists() else 'x')\n"
        "    if len(tries.read_text()) <= event['failures']:\n"
        "        raise RuntimeError('not yet')\n"
        "    return 'done'\n"
    )
    service = LambdaService({"test-fn": config(code, handler="flaky.handler")}, retry_delays_s=(0.05, 0.05))
    try:
        once, always = tmp_path / "once", tmp_path / "always"
        service.invoke_async("test-fn", event(tries=str(once), failures=1))
        assert service.wait_idle(timeout_s=60)
        assert once.read_text() == "xx"  # failed, then retried and done
        service.invoke_async("test-fn", event(tries=str(always), failures=99))
        assert service.wait_idle(timeout_s=60)
        assert always.read_text() == "xxx"  # the first attempt and two retries, then given up
        stats = service.functions["test-fn"].stats
        assert stats.retries == 3 and stats.invocations == 5 and stats.errors == 4
        # A synchronous invoke is the caller's to retry: Lambda does not.
        assert not service.invoke("test-fn", event(tries=str(tmp_path / "sync"), failures=1)).ok
        assert (tmp_path / "sync").read_text() == "x"
    finally:
        service.stop()
