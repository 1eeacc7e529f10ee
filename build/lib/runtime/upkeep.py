"""The maintenance function's work: expiry, archiving, purge, then what the stats say.

`run` does five things, each its own function here: the queue's maintenance
(`maintain`), the metrics the template's alarms watch (`publish`), a warning for
each queue with a backlog (`backlogs`), workers for a backlog nobody works on
(`scale_out_idle`), and a look at who holds the MVCC horizon back (`watch_horizon`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from jobqueue import Horizon, MaintenanceResult, Queue, QueueStats
from runtime import horizon, scale
from runtime.config import MaintenanceSettings
from runtime.observability import logger, metrics, write_dimensioned


def run(
    queue: Queue,
    *,
    settings: MaintenanceSettings,
    remaining_ms: Callable[[], int],
    workers: Mapping[str, str],
) -> dict[str, Any]:
    outcome = maintain(queue, settings, remaining_ms)
    all_stats = queue.get_queue_stats()
    dead_letters = set(queue.dead_letter_sources())
    publish(outcome, all_stats, dead_letters)
    # Failures waiting for a person in a dead letter queue are not work waiting for a worker.
    working = [s for s in all_stats if s.name not in dead_letters]
    return {
        "skipped": outcome.skipped,
        "expired_retried": outcome.expired_retried,
        "expired_failed": outcome.expired_failed,
        "archived": outcome.archived,
        "deleted": outcome.deleted,
        "purged": outcome.purged,
        "unstarted_failed": outcome.unstarted_failed,
        "backlog": backlogs(working, settings),
        "workers_started": scale_out_idle(working, workers, settings),
        "horizon": horizon.report(watch_horizon(queue, settings), settings.horizon_warn_seconds),
    }


def maintain(queue: Queue, settings: MaintenanceSettings, remaining_ms: Callable[[], int]) -> MaintenanceResult:
    """Expiry, archiving and purge within the invocation's time, less its safety margin."""
    budget = max(0.0, (remaining_ms() - settings.safety_margin_ms) / 1000)
    outcome = queue.maintain(batch_size=settings.batch_size, time_budget=budget)
    if outcome.skipped:
        logger.info("maintenance skipped: another invocation holds the maintenance lease")
    return outcome


def publish(outcome: MaintenanceResult, all_stats: list[QueueStats], dead_letters: set[str]) -> None:
    """The run's counts, totals without a queue dimension (what the alarms watch), and per-queue figures."""
    metrics.add_metric(name="JobsExpired", unit="Count", value=outcome.expired_retried + outcome.expired_failed)
    metrics.add_metric(name="JobsArchived", unit="Count", value=outcome.archived)
    metrics.add_metric(name="JobsPurged", unit="Count", value=outcome.purged)
    metrics.add_metric(name="FinishedJobsDeleted", unit="Count", value=outcome.deleted)
    waiting = [s for s in all_stats if s.name not in dead_letters]
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
    for stats in all_stats:
        # A blob per queue, its metrics under the queue's dimension alone (the template's alarms').
        write_dimensioned(
            {"queue": stats.name},
            (
                ("QueueDepth", MetricUnit.Count, stats.queued),
                ("OldestQueuedJobAge", MetricUnit.Seconds, stats.oldest_queued_seconds),
                ("FailedJobs", MetricUnit.Count, stats.failed),
            ),
        )


def backlogs(working: Iterable[QueueStats], settings: MaintenanceSettings) -> list[dict[str, Any]]:
    """A warning for each queue holding more jobs, or an older ready job, than the settings allow."""
    found: list[dict[str, Any]] = []
    for stats in working:
        if stats.queued > settings.backlog_warn_jobs or stats.oldest_queued_seconds > settings.backlog_warn_seconds:
            logger.warning(
                "queue backlog",
                extra={
                    "queue": stats.name,
                    "queued": stats.queued,
                    "oldest_queued_seconds": stats.oldest_queued_seconds,
                },
            )
            found.append({"queue": stats.name, "queued": stats.queued, "oldest": stats.oldest_queued_seconds})
    return found


def scale_out_idle(working: Iterable[QueueStats], workers: Mapping[str, str], settings: MaintenanceSettings) -> int:
    """Start chains of workers for each backlog nobody works on (no job active, not paused); how many."""
    started = 0
    for stats in working:
        if stats.queued and not stats.active and not stats.paused and stats.name in workers:
            started += scale.scale_out(
                workers[stats.name],
                stats.name,
                stats.queued,
                settings.scale_jobs_per_worker,
                settings.scale_max_workers,
            )
    return started


def watch_horizon(queue: Queue, settings: MaintenanceSettings) -> Horizon:
    """Publish the oldest snapshot's age and the job tables' dead rows; warn, naming who holds it.

    A snapshot held open elsewhere keeps vacuum from removing claimed and finished jobs: the
    fetch stays fast (its floor), but the tables and indexes grow until it ends.
    """
    found = queue.horizon()
    metrics.add_metric(name="OldestSnapshotAgeSeconds", unit=MetricUnit.Seconds, value=found.oldest_seconds)
    metrics.add_metric(name="DeadJobTuples", unit=MetricUnit.Count, value=found.dead_job_tuples)
    for holder in found.older_than(settings.horizon_warn_seconds):
        logger.warning(
            "a snapshot holds the MVCC horizon back: vacuum cannot remove finished jobs until it ends",
            extra={
                "holder": holder.describe(),
                "held_seconds": holder.held_seconds,
                "dead_job_tuples": found.dead_job_tuples,
            },
        )
    return found
