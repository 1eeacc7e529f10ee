"""The maintenance function's entry point (template.yaml: Handler app.handler).

Its code is runtime.functions.maintenance, the same for every project; this file is what
template.yaml's CodeUri points at."""

from runtime.functions.maintenance import handler

__all__ = ["handler"]
