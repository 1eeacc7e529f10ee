"""A job's trace from its sender to its handler: OpenTelemetry's SDK, spans kept in memory.

The sender's span is current while it sends; the worker function, invoked afterwards as Lambda
invokes it, runs the job's handler in a `process <queue>` span whose parent is that span, and the
handler's own spans nest under it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from jobqueue import Job, JobError, Queue
from runtime import handlers
from tests.runtime.conftest import FakeContext, event

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def provider() -> None:
    """The process's tracer provider (set once per process), its spans kept in EXPORTER."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider())
    sdk = trace.get_tracer_provider()
    assert isinstance(sdk, TracerProvider)
    sdk.add_span_processor(SimpleSpanProcessor(EXPORTER))


@pytest.fixture
def spans() -> Iterator[Callable[[], list[ReadableSpan]]]:
    EXPORTER.clear()
    yield lambda: list(EXPORTER.get_finished_spans())
    EXPORTER.clear()


@pytest.fixture
def worker(load_function: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("QUEUE_NAME", "send-email")
    return load_function("worker")


def test_the_worker_continues_the_senders_trace(
    worker: ModuleType, dsn: str, spans: Callable[[], list[ReadableSpan]]
) -> None:
    tracer = trace.get_tracer("test")

    def send_email(job: Job) -> Any:
        with tracer.start_as_current_span("ses send-email"):
            if job.data["to"] == "bounce@example.com":
                raise JobError("mailbox does not exist", should_retry=False)
            return {"messageId": "m-1"}

    handlers.set_handler("send-email", send_email)
    worker.handler(event("schedule.json"), FakeContext())  # cold start: migrates, registers the queues
    with Queue(dsn) as q:
        with tracer.start_as_current_span("POST /api/jobs") as request:
            sent = q.send("send-email", {"to": "a@example.com"})
            bounced = q.send("send-email", {"to": "bounce@example.com"})
        untraced = q.send("send-email", {"to": "b@example.com"})
        job = q.get_job(str(sent))
        assert job is not None and job.origin is not None and "traceparent" in job.origin["trace"]
        assert q.get_job(str(untraced)).origin is None  # type: ignore[union-attr]
    result = worker.handler(event("schedule.json"), FakeContext())
    assert (result["completed"], result["failed"]) == (2, 1)

    finished = spans()
    processing = {s.attributes["messaging.message.id"]: s for s in finished if s.name == "process send-email"}
    assert set(processing) == {sent, bounced}  # the untraced job gets no span
    sender = request.get_span_context()
    for span in processing.values():
        assert span.kind is SpanKind.CONSUMER
        assert span.context.trace_id == sender.trace_id and span.parent.span_id == sender.span_id
        assert span.attributes["messaging.destination.name"] == "send-email"
        assert span.attributes["messaging.system"] == "pgjobs"
        assert span.attributes["pgjobs.job.attempt"] == 1
    ok, failed = processing[sent], processing[bounced]
    assert ok.attributes["pgjobs.job.outcome"] == "completed" and ok.status.status_code is StatusCode.UNSET
    assert failed.attributes["pgjobs.job.outcome"] == "failed for good"
    assert failed.status.status_code is StatusCode.ERROR and failed.events[0].name == "exception"
    # The handler's own spans nest under the job's (the untraced job's is a trace of its own).
    ses = [s for s in finished if s.name == "ses send-email"]
    nested = {s.parent.span_id for s in ses if s.parent is not None}
    assert len(ses) == 3 and nested == {s.context.span_id for s in processing.values()}


def test_without_opentelemetry_a_send_carries_nothing(dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The core runs without the optional package: as if it were not installed, a send inside a
    span stores no trace context and takes the plain path."""
    from jobqueue import tracing

    monkeypatch.setattr(tracing, "_available", False)
    with Queue(dsn) as q, trace.get_tracer("test").start_as_current_span("request"):
        q.create_queue("plain")
        job = q.get_job(str(q.send("plain", {"n": 1})))
        assert job is not None and job.origin is None


@pytest.mark.parametrize(
    ("policy", "jobs"),
    [
        ("standard", [{"data": {"n": n}} for n in range(3)]),  # data alone: COPY
        ("standard", [{"data": {"n": n}, "priority": n} for n in range(3)]),  # with options: COPY
        ("short", [{"data": {"n": 1}}]),  # data alone, a policy that may refuse: one statement
        ("short", [{"data": {"n": n}, "singleton_key": f"k{n}"} for n in range(3)]),  # with options: one statement
    ],
)
def test_every_way_in_carries_the_senders_trace(dsn: str, policy: str, jobs: list[dict[str, Any]]) -> None:
    tracer = trace.get_tracer("test")
    with Queue(dsn) as q:
        q.create_queue("traced", policy=policy)
        q.create_queue("batched")
        q.create_queue("ticks")
        with tracer.start_as_current_span("bulk request") as request:
            ids = q.insert("traced", jobs)
            batched = q.insert("batched", [{"data": {"n": 9}}], batch={"id": "nightly"})
        q.schedule("ticks", "* * * * *", {"tick": True})
        with tracer.start_as_current_span("scheduler tick") as tick:
            [scheduled] = q.run_schedules(now=datetime.now(UTC) + timedelta(seconds=61))
        expected = f"{request.get_span_context().trace_id:032x}"
        assert len(ids) == len(jobs)
        for job_id in [*ids, *batched]:
            job = q.get_job(job_id)
            assert job is not None and expected in job.origin["trace"]["traceparent"], job
        ticked = q.get_job(scheduled)
        assert ticked is not None and ticked.origin["schedule"] == "ticks"
        assert f"{tick.get_span_context().trace_id:032x}" in ticked.origin["trace"]["traceparent"]
