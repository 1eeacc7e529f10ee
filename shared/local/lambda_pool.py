"""Asynchronous invokes of one function, run as the Lambda service runs them: in processes.

Each "container" is a process of its own that imports the function once and
then serves invocations one at a time, warm. At most `concurrency` containers
run at once (the function's reserved concurrency); invokes beyond that wait
until one is free, as Lambda holds back and retries throttled asynchronous
invokes. The function's own asynchronous invokes (a worker's scale-out and
handover) come back to the pool and are run the same way.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local.lambda_runner import Context, import_app


@dataclass
class Invocation:
    event: dict[str, Any]
    container: int
    seconds: float
    result: Any = None
    error: str | None = None


@dataclass
class Container:
    index: int
    process: Any
    inbox: Any
    started_s: float  # the cold start: from process start to the function imported


class _Relay:
    """The Lambda client inside a container: an asynchronous invoke goes back to the pool."""

    def __init__(self, messages: Any) -> None:
        self._messages = messages

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        self._messages.put(("invoke", json.loads(kwargs["Payload"])))
        return {"StatusCode": 202}


@dataclass(frozen=True)
class FunctionSpec:
    """What a container needs to know of its function (sent to the process)."""

    app: str
    environment: dict[str, str]
    name: str
    timeout_s: float


def _serve(index: int, function: FunctionSpec, inbox: Any, messages: Any) -> None:
    started = time.perf_counter()
    os.environ.update(function.environment)
    module = import_app(function.app, f"pool_app_{index}")
    from runtime import scale

    scale.set_lambda_client(_Relay(messages))
    messages.put(("ready", index, time.perf_counter() - started))
    while (event := inbox.get()) is not None:
        begun = time.perf_counter()
        try:
            result, error = module.handler(event, Context(function.name, function.timeout_s, 512)), None
        except Exception:
            result, error = None, traceback.format_exc(limit=5)
        messages.put(("done", index, event, result, error, time.perf_counter() - begun))


@dataclass
class FunctionPool:
    app: Path
    environment: dict[str, str]
    concurrency: int
    function_name: str = "local-worker"
    timeout_s: float = 300.0
    containers: list[Container] = field(default_factory=list)
    invocations: list[Invocation] = field(default_factory=list)
    requested: int = 0  # asynchronous invokes the function made
    peak: int = 0  # most invocations running at once

    def __post_init__(self) -> None:
        self._context = multiprocessing.get_context("spawn")
        self._messages = self._context.Queue()
        self._pending: deque[dict[str, Any]] = deque()

    def invoke(self, event: dict[str, Any]) -> None:
        self._pending.append(event)

    def _start(self) -> Container:
        index = len(self.containers)
        inbox = self._context.Queue()
        process = self._context.Process(
            target=_serve,
            args=(
                index,
                FunctionSpec(str(self.app), self.environment, self.function_name, self.timeout_s),
                inbox,
                self._messages,
            ),
            daemon=True,
        )
        process.start()
        container = Container(index, process, inbox, 0.0)
        self.containers.append(container)
        return container

    def run(self) -> list[Invocation]:
        """Serve invokes until none is pending or running; returns the invocations, in the order they ended."""
        idle: list[Container] = []
        busy: dict[int, Container] = {}
        starting = 0
        while self._pending or busy or starting:
            while self._pending and (idle or len(self.containers) < self.concurrency):
                if idle:
                    container = idle.pop()
                else:
                    container = self._start()
                    starting += 1
                container.inbox.put(self._pending.popleft())
                busy[container.index] = container
                self.peak = max(self.peak, len(busy))
            message = self._messages.get(timeout=self.timeout_s + 60)
            if message[0] == "invoke":
                self.requested += 1
                self._pending.append(message[1])
            elif message[0] == "ready":
                _, index, seconds = message
                self.containers[index].started_s = seconds
                starting -= 1
            else:
                _, index, event, result, error, seconds = message
                self.invocations.append(Invocation(event, index, seconds, result, error))
                idle.append(busy.pop(index))
        return self.invocations

    def stop(self) -> None:
        for container in self.containers:
            container.inbox.put(None)
        for container in self.containers:
            container.process.join(timeout=10)
            if container.process.is_alive():
                container.process.kill()
