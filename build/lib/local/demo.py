"""The demo workload `make dev` drives, and the checks a soak makes of it.

Every action on a pod goes to its lifecycle queue (pods.lifecycle), so each
pod's actions run in the order sent here; faults are injected now and then
(a host answering 500, an unhealthy pod) and must be recovered from.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from jobqueue import Queue
from local.stack import LocalStack
from pods import lifecycle

ROUND_S = 2.0  # real seconds between demo rounds
POD_LIFETIME = 12  # serials between a pod's provision and its cleanup (4 rounds)


def first_serial(queue: Queue) -> int:
    """Where this run's pod numbers start: after every pod an earlier run made (fresh ids, fresh queues)."""
    row = (
        queue.db.connection()
        .execute(r"SELECT coalesce(max(substring(id FROM '^pod-(\d+)$')::integer), -1) + 1 FROM pods.pod")
        .fetchone()
    )
    last = int(row[0]) if row else 0
    return last + (-last % 6)  # a multiple of 6: the tiers' rhythm starts over


def demo_round(queue: Queue, stack: LocalStack, serial: int, start: int) -> None:
    """Three pods provisioned, a newer one snapshotted, the oldest three cleaned up, an email; a fault now and then."""
    with queue.db.transaction() as conn:
        for n in range(3):
            tier = "dev.large" if (serial + n) % 6 == 0 else "dev.small"
            # A flow: the new pod's first health check starts once its provision completed.
            lifecycle.provision_then_check(queue, f"pod-{serial + n}", {"tier": tier}, f"user-{n % 3}", conn=conn)
    age = serial - start
    if age >= 6:
        lifecycle.request(queue, "snapshot", f"pod-{serial - 3}")  # a pod of the previous round
        queue.send(
            "send-email",
            {
                "to": "user-1@example.com",
                "template": "pod-ready",
                "params": {"podId": f"pod-{serial - 6}", "url": "http://localhost"},
            },
        )
    if age >= POD_LIFETIME:
        with queue.db.transaction() as conn:
            for n in range(3):
                lifecycle.request(queue, "cleanup", f"pod-{serial - POD_LIFETIME + n}", conn=conn)
    if age % 12 == 0 and age:
        random.choice(stack.agents).faults.fail_next = 1  # one 500 from a host: retried
    if age % 15 == 0 and age:
        # A running pod answers its health checks unhealthy: restarted through its lifecycle.
        stack.agents[random.randrange(2)].faults.unhealthy.add(f"pod-{serial - 3}")


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


@dataclass
class Soak:
    """What a soak watches while the demo runs, and finds after it."""

    problems: list[str] = field(default_factory=list)
    health_checks: int = 0
    peak_waiting: int = 0

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

    def waiting(self, queue: Queue) -> dict[str, int]:
        """Jobs not finished per queue (dead letter queues left out: they wait for a person)."""
        dead_letters = queue.dead_letter_sources()
        return {
            s.name: s.created + s.retry + s.active
            for s in queue.get_queue_stats()
            if s.name not in dead_letters and s.created + s.retry + s.active
        }

    def drain(self, stack: LocalStack, queue: Queue, within_s: float, what: str) -> bool:
        """Run the functions until no work waits; a backlog that does not drain is a problem."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            stack.step()
            if not self.waiting(queue):
                return True
            time.sleep(0.2)
        self.problems.append(f"{what}: work still waiting after {within_s:.0f} s: {self.waiting(queue)}")
        return False

    def check_slots(self, queue: Queue) -> None:
        """Every host's used slots are the pods placed on it, and no terminated pod holds one."""
        conn = queue.db.connection()
        wrong = conn.execute(
            "SELECT h.id, h.used, count(p.id) FROM pods.host h"
            " LEFT JOIN pods.pod p ON p.host_id = h.id GROUP BY h.id HAVING h.used <> count(p.id)"
        ).fetchall()
        if wrong:
            self.problems.append(f"slot counts differ from the pods placed (host, used, placed): {wrong}")
        held = conn.execute(
            "SELECT id, status FROM pods.pod WHERE host_id IS NOT NULL AND status = 'terminated'"
        ).fetchall()
        if held:
            self.problems.append(f"terminated pods hold slots: {held}")

    def clean_up_everything(self, stack: LocalStack, queue: Queue) -> None:
        """Clean up every pod still alive; then every slot must be free."""
        alive = [
            row[0] for row in queue.db.connection().execute("SELECT id FROM pods.pod WHERE status <> 'terminated'")
        ]
        for pod_id in alive:
            lifecycle.request(queue, "cleanup", pod_id)
        if self.drain(stack, queue, 120, "cleanup of every pod"):
            used = queue.db.connection().execute("SELECT coalesce(sum(used), 0) FROM pods.host").fetchone()
            if used and used[0]:
                leaking = (
                    queue.db.connection()
                    .execute("SELECT id, status, host_id FROM pods.pod WHERE host_id IS NOT NULL")
                    .fetchall()
                )
                self.problems.append(f"{used[0]} slots still used after every pod was cleaned up: {leaking}")


def summary(queue: Queue) -> dict[str, Any]:
    stats = queue.get_queue_stats()
    dead_letters = queue.dead_letter_sources()
    return {
        "completed": sum(s.completed for s in stats),
        "failed": sum(s.failed for s in stats),
        "cancelled": sum(s.cancelled for s in stats),
        "dead_letters": sum(s.queued for s in stats if s.name in dead_letters),
        "blocked_pods": len(queue.get_blocked_keys(lifecycle.LIFECYCLE)),
    }
