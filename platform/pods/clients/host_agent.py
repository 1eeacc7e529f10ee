"""Client of the host agent: the HTTP API on each host that runs pods.

Every call sends the platform's X-Api-Key and has a timeout. An answer the
agent will never change its mind about (4xx other than 404 on lookups) is a
non-retryable JobError; 5xx, timeouts and connection errors are left to the
queue's retries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from jobqueue import JobError

DEFAULT_TIMEOUT = 10.0


class HostAgentError(Exception):
    """The host agent failed in a way worth retrying (5xx, timeout, unreachable)."""


@dataclass(frozen=True)
class HostAgent:
    address: str
    port: int
    api_key: str
    timeout: float = DEFAULT_TIMEOUT

    @property
    def base_url(self) -> str:
        return f"http://{self.address}:{self.port}"

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        timeout: float | None = None,
        accept: tuple[int, ...] = (),
    ) -> httpx.Response:
        try:
            response = httpx.request(
                method,
                self.base_url + path,
                json=json,
                content=content,
                headers={"X-Api-Key": self.api_key},
                timeout=timeout or self.timeout,
            )
        except httpx.TimeoutException as exc:
            raise HostAgentError(f"host agent {self.address} timed out on {method} {path}") from exc
        except httpx.TransportError as exc:
            raise HostAgentError(f"host agent {self.address} unreachable on {method} {path}: {exc}") from exc
        if response.status_code >= 500 and response.status_code not in accept:
            raise HostAgentError(f"host agent {self.address} answered {response.status_code} to {method} {path}")
        if response.status_code in (401, 403):
            # A wrong key stays wrong on every retry: fail now and say so (without the key).
            raise JobError(
                f"host agent {self.address} refused the API key ({response.status_code})", should_retry=False
            )
        return response

    def create_pod(self, pod_id: str, spec: dict[str, Any]) -> str:
        """Create the pod (idempotent by id: an existing pod is returned); returns its internal IP."""
        response = self._request("POST", "/create-pod", json={"podId": pod_id, "config": spec})
        if response.status_code not in (200, 201):
            raise JobError(
                f"host agent refused to create pod {pod_id}: {response.status_code} {response.text}", should_retry=False
            )
        return str(response.json()["internalIp"])

    def start_pod(self, pod_id: str) -> None:
        self._expect(self._request("POST", f"/pods/{pod_id}/start"), f"start pod {pod_id}")

    def stop_pod(self, pod_id: str) -> None:
        self._expect(self._request("POST", f"/pods/{pod_id}/stop"), f"stop pod {pod_id}")

    def delete_pod(self, pod_id: str) -> None:
        response = self._request("DELETE", f"/pods/{pod_id}")
        if response.status_code != 404:  # already gone is what we wanted
            self._expect(response, f"delete pod {pod_id}")

    def set_route(self, pod_id: str, internal_ip: str) -> None:
        self._expect(self._request("PUT", f"/routes/{pod_id}", json={"internalIp": internal_ip}), f"route {pod_id}")

    def remove_route(self, pod_id: str) -> None:
        response = self._request("DELETE", f"/routes/{pod_id}")
        if response.status_code != 404:
            self._expect(response, f"remove route {pod_id}")

    def health(self, pod_id: str, timeout: float = 5.0) -> bool:
        """True if the pod answers healthy within `timeout` (5 s by default); 503 means unhealthy."""
        response = self._request("GET", f"/pods/{pod_id}/health", timeout=timeout, accept=(503,))
        return response.status_code == 200

    def snapshot(self, pod_id: str) -> bytes:
        response = self._request("POST", f"/pods/{pod_id}/snapshot", timeout=max(self.timeout, 60))
        self._expect(response, f"snapshot pod {pod_id}")
        return response.content

    def restore(self, pod_id: str, archive: bytes) -> None:
        response = self._request("POST", f"/pods/{pod_id}/restore", content=archive, timeout=max(self.timeout, 60))
        self._expect(response, f"restore pod {pod_id}")

    @staticmethod
    def _expect(response: httpx.Response, what: str) -> None:
        if response.status_code >= 300:
            raise JobError(f"host agent could not {what}: {response.status_code} {response.text}", should_retry=False)
