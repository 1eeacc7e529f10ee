"""The api function's entry point (template.yaml: Handler app.handler).

Its code is runtime.functions.api, the same for every project; this file is what
template.yaml's CodeUri points at."""

from runtime.functions.api import handler

__all__ = ["handler"]
