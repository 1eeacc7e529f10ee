"""The API function served over HTTP on localhost (what API Gateway does in AWS).

Each request becomes an HTTP API (payload v2) event for runtime.webapp, in this
process of its own, so that it has its own database connection like a Lambda.
"""

from __future__ import annotations

import argparse
import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from runtime.webapp import handle

_lock = threading.Lock()


def query_parameters(query: str) -> dict[str, str] | None:
    """As API Gateway (payload v2) gives them: blank values kept, a repeated name's values joined by commas."""
    found: dict[str, list[str]] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        found.setdefault(name, []).append(value)
    return {name: ",".join(values) for name, values in found.items()} or None


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        # As API Gateway does: a body that is not UTF-8 text travels base64-encoded.
        try:
            body, encoded = (raw.decode() if raw else None), False
        except UnicodeDecodeError:
            body, encoded = base64.b64encode(raw).decode(), True
        headers = {k.lower(): v for k, v in self.headers.items()}
        # As API Gateway does with payload v2: cookies travel in their own list.
        cookies = [c.strip() for c in headers.pop("cookie", "").split(";") if c.strip()]
        event = {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": url.path,
            "rawQueryString": url.query,
            "queryStringParameters": query_parameters(url.query),
            "headers": headers,
            "cookies": cookies or None,
            "requestContext": {
                "http": {"method": method, "path": url.path, "sourceIp": self.client_address[0]},
                "stage": "$default",
                "requestId": "local",
            },
            "body": body,
            "isBase64Encoded": encoded,
        }
        with _lock:  # one connection, one request at a time, as in one Lambda container
            response = handle(event, _Context())
        body_text = response.get("body") or ""
        payload = base64.b64decode(body_text) if response.get("isBase64Encoded") else body_text.encode()
        self.send_response(int(response["statusCode"]))
        for key, value in (response.get("headers") or {}).items():
            self.send_header(key, value)
        for cookie in response.get("cookies") or []:
            self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")


class _Context:
    function_name = "local-api"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:local:000000000000:function:local-api"
    aws_request_id = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(json.dumps({"listening": args.port}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
