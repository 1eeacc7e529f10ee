"""Runs one Lambda handler in this process, the way the Lambda runtime would.

Invoked by `jobs invoke` in a subprocess (python -m local.lambda_runner ...):
the parent enforces the timeout by killing this process, as Lambda does. The
result (or the error) is printed as one JSON line on stdout, marked so that
the parent can find it among the handler's own output.
"""

from __future__ import annotations

import _collections_abc
import argparse
import importlib
import importlib.util
import json
import os
import sys
import time
import traceback
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

RESULT_MARK = "__LAMBDA_RESULT__ "
ROOT = Path(__file__).parents[2]


class Context:
    def __init__(self, function_name: str, timeout_s: float, memory_mb: int) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:local:000000000000:function:{function_name}"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def import_app(path: Path | str, module_name: str) -> ModuleType:
    """Import a function's entry point (functions/<name>/app.py) afresh, as a cold start does.

    The entry point re-exports a module of runtime.functions, which reads its settings when
    imported: that module is imported afresh too, so that two workers loaded in one process
    (the local stack, the tests) each get their own QUEUE_NAME.
    """
    for name in [name for name in sys.modules if name.startswith("runtime.functions.")]:
        del sys.modules[name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def record_environment_reads() -> set[str]:
    """From now on, note each variable the project's own code (shared/, functions/) reads from os.environ.

    Whichever way it asks (os.environ[...], .get, `in`, os.getenv) ends in
    _Environ.__getitem__; the first caller outside os and collections.abc is
    the reader. Tests compare what was read with what sam local would pass.
    """
    read: set[str] = set()
    roots = tuple(str(ROOT / folder) + os.sep for folder in ("shared", "functions"))
    # Frozen in the interpreter since 3.11 (co_filename "<frozen os>"), plain files before.
    plumbing = {os.__file__, _collections_abc.__file__, "<frozen os>", "<frozen _collections_abc>"}
    original = os._Environ.__getitem__

    def getitem(self: Any, key: str) -> Any:
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename in plumbing:
            frame = frame.f_back  # type: ignore[assignment]
        if frame is not None and frame.f_code.co_filename.startswith(roots):
            read.add(key)
        return original(self, key)

    os._Environ.__getitem__ = getitem  # type: ignore[method-assign,assignment]
    return read


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--code-uri", required=True, type=Path)
    parser.add_argument("--handler", required=True)
    parser.add_argument("--function-name", required=True)
    parser.add_argument("--timeout", required=True, type=float)
    parser.add_argument("--memory", type=int, default=512)
    parser.add_argument("--event", required=True, type=Path)
    parser.add_argument("--record-env", type=Path, help="write the variables the project's code read here (JSON)")
    args = parser.parse_args(argv)
    read = record_environment_reads() if args.record_env else None
    try:
        return run(args)
    finally:
        if read is not None:
            args.record_env.write_text(json.dumps(sorted(read)))


def run(args: argparse.Namespace) -> int:
    context = Context(args.function_name, args.timeout, args.memory)
    sys.path.insert(0, str(args.code_uri.resolve()))
    module_name, _, function_name = args.handler.rpartition(".")
    try:
        event: Any = json.loads(args.event.read_text())
        handler = getattr(importlib.import_module(module_name), function_name)
        result = handler(event, context)
    except Exception as exc:
        error = {
            "errorType": type(exc).__name__,
            "errorMessage": str(exc),
            "stackTrace": traceback.format_exc().splitlines(),
        }
        print(RESULT_MARK + json.dumps(error, default=str), flush=True)
        return 1
    print(RESULT_MARK + json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
