"""A GitHub API stand-in on loopback: the one endpoint the platform uses (DELETE /user/keys/{id})."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from local.embedded_postgres import free_port


class FakeGitHub:
    def __init__(self, token: str, keys: set[str] | None = None) -> None:
        self.token = token
        self.keys = set(keys or ())
        self.fail_next = 0
        self.deleted: list[str] = []
        self.port = free_port()
        github = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_DELETE(self) -> None:
                if github.fail_next > 0:
                    github.fail_next -= 1
                    self._send(502)
                    return
                if self.headers.get("Authorization") != f"Bearer {github.token}":
                    self._send(401)
                    return
                parts = [p for p in self.path.split("/") if p]
                if len(parts) == 3 and parts[:2] == ["user", "keys"] and parts[2] in github.keys:
                    github.keys.discard(parts[2])
                    github.deleted.append(parts[2])
                    self._send(204)
                    return
                self._send(404)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeGitHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
