"""Which function handles which job type: the platform's declaration, unless overridden.

A handler takes a Job and returns its output (any JSON value or None). It
raises to fail the job: `JobError(msg, should_retry=False)` fails it at once,
any other exception is retried while attempts last. Handlers must be safe to
run twice: delivery is at least once.
"""

from __future__ import annotations

from runtime import catalog
from runtime.jobtypes import Handler

_overrides: dict[str, Handler] = {}


def set_handler(name: str, function: Handler | None) -> None:
    """Run `function` for job type `name` instead of the declared handler (None: the declared one again)."""
    if function is None:
        _overrides.pop(name, None)
    else:
        _overrides[name] = function


def reset() -> None:
    """Every job type runs its declared handler again."""
    _overrides.clear()


def handler_for(name: str) -> Handler:
    if name in _overrides:
        return _overrides[name]
    try:
        return catalog.load().job_type(name).handler
    except LookupError as exc:
        raise LookupError(f"no handler is registered for job type {name!r}: {exc}") from None
