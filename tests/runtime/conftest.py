"""Running the Lambda entry points in-process against the test database.

Only the Lambda service itself is replaced (its context object, and the
client that starts other invocations): it cannot run here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from local.lambda_runner import import_app
from runtime import bootstrap, scale, worker

ROOT = Path(__file__).parents[2]
EVENTS = ROOT / "events"
API_TOKEN = "local-dev-token"


@dataclass
class FakeContext:
    """What Lambda passes as `context`, with a clock that runs down for real."""

    function_name: str = "jobs-worker"
    timeout_ms: int = 60_000
    memory_limit_in_mb: int = 512
    aws_request_id: str = "test-request"
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:jobs-worker"
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self.timeout_ms - (time.monotonic() - self.started) * 1000))


@dataclass
class RecordingLambda:
    """Stands in for the Lambda service: records asynchronous invokes."""

    calls: list[dict[str, Any]] = field(default_factory=list)

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append({**kwargs, "Payload": json.loads(kwargs["Payload"])})
        return {"StatusCode": 202}


def event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


@pytest.fixture
def lambda_service() -> Iterator[RecordingLambda]:
    fake = RecordingLambda()
    scale.set_lambda_client(fake)
    yield fake
    scale.set_lambda_client(None)


@pytest.fixture
def runtime_env(monkeypatch: pytest.MonkeyPatch, dsn: str, lambda_service: RecordingLambda) -> Iterator[None]:
    monkeypatch.setenv("DATABASE_URL", dsn)
    monkeypatch.setenv("API_TOKEN", API_TOKEN)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "JobsTest")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.delenv("DB_SECRET_ARN", raising=False)
    bootstrap.reset()
    worker.forget_learnt()
    yield
    bootstrap.reset()


@pytest.fixture
def load_function(runtime_env: None) -> Callable[[str], ModuleType]:
    """Import functions/<name>/app.py afresh (it reads its settings at import, as on a cold start)."""

    def load(name: str) -> ModuleType:
        return import_app(ROOT / "functions" / name / "app.py", f"function_{name}")

    return load
