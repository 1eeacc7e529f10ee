"""A Lambda context for handlers called in this process (tests, benchmarks, the worker pool), a fresh
import of a function's entry point, and a recorder of the variables the project's code reads
(`python -m local.lambda_runner --record-env FILE -- HANDLER`, around AWS's runtime client)."""

from __future__ import annotations

import _collections_abc
import argparse
import importlib
import importlib.util
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

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


def record_environment_reads(on_new: Callable[[set[str]], None] | None = None) -> set[str]:
    """From now on, note each variable the project's own code (shared/, platform/, functions/) reads from os.environ.

    Whichever way it asks (os.environ[...], .get, `in`, os.getenv) ends in
    _Environ.__getitem__; the first caller outside os and collections.abc is
    the reader. Tests compare what was read with what sam local would pass.
    """
    read: set[str] = set()
    roots = tuple(str(ROOT / folder) + os.sep for folder in ("shared", "platform", "functions"))
    # Frozen in the interpreter since 3.11 (co_filename "<frozen os>"), plain files before.
    plumbing = {os.__file__, _collections_abc.__file__, "<frozen os>", "<frozen _collections_abc>"}
    original = os._Environ.__getitem__

    def getitem(self: Any, key: str) -> Any:
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename in plumbing:
            frame = frame.f_back  # type: ignore[assignment]
        if frame is not None and frame.f_code.co_filename.startswith(roots) and key not in read:
            read.add(key)
            if on_new is not None:
                on_new(read)
        return original(self, key)

    os._Environ.__getitem__ = getitem  # type: ignore[method-assign,assignment]
    return read


def main(argv: list[str] | None = None) -> int:
    """`python -m local.lambda_runner --record-env FILE -- HANDLER`: AWS's runtime interface client,
    as `python -m awslambdaric HANDLER` runs it, noting each variable the project's code reads.

    The runtime never returns (it serves invocations until it is stopped), so FILE is rewritten
    each time a new variable is read.
    """
    parser = argparse.ArgumentParser()
    parser.add_argument("--record-env", required=True, type=Path)
    parser.add_argument("handler")
    args = parser.parse_args(argv)
    read = record_environment_reads(lambda names: args.record_env.write_text(json.dumps(sorted(names))))
    args.record_env.write_text(json.dumps(sorted(read)))
    from awslambdaric.__main__ import main as runtime_main

    runtime_main(["awslambdaric", args.handler])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
