"""Which function handles which job type.

A handler takes a Job and returns its output (any JSON value or None). It
raises to fail the job: `JobError(msg, should_retry=False)` fails it at once,
any other exception is retried while attempts last. Handlers must be safe to
run twice: delivery is at least once.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

from jobqueue import Job

Handler = Callable[[Job], Any]

_handlers: dict[str, Handler] = {}
# Modules that register the platform's handlers when imported; HANDLER_MODULES
# (comma-separated) adds more, e.g. a test's own handlers.
HANDLER_MODULES = ("pods.handlers",)


def _modules() -> list[str]:
    extra = [m.strip() for m in os.environ.get("HANDLER_MODULES", "").split(",") if m.strip()]
    return [*HANDLER_MODULES, *extra]


def register(name: str) -> Callable[[Handler], Handler]:
    def decorate(function: Handler) -> Handler:
        _handlers[name] = function
        return function

    return decorate


def set_handler(name: str, function: Handler) -> None:
    _handlers[name] = function


def handler_for(name: str) -> Handler:
    if name not in _handlers:
        for module in _modules():
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name != module.split(".")[0] and exc.name != module:
                    raise
    try:
        return _handlers[name]
    except KeyError:
        raise LookupError(f"no handler is registered for job type {name!r}") from None
