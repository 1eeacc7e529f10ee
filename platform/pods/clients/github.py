"""GitHub API client: removing the SSH keys pods were given."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from jobqueue import JobError
from pods import config
from runtime.secrets import secret_or_env


class GitHubError(Exception):
    """GitHub failed in a way worth retrying (5xx, rate limit, timeout)."""


@dataclass(frozen=True)
class GitHub:
    token: str
    base_url: str = "https://api.github.com"
    timeout: float = 10.0

    @classmethod
    def from_env(cls) -> GitHub:
        token = secret_or_env("GITHUB_TOKEN_SECRET_ARN", "GITHUB_TOKEN", required=False) or ""
        return cls(token, config.github_api_url())

    def delete_key(self, key_id: str) -> bool:
        """Remove a key; False if it was already gone."""
        try:
            response = httpx.delete(
                f"{self.base_url}/user/keys/{key_id}",
                headers={"Authorization": f"Bearer {self.token}", "Accept": "application/vnd.github+json"},
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            raise GitHubError(f"GitHub unreachable deleting key {key_id}: {exc}") from exc
        if response.status_code == 404:
            return False
        if response.status_code in (401, 403) and response.headers.get("x-ratelimit-remaining") != "0":
            raise JobError(f"GitHub refused the token ({response.status_code})", should_retry=False)
        if response.status_code >= 300:
            raise GitHubError(f"GitHub answered {response.status_code} deleting key {key_id}")
        return True
