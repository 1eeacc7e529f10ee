"""Registers the platform's handlers with the runtime (imported by runtime.handlers)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jobqueue import Job
from pods import cleanup, email, health, lifecycle, snapshots, usage
from pods.context import Platform, platform
from runtime.handlers import register

PlatformHandler = Callable[[Platform, Job], Any]


def _bind(name: str, function: PlatformHandler) -> None:
    register(name)(lambda job: function(platform(), job))


for _name, _function in {
    "provision-pod": lifecycle.provision,
    "start-pod": lifecycle.start,
    "stop-pod": lifecycle.stop,
    "restart-pod": lifecycle.restart,
    "cleanup-pod": lifecycle.cleanup,
    "health-check": health.health_check,
    "health-check-all": health.health_check_all,
    "create-snapshot": snapshots.create,
    "restore-snapshot": snapshots.restore,
    "cleanup-old": cleanup.cleanup_old,
    "calculate-usage": usage.calculate_usage,
    "send-email": email.send_email,
}.items():
    _bind(_name, _function)
