"""The demo workload `make dev` drives on the pods platform, and the checks a soak makes of it.

Every action on a pod goes to its lifecycle queue (pods.lifecycle), so each
pod's actions run in the order sent here; faults are injected now and then
(a host answering 500, an unhealthy pod) and must be recovered from.
"""

from __future__ import annotations

import random

from jobqueue import Queue
from local.soak import Soak
from local.stack import LocalStack
from pods import lifecycle
from podslocal.fake_host_agent import FakeHostAgent

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


def demo_round(queue: Queue, agents: list[FakeHostAgent], serial: int, start: int) -> None:
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
        random.choice(agents).faults.fail_next = 1  # one 500 from a host: retried
    if age % 15 == 0 and age:
        # A running pod answers its health checks unhealthy: restarted through its lifecycle.
        agents[random.randrange(2)].faults.unhealthy.add(f"pod-{serial - 3}")


def check_slots(soak: Soak, queue: Queue) -> None:
    """Every host's used slots are the pods placed on it, and no terminated pod holds one."""
    conn = queue.db.connection()
    wrong = conn.execute(
        "SELECT h.id, h.used, count(p.id) FROM pods.host h"
        " LEFT JOIN pods.pod p ON p.host_id = h.id GROUP BY h.id HAVING h.used <> count(p.id)"
    ).fetchall()
    if wrong:
        soak.problems.append(f"slot counts differ from the pods placed (host, used, placed): {wrong}")
    held = conn.execute(
        "SELECT id, status FROM pods.pod WHERE host_id IS NOT NULL AND status = 'terminated'"
    ).fetchall()
    if held:
        soak.problems.append(f"terminated pods hold slots: {held}")


def clean_up_everything(soak: Soak, stack: LocalStack, queue: Queue) -> None:
    """Clean up every pod still alive; then every slot must be free."""
    alive = [row[0] for row in queue.db.connection().execute("SELECT id FROM pods.pod WHERE status <> 'terminated'")]
    for pod_id in alive:
        lifecycle.request(queue, "cleanup", pod_id)
    if soak.drain(stack, queue, 120, "cleanup of every pod"):
        used = queue.db.connection().execute("SELECT coalesce(sum(used), 0) FROM pods.host").fetchone()
        if used and used[0]:
            leaking = (
                queue.db.connection().execute("SELECT id, status, host_id FROM pods.pod WHERE host_id IS NOT NULL")
            ).fetchall()
            soak.problems.append(f"{used[0]} slots still used after every pod was cleaned up: {leaking}")
