"""One Lambda execution environment on this machine: AWS's runtime interface client in a process of
its own, served by a Runtime API on loopback.

The process is started as AWS starts a Python function: `python -m awslambdaric <Handler>` in the
function's code folder (LAMBDA_TASK_ROOT), with the function's environment and the variables
Lambda adds. It asks `GET /2018-06-01/runtime/invocation/next` for work and answers on
`.../{id}/response`, `.../{id}/error` or `/runtime/init/error`, as documented by AWS. The
environment lives on between invocations (warm), serves one at a time, and dies as Lambda's
does: killed at the function's timeout (Sandbox.Timedout), past its memory (Runtime.OutOfMemory),
or when the runtime exits (Runtime.ExitError); the next invocation then starts a new one (cold).
Every invocation writes START, END and REPORT lines to the function's log, as CloudWatch shows.

Memory is watched, not capped by the kernel: the resident set is read every few milliseconds and
the process is killed past MemorySize. A cgroup would need privileges the local stack does not
assume, and an address-space limit (RLIMIT_AS) counts reserved memory a Python process never uses.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

API: Final = "/2018-06-01/runtime"
MAX_PAYLOAD: Final = 6_291_556  # bytes, as Lambda's error names it (6 MB and a little)
INIT_TIMEOUT_S: Final = 10.0  # Lambda's limit on the init phase
MEMORY_POLL_S: Final = 0.005
ACCOUNT: Final = "000000000000"


@dataclass(frozen=True)
class Report:
    """What Lambda's REPORT line says of one invocation."""

    request_id: str
    duration_ms: float
    memory_mb: int
    max_memory_mb: int
    init_ms: float | None = None  # on a cold start only

    @property
    def billed_ms(self) -> int:
        # Since August 2025 a managed runtime's init phase is billed with the invocation it served.
        return max(1, math.ceil(self.duration_ms + (self.init_ms or 0.0)))

    def line(self) -> str:
        text = (
            f"REPORT RequestId: {self.request_id}\tDuration: {self.duration_ms:.2f} ms\t"
            f"Billed Duration: {self.billed_ms} ms\tMemory Size: {self.memory_mb} MB\t"
            f"Max Memory Used: {self.max_memory_mb} MB"
        )
        return text + (f"\tInit Duration: {self.init_ms:.2f} ms" if self.init_ms is not None else "")


@dataclass(frozen=True)
class Outcome:
    """An invocation's answer as the Lambda service returns it: the payload, and "Unhandled" in
    X-Amz-Function-Error when it is an error (the function's own, or Lambda's)."""

    payload: Any
    function_error: str | None
    report: Report
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.function_error is None


class InvocationError(Exception):
    """An invoke the Lambda service refuses before any function runs (the Invoke API's 4xx)."""

    def __init__(self, error_type: str, message: str, status: int) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.status = status


@dataclass(frozen=True)
class FunctionConfig:
    """What an execution environment needs to know of its function."""

    name: str
    handler: str
    code_uri: Path
    timeout_s: float
    memory_mb: int
    environment: Mapping[str, str]  # the function's own (template, overrides); Lambda's are added
    region: str = "eu-west-1"

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{ACCOUNT}:function:{self.name}"


@dataclass
class _Pending:
    request_id: str
    body: bytes
    deadline_ms: int
    trace_id: str


def _trace_id() -> str:
    return f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};Parent={secrets.token_hex(8)};Sampled=0"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class JsonHandler(BaseHTTPRequestHandler):
    """An HTTP/1.1 JSON endpoint as AWS's clients expect one: Content-Length on every answer (the
    runtime interface client's HTTP library keeps the connection and needs it), and TCP_NODELAY (an
    answer's headers and body go out in two writes: without it the body waits for the client's
    delayed ACK, 40 ms and more per request)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _answer(self, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))


class _RuntimeApi(JsonHandler):
    """The Runtime API of one environment."""

    sandbox: Sandbox  # set on the subclass made per environment

    def do_GET(self) -> None:
        if self.path != f"{API}/invocation/next":
            self._answer(404, b'{"errorMessage": "no such endpoint"}')
            return
        self.sandbox.events.put(("next",))
        pending = self.sandbox.inbox.get()
        if pending is None:  # the environment is shutting down
            self._answer(500, b'{"errorMessage": "shutting down"}')
            return
        self._answer(
            200,
            pending.body,
            {
                "Lambda-Runtime-Aws-Request-Id": pending.request_id,
                "Lambda-Runtime-Deadline-Ms": str(pending.deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": self.sandbox.config.arn,
                "Lambda-Runtime-Trace-Id": pending.trace_id,
            },
        )

    def do_POST(self) -> None:
        body = self._body()
        parts = self.path.removeprefix(API).strip("/").split("/")
        if parts == ["init", "error"]:
            self.sandbox.events.put(("init-error", body))
        elif len(parts) == 3 and parts[0] == "invocation" and parts[2] == "response":
            if len(body) > MAX_PAYLOAD:
                message = f"Exceeded maximum allowed payload size ({MAX_PAYLOAD} bytes)."
                self._answer(413, json.dumps({"errorMessage": message, "errorType": "RequestEntityTooLarge"}).encode())
                self.sandbox.events.put(("too-large", parts[1], len(body)))
                return
            self.sandbox.events.put(("response", parts[1], body))
        elif len(parts) == 3 and parts[0] == "invocation" and parts[2] == "error":
            self.sandbox.events.put(("error", parts[1], body))
        else:
            self._answer(404, b'{"errorMessage": "no such endpoint"}')
            return
        self._answer(202, b'{"status": "OK"}')


class QuietServer(ThreadingHTTPServer):
    """A killed environment drops its connection mid-request: that is its end, not the server's error."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Sandbox:
    """One execution environment of a function: a process and its Runtime API."""

    def __init__(
        self,
        config: FunctionConfig,
        log: Callable[[str], None],
        *,
        runtime_command: list[str] | None = None,
        extra_path: tuple[str, ...] = (),
    ) -> None:
        self.config = config
        self.log = log
        self.inbox: queue.Queue[_Pending | None] = queue.Queue()
        self.events: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self.process: subprocess.Popen[bytes] | None = None
        self.dead = False
        self.invocations = 0
        self._runtime_command = runtime_command or [sys.executable, "-m", "awslambdaric"]
        self._extra_path = extra_path
        self._server: QuietServer | None = None
        self._oom = False
        self._max_rss_kb = 0
        self._stopping = threading.Lock()
        self._stopped = False
        self.stream = f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{secrets.token_hex(16)}"

    # -- the environment's life -------------------------------------------------------------------

    def environment(self, api_address: str) -> dict[str, str]:
        """The variables Lambda gives a Python function's process, over the function's own."""
        config = self.config
        task_root = str(config.code_uri.resolve())
        given = config.environment.get("PYTHONPATH", "")
        python_path = os.pathsep.join([task_root, *self._extra_path, *([given] if given else [])])
        return {
            **config.environment,
            "AWS_LAMBDA_FUNCTION_NAME": config.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{config.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": self.stream,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_RUNTIME_API": api_address,
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
            "AWS_REGION": config.environment.get("AWS_REGION", config.region),
            "AWS_DEFAULT_REGION": config.environment.get("AWS_DEFAULT_REGION", config.region),
            "LAMBDA_TASK_ROOT": task_root,
            "LAMBDA_RUNTIME_DIR": str(Path(sys.executable).parent),
            "_HANDLER": config.handler,
            "PYTHONPATH": python_path,
            "TZ": ":UTC",
        }

    def _launch(self) -> None:
        handler = type("RuntimeApi", (_RuntimeApi,), {"sandbox": self})
        self._server = QuietServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self._server.serve_forever, name=f"runtime-api-{self.config.name}", daemon=True).start()
        address = f"127.0.0.1:{self._server.server_address[1]}"
        self.process = subprocess.Popen(
            [*self._runtime_command, self.config.handler],
            cwd=self.config.code_uri,
            env=self.environment(address),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the timeout kills the whole group, as Lambda freezes the sandbox
        )
        process = self.process
        threading.Thread(target=self._relay_output, args=(process,), daemon=True).start()
        threading.Thread(target=self._watch_exit, args=(process,), daemon=True).start()
        threading.Thread(target=self._watch_memory, args=(process,), daemon=True).start()

    def _relay_output(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            self.log(raw.decode(errors="replace").rstrip("\n"))

    def _watch_exit(self, process: subprocess.Popen[bytes]) -> None:
        self.events.put(("exit", process.wait()))

    def _watch_memory(self, process: subprocess.Popen[bytes]) -> None:
        limit_kb = self.config.memory_mb * 1024
        status = Path(f"/proc/{process.pid}/status")
        while process.poll() is None:
            try:
                fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
            except (OSError, ValueError):
                return
            rss = int(fields.get("VmRSS", "0 kB").split()[0])
            self._max_rss_kb = max(self._max_rss_kb, int(fields.get("VmHWM", "0 kB").split()[0]), rss)
            if rss > limit_kb:
                self._oom = True
                self._kill()
                return
            time.sleep(MEMORY_POLL_S)

    def _kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def stop(self) -> None:
        """Kill the runtime and close the Runtime API (an invocation under way ends with the exit)."""
        with self._stopping:
            if self._stopped:
                return
            self._stopped = True
        self.dead = True
        self._kill()
        self.inbox.put(None)
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # -- one invocation ---------------------------------------------------------------------------

    def invoke(self, body: bytes, timeout_s: float | None = None) -> Outcome:
        """Run one invocation (the environment is started first if it is cold); blocks until answered."""
        if self.dead:
            raise RuntimeError("this execution environment is gone: start a new one")
        timeout_s = self.config.timeout_s if timeout_s is None else timeout_s
        request_id = str(uuid.uuid4())
        self.invocations += 1
        init_ms: float | None = None
        if self.process is None:
            began = time.perf_counter()
            self._launch()
            ready = self._wait_ready(request_id, began)
            if isinstance(ready, Outcome):
                return ready
            init_ms = ready
        self.log(f"START RequestId: {request_id} Version: $LATEST")
        started = time.perf_counter()
        deadline = started + timeout_s
        self.inbox.put(_Pending(request_id, body, int((time.time() + timeout_s) * 1000), _trace_id()))
        payload: Any = None
        function_error: str | None = None
        timed_out = False
        while True:
            try:
                event = self.events.get(timeout=max(0.0, deadline - time.perf_counter()))
            except queue.Empty:
                timed_out = True
                self._kill()
                self.dead = True
                self.log(f"{_now()} {request_id} Task timed out after {timeout_s:.2f} seconds")
                payload = {
                    "errorType": "Sandbox.Timedout",
                    "errorMessage": f"RequestId: {request_id} Error: Task timed out after {timeout_s:.2f} seconds",
                }
                function_error = "Unhandled"
                break
            kind = event[0]
            if kind == "next":
                continue
            if kind == "exit":
                self.dead = True
                payload = self._exit_error(request_id, event[1])
                function_error = "Unhandled"
                break
            if event[1] != request_id:
                continue  # a late answer to an invocation already given up on
            if kind == "response":
                payload = _decode(event[2])
            elif kind == "error":
                payload, function_error = _decode(event[2]), "Unhandled"
            else:  # too large: the runtime fails to post it and exits, and Lambda resets the environment
                self._kill()
                self.dead = True
                payload = {
                    "errorType": "Function.ResponseSizeTooLarge",
                    "errorMessage": f"Response payload size ({event[2]} bytes) exceeded maximum allowed payload "
                    f"size ({MAX_PAYLOAD} bytes).",
                }
                function_error = "Unhandled"
            break
        duration_ms = (time.perf_counter() - started) * 1000
        report = Report(request_id, duration_ms, self.config.memory_mb, math.ceil(self._max_rss_kb / 1024), init_ms)
        self.log(f"END RequestId: {request_id}")
        self.log(report.line())
        if self.dead:
            self.stop()
        return Outcome(payload, function_error, report, timed_out)

    def _wait_ready(self, request_id: str, began: float) -> float | Outcome:
        """The init phase: until the runtime first asks for work (its init duration), or its init error."""
        deadline = began + INIT_TIMEOUT_S
        while True:
            try:
                event = self.events.get(timeout=max(0.0, deadline - time.perf_counter()))
            except queue.Empty:
                self._kill()
                payload = {
                    "errorType": "Runtime.InitTimeout" if not self._oom else "Runtime.OutOfMemory",
                    "errorMessage": f"RequestId: {request_id} Error: init timed out after {INIT_TIMEOUT_S:.2f} seconds",
                }
                return self._failed_init(request_id, began, payload)
            if event[0] == "next":
                return (time.perf_counter() - began) * 1000
            if event[0] == "init-error":
                return self._failed_init(request_id, began, _decode(event[1]))
            if event[0] == "exit":
                return self._failed_init(request_id, began, self._exit_error(request_id, event[1]))

    def _failed_init(self, request_id: str, began: float, payload: Any) -> Outcome:
        init_ms = (time.perf_counter() - began) * 1000
        self.log(f"INIT_REPORT Init Duration: {init_ms:.2f} ms\tPhase: init\tStatus: error")
        self.stop()
        report = Report(request_id, 0.0, self.config.memory_mb, math.ceil(self._max_rss_kb / 1024), init_ms)
        self.log(report.line())
        return Outcome(payload, "Unhandled", report)

    def _exit_error(self, request_id: str, returncode: int | None) -> dict[str, str]:
        if self._oom:
            return {
                "errorType": "Runtime.OutOfMemory",
                "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: signal: killed",
            }
        if returncode is not None and returncode < 0:
            how = f"signal: {signal.Signals(-returncode).name.lower().removeprefix('sig')}"
        else:
            how = f"exit status {returncode}"
        message = f"RequestId: {request_id} Error: Runtime exited with error: {how}"
        return {"errorType": "Runtime.ExitError", "errorMessage": message}


def _decode(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body.decode(errors="replace")


def check_event(body: bytes, asynchronous: bool = False) -> None:
    """Refuse an event Lambda would refuse: over 6 MB (1 MB for an asynchronous invoke)."""
    limit = 1_048_576 if asynchronous else MAX_PAYLOAD  # asynchronous: 1 MB since October 2025
    if len(body) > limit:
        raise InvocationError(
            "RequestEntityTooLargeException",
            f"{len(body)} byte payload is too large for the {'Event' if asynchronous else 'RequestResponse'} "
            f"invocation type (limit {limit} bytes)",
            413,
        )
