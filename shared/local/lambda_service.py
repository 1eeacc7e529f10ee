"""The Lambda service on this machine: functions by name, their execution environments, and invokes.

Each function gets execution environments (local.runtime_api.Sandbox: a process running AWS's
runtime interface client) as Lambda gives them: one invocation at a time each, warm ones reused
(the most recently used first), a new one started when invocations overlap, up to the function's
reserved concurrency. A synchronous invoke beyond that is refused (TooManyRequestsException), an
asynchronous one waits for a free environment, as Lambda holds throttled events and retries them;
an event whose invocation fails is invoked again after each of `retry_delays_s` (Lambda: twice).
An environment idle for `idle_s` is shut down.

The service also answers Lambda's Invoke API on loopback, so that the functions' own boto3
clients (a worker's kick and scale-out) reach it through AWS_ENDPOINT_URL_LAMBDA, as they reach
the Lambda service in AWS.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote

from local.runtime_api import (
    FunctionConfig,
    InvocationError,
    JsonHandler,
    Outcome,
    QuietServer,
    Report,
    Sandbox,
    check_event,
)

UNRESERVED_LIMIT: Final = 2  # environments at once of a function without reserved concurrency
# Lambda retries an event whose invocation failed twice (MaximumRetryAttempts' default), about a
# minute and then two minutes later.
RETRY_DELAYS_S: Final = (60.0, 120.0)
IDLE_S: Final = 300.0
INVOKE_PATH: Final = "/2015-03-31/functions/"


@dataclass
class FunctionStats:
    invocations: int = 0
    errors: int = 0
    cold_starts: int = 0
    timeouts: int = 0
    retries: int = 0  # failed events invoked again
    billed_ms: int = 0
    init_ms: float = 0.0
    last_report: Report | None = None


@dataclass
class _Function:
    config: FunctionConfig
    limit: int
    log: Callable[[str], None]
    idle: list[tuple[Sandbox, float]] = field(default_factory=list)  # (environment, idle since)
    running: int = 0  # environments alive: idle or busy
    busy: set[Sandbox] = field(default_factory=set)
    stats: FunctionStats = field(default_factory=FunctionStats)
    free: threading.Condition = field(default_factory=threading.Condition)
    # Events wait here, a thread per environment the function may have: a function slower than its
    # ticks queues its own events without holding up another function's.
    events: ThreadPoolExecutor | None = None

    def __post_init__(self) -> None:
        self.events = ThreadPoolExecutor(max_workers=self.limit, thread_name_prefix=f"event-{self.config.name}")


class LambdaService:
    def __init__(
        self,
        configs: Mapping[str, FunctionConfig],
        *,
        reserved: Mapping[str, int | None] | None = None,
        log: Callable[[str, str], None] | None = None,
        on_outcome: Callable[[str, Outcome], None] | None = None,
        idle_s: float = IDLE_S,
        extra_path: tuple[str, ...] = (),
        retry_delays_s: tuple[float, ...] = RETRY_DELAYS_S,
    ) -> None:
        self._log = log or (lambda name, line: None)
        self.functions = {
            name: _Function(
                config,
                (reserved or {}).get(name) or UNRESERVED_LIMIT,
                (lambda line, name=name: self._log(name, line)),  # type: ignore[misc]
            )
            for name, config in configs.items()
        }
        self.on_outcome = on_outcome
        self.idle_s = idle_s
        self.retry_delays_s = retry_delays_s
        self._extra_path = extra_path
        self._server: QuietServer | None = None
        self._stopping = False
        self._in_flight = 0  # invocations accepted and not yet answered (events included)
        self._settled = threading.Condition()

    # -- invokes ----------------------------------------------------------------------------------

    def _function(self, name: str) -> _Function:
        short = name.rpartition(":function:")[2] or name
        if short not in self.functions:
            raise InvocationError("ResourceNotFoundException", f"Function not found: {name}", 404)
        return self.functions[short]

    def _acquire(self, function: _Function, wait: bool) -> Sandbox:
        with function.free:
            while True:
                if self._stopping:
                    raise InvocationError("ServiceException", "the local Lambda service is stopping", 500)
                if function.idle:
                    sandbox, _ = function.idle.pop()  # the most recently used: Lambda's reuse
                    function.busy.add(sandbox)
                    return sandbox
                if function.running < function.limit:
                    function.running += 1
                    sandbox = Sandbox(function.config, function.log, extra_path=self._extra_path)
                    function.busy.add(sandbox)
                    return sandbox
                if not wait:
                    raise InvocationError("TooManyRequestsException", "Rate Exceeded.", 429)
                function.free.wait()

    def _release(self, function: _Function, sandbox: Sandbox) -> None:
        with function.free:
            function.busy.discard(sandbox)
            if sandbox.dead or self._stopping:
                function.running -= 1
            else:
                function.idle.append((sandbox, time.monotonic()))
            function.free.notify()
        if self._stopping:
            sandbox.stop()

    def invoke(self, name: str, payload: bytes = b"{}", *, wait: bool = False) -> Outcome:
        """A synchronous invoke (RequestResponse). `wait`: queue behind busy environments instead of
        being throttled (what the service does for an event)."""
        check_event(payload)
        function = self._function(name)
        self._begin()
        try:
            return self._invoke(function, payload, wait)
        finally:
            self._end()

    def _begin(self) -> None:
        with self._settled:
            self._in_flight += 1

    def _end(self) -> None:
        with self._settled:
            self._in_flight -= 1
            self._settled.notify_all()

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until every invocation accepted so far, and every one they made, has been answered."""
        with self._settled:
            return self._settled.wait_for(lambda: self._in_flight == 0, timeout=timeout_s)

    def _invoke(self, function: _Function, payload: bytes, wait: bool) -> Outcome:
        sandbox = self._acquire(function, wait)
        cold = sandbox.process is None
        try:
            outcome = sandbox.invoke(payload)
        finally:
            self._release(function, sandbox)
        stats = function.stats
        stats.invocations += 1
        stats.errors += 0 if outcome.ok else 1
        stats.cold_starts += 1 if cold else 0
        stats.timeouts += 1 if outcome.timed_out else 0
        stats.billed_ms += outcome.report.billed_ms
        stats.init_ms += outcome.report.init_ms or 0.0
        stats.last_report = outcome.report
        if self.on_outcome is not None:
            self.on_outcome(function.config.name, outcome)
        return outcome

    def invoke_async(self, name: str, payload: bytes = b"{}") -> None:
        """An asynchronous invoke (Event): accepted at once, run when an environment is free."""
        check_event(payload, asynchronous=True)
        function = self._function(name)  # an unknown function is refused now, as Lambda does
        self._begin()
        assert function.events is not None
        function.events.submit(self._run_event, function, payload)

    def _run_event(self, function: _Function, payload: bytes, attempt: int = 0) -> None:
        try:
            try:
                outcome = self._invoke(function, payload, wait=True)
            except InvocationError:
                return  # the service is stopping
            if not outcome.ok and attempt < len(self.retry_delays_s) and not self._stopping:
                self._begin()  # the retry is in flight from now: wait_idle waits for it
                retry = threading.Timer(self.retry_delays_s[attempt], self._retry, (function, payload, attempt + 1))
                retry.daemon = True
                retry.start()
        finally:
            self._end()

    def _retry(self, function: _Function, payload: bytes, attempt: int) -> None:
        """Invoke a failed event again; the retry's _run_event ends what _run_event began for it."""
        function.stats.retries += 1
        try:
            assert function.events is not None
            function.events.submit(self._run_event, function, payload, attempt)
        except RuntimeError:  # the service stopped meanwhile: nothing runs, nothing is in flight
            self._end()

    def reap(self, now: float | None = None) -> int:
        """Shut down environments idle for longer than idle_s; returns how many."""
        now = time.monotonic() if now is None else now
        gone: list[Sandbox] = []
        for function in self.functions.values():
            with function.free:
                keep = [(s, since) for s, since in function.idle if now - since <= self.idle_s]
                gone += [s for s, since in function.idle if now - since > self.idle_s]
                function.running -= len(function.idle) - len(keep)
                function.idle = keep
        for sandbox in gone:
            sandbox.stop()
        return len(gone)

    def environments(self, name: str) -> int:
        return self.functions[name].running

    # -- the Invoke API -----------------------------------------------------------------------------

    def serve(self, port: int = 0) -> str:
        """Answer Lambda's Invoke API on loopback; returns its URL (for AWS_ENDPOINT_URL_LAMBDA)."""
        service = self

        class InvokeApi(JsonHandler):
            def do_POST(self) -> None:
                body = self._body()
                path = self.path.split("?", 1)[0]
                if not (path.startswith(INVOKE_PATH) and path.endswith("/invocations")):
                    self._answer(404, b'{"message": "not an Invoke API path"}')
                    return
                name = unquote(path[len(INVOKE_PATH) : -len("/invocations")])
                kind = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
                try:
                    if kind == "DryRun":
                        service._function(name)
                        self._answer(204, b"")
                    elif kind == "Event":
                        service.invoke_async(name, body or b"{}")
                        self._answer(202, b"")
                    else:
                        outcome = service.invoke(name, body or b"{}")
                        headers = {"X-Amz-Executed-Version": "$LATEST"}
                        if outcome.function_error:
                            headers["X-Amz-Function-Error"] = outcome.function_error
                        self._answer(200, json.dumps(outcome.payload).encode(), headers)
                except InvocationError as exc:
                    error = json.dumps({"Type": "User", "message": str(exc)}).encode()
                    self._answer(exc.status, error, {"x-amzn-ErrorType": exc.error_type})

        self._server = QuietServer(("127.0.0.1", port), InvokeApi)
        threading.Thread(target=self._server.serve_forever, name="lambda-invoke-api", daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._stopping = True
        for function in self.functions.values():
            with function.free:
                idle, function.idle = function.idle, []
                function.running -= len(idle)
                busy = list(function.busy)
                function.free.notify_all()
            # Busy ones too: their invocations end with the runtime's exit, as a frozen sandbox would.
            for sandbox in [*(s for s, _ in idle), *busy]:
                sandbox.stop()
        for function in self.functions.values():
            if function.events is not None:
                function.events.shutdown(wait=False, cancel_futures=True)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def log_to_files(directory: Path) -> Callable[[str, str], None]:
    """A log per function, `<directory>/<function>.log`: each function's output as its own stream."""
    directory.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()
    files: dict[str, Any] = {}

    def write(name: str, line: str) -> None:
        with lock:
            if name not in files:
                files[name] = (directory / f"{name}.log").open("a", buffering=1)
            files[name].write(line + "\n")

    return write
