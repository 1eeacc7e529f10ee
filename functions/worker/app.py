"""The worker function's entry point (template.yaml: Handler app.handler).

Its code is runtime.functions.worker, the same for every project; this file is what
template.yaml's CodeUri points at."""

from runtime.functions.worker import handler

__all__ = ["handler"]
