"""A host agent on loopback: the real HTTP API of a host, with pods in memory.

Used by the tests and the local stack in place of a real host. It checks the
X-Api-Key, keeps pods and routes per host, produces and consumes snapshot
archives, and takes injected faults: latency, a run of 5xx answers, hanging
requests, unhealthy pods.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from local.embedded_postgres import free_port


@dataclass
class Faults:
    latency_s: float = 0.0  # added to every request
    fail_next: int = 0  # answer this many requests with 500
    # Answer this many requests whose "METHOD /path" starts with the key with 500 (e.g. "PUT /routes").
    fail_matching: dict[str, int] = field(default_factory=dict)
    hang_s: float = 0.0  # sleep this long before answering (longer than a client timeout = timeout)
    unhealthy: set[str] = field(default_factory=set)  # pod ids whose /health answers 503


@dataclass
class AgentPod:
    pod_id: str
    internal_ip: str
    config: dict[str, Any]
    running: bool = True
    data: bytes = b""


class FakeHostAgent:
    def __init__(self, api_key: str, host_index: int = 1, port: int = 0) -> None:
        self.api_key = api_key
        self.host_index = host_index
        self.port = port or free_port()
        self.pods: dict[str, AgentPod] = {}
        self.routes: dict[str, str] = {}
        self.faults = Faults()
        self.requests: list[tuple[str, str]] = []
        self.create_calls = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"host-agent-{self.port}", daemon=True)

    @property
    def address(self) -> str:
        return "127.0.0.1"

    def start(self) -> FakeHostAgent:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeHostAgent:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next_ip(self) -> str:
        return f"10.{self.host_index}.0.{len(self.pods) + 2}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        agent = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _send(self, status: int, body: Any = None, raw: bytes | None = None) -> None:
                payload = raw if raw is not None else json.dumps(body if body is not None else {}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream" if raw is not None else "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _route(self, method: str) -> None:
                agent.requests.append((method, self.path))
                faults = agent.faults
                if faults.latency_s:
                    time.sleep(faults.latency_s)
                if faults.hang_s:
                    time.sleep(faults.hang_s)
                with agent._lock:
                    if faults.fail_next > 0:
                        faults.fail_next -= 1
                        self._send(500, {"error": "injected fault"})
                        return
                    request = f"{method} {self.path}"
                    pending = faults.fail_matching.items()
                    matched = next((k for k, n in pending if n > 0 and request.startswith(k)), None)
                    if matched is not None:
                        faults.fail_matching[matched] -= 1
                        self._send(500, {"error": "injected fault"})
                        return
                if self.headers.get("X-Api-Key") != agent.api_key:
                    self._send(401, {"error": "bad api key"})
                    return
                parts = [p for p in self.path.split("/") if p]
                body = self._body()
                with agent._lock:
                    status, response, raw = agent.dispatch(method, parts, body)
                self._send(status, response, raw)

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_PUT(self) -> None:
                self._route("PUT")

            def do_DELETE(self) -> None:
                self._route("DELETE")

        return Handler

    def dispatch(self, method: str, parts: list[str], body: bytes) -> tuple[int, Any, bytes | None]:  # noqa: PLR0911 - one answer per endpoint
        if method == "POST" and parts == ["create-pod"]:
            self.create_calls += 1
            request = json.loads(body or b"{}")
            pod_id = request["podId"]
            if pod_id in self.pods:  # idempotent: the same pod again
                return 200, {"internalIp": self.pods[pod_id].internal_ip}, None
            pod = AgentPod(pod_id, self._next_ip(), request.get("config") or {})
            self.pods[pod_id] = pod
            return 201, {"internalIp": pod.internal_ip}, None
        if len(parts) >= 2 and parts[0] == "pods":
            pod_id = parts[1]
            agent_pod = self.pods.get(pod_id)
            action = parts[2] if len(parts) > 2 else None
            if method == "DELETE" and action is None:
                if self.pods.pop(pod_id, None) is None:
                    return 404, {"error": "no such pod"}, None
                return 200, {}, None
            if agent_pod is None:
                return 404, {"error": "no such pod"}, None
            if method == "GET" and action == "health":
                healthy = agent_pod.running and pod_id not in self.faults.unhealthy
                return (200 if healthy else 503), {"healthy": healthy}, None
            if method == "POST" and action in ("start", "stop"):
                agent_pod.running = action == "start"
                return 200, {"running": agent_pod.running}, None
            if method == "POST" and action == "snapshot":
                return 200, None, agent_pod.data or f"archive of {pod_id}".encode()
            if method == "POST" and action == "restore":
                agent_pod.data = body
                return 200, {"restored": len(body)}, None
        if len(parts) == 2 and parts[0] == "routes":
            if method == "PUT":
                self.routes[parts[1]] = json.loads(body)["internalIp"]
                return 200, {}, None
            if method == "DELETE":
                if self.routes.pop(parts[1], None) is None:
                    return 404, {"error": "no such route"}, None
                return 200, {}, None
        return 404, {"error": f"no endpoint {method} /{'/'.join(parts)}"}, None
