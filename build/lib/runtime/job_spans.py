"""A job's processing span (OpenTelemetry), the child of the span that sent it.

A job sent while a span was current carries that span's trace context (jobqueue.tracing). The
worker runs the job's handler inside a span of its own, `process <queue>` (kind CONSUMER, as the
messaging semantic conventions name it), whose parent is the sender's span: the job's trail goes
from the API request or handler that sent it, through the wait in the queue, to its handler, and
the handler's own spans (HTTP to the host agents, S3, SES, when instrumented) nest under it. Its
attributes: the queue, the job's id, the attempt, and the handler's outcome (completed, snoozed,
failed: a retry may follow, or "failed for good": a JobError said not to retry). A job that
carries no context, or a process without OpenTelemetry, gets no span and pays a dictionary
lookup.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any, Final

from jobqueue import Job, tracing

SYSTEM: Final = "pgjobs"  # messaging.system: the queue is ours, on Postgres


class Outcome:
    """What the worker says of the job once its handler returned or raised."""

    def __init__(self, span: Any) -> None:
        self._span = span

    def __call__(self, outcome: str, error: BaseException | None = None) -> None:
        if self._span is None:
            return
        from opentelemetry.trace import Status, StatusCode

        with suppress(Exception):  # a tracing failure must not touch the job's outcome
            self._span.set_attribute("pgjobs.job.outcome", outcome)
            if error is not None:
                self._span.record_exception(error)
                self._span.set_status(Status(StatusCode.ERROR, type(error).__name__))


@contextmanager
def processing(queue_name: str, job: Job) -> Iterator[Outcome]:
    """The job's processing span, current on this thread while the handler runs (none when the job
    carries no trace context); the yielded Outcome records how it ended."""
    carried = tracing.carried(job.origin)
    if carried is None or not tracing.available():
        yield Outcome(None)
        return
    from opentelemetry import propagate, trace

    tracer = trace.get_tracer("pgjobs.worker")
    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": queue_name,
        "messaging.message.id": job.id,
        "pgjobs.job.attempt": job.retry_count + 1,
    }
    try:
        manager = tracer.start_as_current_span(
            f"process {queue_name}",
            context=propagate.extract(carried),
            kind=trace.SpanKind.CONSUMER,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        )
        span = manager.__enter__()
    except Exception:  # a broken exporter or context: the job runs untraced, never lost
        yield Outcome(None)
        return
    try:
        yield Outcome(span)
    finally:
        with suppress(Exception):
            manager.__exit__(None, None, None)
