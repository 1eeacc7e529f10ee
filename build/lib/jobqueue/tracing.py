"""The sender's trace context, carried by its job (OpenTelemetry, when it is installed).

A job sent while a span is current carries that span's W3C trace context in its origin
(`origin["trace"]`: traceparent, tracestate), whatever sent it: the API, the CLI, a handler,
the scheduler. The worker starts the job's processing span from it (runtime/worker.py), so that a
job's trail goes from its sender to its handler. OpenTelemetry is an optional extra
(`pip install pgjobs[otel]`): without it, or without a current span, nothing is carried and
sending costs what it did. The package is looked for once, and imported only where it is found.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Final

TRACE_KEY: Final = "trace"  # the key of a job's origin that holds its sender's trace context

_available: bool | None = None


def available() -> bool:
    """Whether OpenTelemetry's API is installed (looked for once)."""
    global _available
    if _available is None:
        _available = importlib.util.find_spec("opentelemetry") is not None
    return _available


def current() -> dict[str, str] | None:
    """The current span's trace context (W3C headers), or None without OpenTelemetry or a span."""
    if not available():
        return None
    from opentelemetry import propagate, trace

    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier or None


def carried(origin: Any) -> dict[str, str] | None:
    """The trace context a job's origin carries, if any."""
    if not isinstance(origin, dict):
        return None
    context = origin.get(TRACE_KEY)
    return context if isinstance(context, dict) and context else None
