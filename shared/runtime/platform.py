"""The platform's queues and schedules, declared once.

The seed's settings are the defaults: retry 3 times, 60 s apart with
exponential backoff, expire after an hour, delete 7 days after finishing.
The worker functions in template.yaml, `make dev` and the tests all read
these declarations, and `register()` applies them idempotently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from jobqueue import Queue

DEAD_LETTERS: Final = "dead-letters"

DEFAULTS: Final[dict[str, Any]] = {
    "retry_limit": 3,
    "retry_delay": 60,
    "retry_backoff": True,
    "retry_delay_max": 3600,
    "expire_in": 3600,
    "delete_after": 7 * 86400,
    "dead_letter": DEAD_LETTERS,
}


@dataclass(frozen=True)
class QueueSpec:
    name: str
    policy: str = "standard"
    options: dict[str, Any] = field(default_factory=dict)

    def settings(self) -> dict[str, Any]:
        return {**DEFAULTS, **self.options, "policy": self.policy}


# One worker function per job type (template.yaml has one resource for each).
QUEUES: Final[tuple[QueueSpec, ...]] = (
    QueueSpec("provision-pod"),
    QueueSpec("start-pod"),
    QueueSpec("stop-pod"),
    # Senders pass the pod id as singleton_key: a flapping pod queues at most one restart.
    QueueSpec("restart-pod", "short"),
    QueueSpec("cleanup-pod"),
    QueueSpec("create-snapshot"),
    QueueSpec("restore-snapshot"),
    QueueSpec("health-check", options={"expire_in": 300}),
    # Scheduled work: a tick that finds the previous run still waiting adds nothing.
    QueueSpec("health-check-all", "short", {"expire_in": 300}),
    QueueSpec("cleanup-old", "short"),
    QueueSpec("calculate-usage", "short"),
    QueueSpec("send-email"),
)
QUEUE_NAMES: Final = tuple(spec.name for spec in QUEUES)


@dataclass(frozen=True)
class ScheduleSpec:
    name: str
    cron: str
    tz: str = "UTC"
    data: dict[str, Any] = field(default_factory=dict)


# The seed's schedules.
SCHEDULES: Final[tuple[ScheduleSpec, ...]] = (
    ScheduleSpec("health-check-all", "*/5 * * * *"),
    ScheduleSpec("cleanup-old", "0 2 * * *"),
    ScheduleSpec("calculate-usage", "0 * * * *"),
)


def register(queue: Queue) -> None:
    """Create the dead letter queue, the platform's queues and schedules (idempotent).

    Existing queues are brought to the declared settings, so a change here
    reaches the database with the next deployment.
    """
    queue.create_queue(DEAD_LETTERS, retention=30 * 86400, delete_after=30 * 86400)
    for spec in QUEUES:
        settings = spec.settings()
        if not queue.create_queue(spec.name, **settings):
            queue.update_queue(spec.name, **settings)
    for schedule in SCHEDULES:
        existing = {(s.key, s.cron, s.timezone) for s in queue.get_schedules(schedule.name)}
        if ("", schedule.cron, schedule.tz) not in existing:
            queue.schedule(schedule.name, schedule.cron, schedule.data, tz=schedule.tz)
