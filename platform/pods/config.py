"""The platform's settings, read from the environment here and nowhere else in pods.

Read when a handler needs them (a job type that never sends email never reads
EMAIL_FROM), validated with the runtime's helpers: a bad value is a
ConfigurationError naming the variable, not a bare ValueError.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from runtime.config import integer, number, text

DEFAULT_GITHUB_API_URL = "https://api.github.com"


def team_size(env: Mapping[str, str] = os.environ) -> int:
    """Handlers run at once by the worker (TEAM_SIZE): the handlers' pool holds as many connections."""
    return integer(env, "TEAM_SIZE", 5, 1, 100)


def host_agent_timeout(env: Mapping[str, str] = os.environ) -> float:
    """Seconds a call to a host agent may take (HOST_AGENT_TIMEOUT)."""
    return number(env, "HOST_AGENT_TIMEOUT", 10.0, 0.1, 900.0)


def host_agent_address(env: Mapping[str, str] = os.environ) -> str | None:
    """Dial every host agent at this address instead of its recorded one (HOST_AGENT_ADDRESS): a
    container run by `sam local` reaches the local stack's agents through host.docker.internal."""
    return text(env, "HOST_AGENT_ADDRESS")


def capacity_wait_s(env: Mapping[str, str] = os.environ) -> float:
    """How long a provision waits for a free slot before it looks again (CAPACITY_WAIT_S)."""
    return number(env, "CAPACITY_WAIT_S", 30.0, 0.0, 86_400.0)


def github_api_url(env: Mapping[str, str] = os.environ) -> str:
    return text(env, "GITHUB_API_URL") or DEFAULT_GITHUB_API_URL


def email_from(env: Mapping[str, str] = os.environ) -> str:
    return text(env, "EMAIL_FROM") or "noreply@pods.local"


def snapshot_bucket(env: Mapping[str, str] = os.environ) -> str | None:
    return text(env, "SNAPSHOT_BUCKET")
