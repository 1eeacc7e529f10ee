"""The maintenance function's work: expiry, archiving, purge, stats, backlog."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from jobqueue import Queue
from runtime import scale
from runtime.observability import logger, metrics
from runtime.settings import MaintenanceSettings


def run(
    queue: Queue,
    *,
    settings: MaintenanceSettings,
    remaining_ms: Callable[[], int],
    workers: Mapping[str, str],
    jobs_per_worker: int = 1000,
    max_workers: int = 4,
) -> dict[str, Any]:
    budget = max(0.0, (remaining_ms() - settings.safety_margin_ms) / 1000)
    outcome = queue.maintain(batch_size=settings.batch_size, time_budget=budget)
    if outcome.skipped:
        logger.info("maintenance skipped: another invocation holds the maintenance lease")
    metrics.add_metric(name="JobsExpired", unit="Count", value=outcome.expired_retried + outcome.expired_failed)
    metrics.add_metric(name="JobsArchived", unit="Count", value=outcome.archived)
    metrics.add_metric(name="JobsPurged", unit="Count", value=outcome.purged)
    backlog: list[dict[str, Any]] = []
    started = 0
    all_stats = queue.get_queue_stats()
    dead_letters = queue.dead_letter_sources()
    # Failures waiting for a person, not work waiting for a worker: counted apart.
    waiting = [s for s in all_stats if s.name not in dead_letters]
    # Totals without a queue dimension: what the template's alarms watch.
    metrics.add_metric(name="FailedJobsTotal", unit=MetricUnit.Count, value=sum(s.failed for s in all_stats))
    metrics.add_metric(
        name="OldestQueuedJobAgeMax",
        unit=MetricUnit.Seconds,
        value=max((s.oldest_queued_seconds for s in waiting), default=0.0),
    )
    metrics.add_metric(
        name="DeadLetterJobs",
        unit=MetricUnit.Count,
        value=sum(s.queued for s in all_stats if s.name in dead_letters),
    )
    # single_metric writes at once and ignores POWERTOOLS_METRICS_DISABLED; honour it here.
    per_queue_metrics = os.environ.get("POWERTOOLS_METRICS_DISABLED", "").lower() != "true"
    for stats in all_stats:
        if per_queue_metrics:
            for name, unit, value in (
                ("QueueDepth", MetricUnit.Count, stats.queued),
                ("OldestQueuedJobAge", MetricUnit.Seconds, stats.oldest_queued_seconds),
                ("FailedJobs", MetricUnit.Count, stats.failed),
            ):
                with single_metric(name=name, unit=unit, value=value, namespace=metrics.namespace) as metric:
                    metric.add_dimension(name="queue", value=stats.name)
        if stats.name in dead_letters:
            continue
        if stats.queued > settings.backlog_warn_jobs or stats.oldest_queued_seconds > settings.backlog_warn_seconds:
            logger.warning(
                "queue backlog",
                extra={
                    "queue": stats.name,
                    "queued": stats.queued,
                    "oldest_queued_seconds": stats.oldest_queued_seconds,
                },
            )
            backlog.append({"queue": stats.name, "queued": stats.queued, "oldest": stats.oldest_queued_seconds})
        if stats.queued and not stats.active and not stats.paused and stats.name in workers:
            # A backlog nobody works on (no job active): start chains of workers for it.
            started += scale.scale_out(workers[stats.name], stats.name, stats.queued, jobs_per_worker, max_workers)
    return {
        "skipped": outcome.skipped,
        "expired_retried": outcome.expired_retried,
        "expired_failed": outcome.expired_failed,
        "archived": outcome.archived,
        "purged": outcome.purged,
        "unstarted_failed": outcome.unstarted_failed,
        "backlog": backlog,
        "workers_started": started,
    }
