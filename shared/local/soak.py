"""What `make dev` counts, and the checks a soak makes while the load runs and after it.

Nothing here knows a platform: a platform adds its own checks (local.platform.after_soak).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from jobqueue import Policy, Queue

if TYPE_CHECKING:
    from local.stack import LocalStack


def wait_for_api(stack: LocalStack, within_s: float = 30) -> bool:
    """Whether the API (a process of its own) answers within `within_s`."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{stack.api_url}/health", timeout=5)
            return True
        except httpx.TransportError:
            time.sleep(0.2)
    return False


def waiting(queue: Queue) -> dict[str, int]:
    """Jobs not finished per queue (dead letter queues left out: they wait for a person)."""
    dead_letters = queue.dead_letter_sources()
    return {
        s.name: s.created + s.retry + s.active
        for s in queue.get_queue_stats()
        if s.name not in dead_letters and s.created + s.retry + s.active
    }


def summary(queue: Queue) -> dict[str, int]:
    """Jobs completed, failed and cancelled, dead letters waiting, and keys blocked by a failure."""
    stats = queue.get_queue_stats()
    dead_letters = queue.dead_letter_sources()
    keyed = [q.name for q in queue.get_queues() if q.policy == Policy.KEY_STRICT_FIFO]
    return {
        "completed": sum(s.completed for s in stats),
        "failed": sum(s.failed for s in stats),
        "cancelled": sum(s.cancelled for s in stats),
        "dead_letters": sum(s.queued for s in stats if s.name in dead_letters),
        "blocked_keys": sum(len(queue.get_blocked_keys(name)) for name in keyed),
    }


@dataclass
class Soak:
    """What a soak watches while the load runs, and finds after it."""

    problems: list[str] = field(default_factory=list)
    health_checks: int = 0

    def check_health(self, stack: LocalStack) -> None:
        """The API's health, as a load balancer would ask it."""
        self.health_checks += 1
        try:
            response = httpx.get(
                f"{stack.api_url}/health",
                headers={"Authorization": f"Bearer {stack.env['API_TOKEN']}"},
                timeout=10,
            )
        except httpx.TransportError as exc:
            self.problems.append(f"the API did not answer its health check: {exc}")
            return
        if response.status_code != 200:
            self.problems.append(f"health turned unhealthy: {response.status_code} {response.text[:300]}")

    def drain(self, stack: LocalStack, queue: Queue, within_s: float, what: str) -> bool:
        """Run the functions until no work waits; a backlog that does not drain is a problem."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            stack.step()
            if not waiting(queue):
                return True
            time.sleep(0.2)
        self.problems.append(f"{what}: work still waiting after {within_s:.0f} s: {waiting(queue)}")
        return False
