"""What each dashboard page shows, gathered from the queue (no HTTP, no HTML here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from jobqueue import Job, JobState, Queue, QueueInfo, QueueStats
from jobqueue.cron import next_fire_times
from jobqueue.queues import dead_letter_sources
from runtime import horizon
from runtime.config import MaintenanceSettings

if TYPE_CHECKING:  # imported by history() on first use: the API's cold start does not need it
    from runtime.dashboard import charts

BUCKET_S = 300  # throughput chart: 5-minute buckets over the last hour
BUCKETS = 12


@dataclass
class QueueRow:
    stats: QueueStats
    info: QueueInfo | None
    completed_hour: int
    failed_hour: int
    buckets: list[tuple[int, int]]  # (completed, failed) per bucket, oldest first
    warnings: list[str]
    dead_letter_for: list[str]  # queues whose failures land here

    @property
    def name(self) -> str:
        return self.stats.name


@dataclass
class Overview:
    now: datetime
    since: datetime
    queues: list[QueueRow]
    totals: dict[str, int]
    chart: list[dict[str, Any]]  # per bucket: start, completed, failed
    chart_max: int
    dead_letter_queues: list[QueueRow] = field(default_factory=list)
    horizon: dict[str, Any] = field(default_factory=dict)  # runtime.horizon.report: who holds the MVCC horizon


def _bucket_starts(now: datetime) -> list[datetime]:
    floor = now.replace(second=0, microsecond=0) - timedelta(minutes=now.minute % (BUCKET_S // 60))
    first = floor - timedelta(seconds=BUCKET_S * (BUCKETS - 1))
    return [first + timedelta(seconds=BUCKET_S * i) for i in range(BUCKETS)]


def backlog_warnings(stats: QueueStats, settings: MaintenanceSettings) -> list[str]:
    """The same thresholds as the maintenance function's backlog alarms."""
    warnings = []
    if stats.queued > settings.backlog_warn_jobs:
        warnings.append(f"{stats.queued:,} jobs waiting (more than {settings.backlog_warn_jobs:,})")
    if stats.oldest_queued_seconds > settings.backlog_warn_seconds:
        warnings.append(
            f"oldest job has waited {age(stats.oldest_queued_seconds)} (more than {age(settings.backlog_warn_seconds)})"
        )
    return warnings


def overview(queue: Queue, now: datetime | None = None) -> Overview:
    now = now or datetime.now(UTC)
    starts = _bucket_starts(now)
    settings = MaintenanceSettings.from_env()
    infos = {q.name: q for q in queue.get_queues()}
    per_queue: dict[str, list[list[int]]] = {}
    for row in queue.throughput(since=starts[0], bucket_seconds=BUCKET_S):
        index = int((row.bucket - starts[0]).total_seconds() // BUCKET_S)
        if 0 <= index < BUCKETS:
            cells = per_queue.setdefault(row.name, [[0, 0] for _ in range(BUCKETS)])
            cells[index][0] += row.completed
            cells[index][1] += row.failed
    sources = dead_letter_sources(infos.values())
    rows = []
    for stats in queue.get_queue_stats(now=now):
        cells = per_queue.get(stats.name, [[0, 0] for _ in range(BUCKETS)])
        rows.append(
            QueueRow(
                stats=stats,
                info=infos.get(stats.name),
                completed_hour=sum(c for c, _ in cells),
                failed_hour=sum(f for _, f in cells),
                buckets=[(c, f) for c, f in cells],
                # A dead letter queue's jobs wait for a person, not a worker: no backlog warning.
                warnings=[] if stats.name in sources else backlog_warnings(stats, settings),
                dead_letter_for=sources.get(stats.name, []),
            )
        )
    chart: list[dict[str, Any]] = [
        {
            "start": start,
            "completed": sum(r.buckets[i][0] for r in rows),
            "failed": sum(r.buckets[i][1] for r in rows),
        }
        for i, start in enumerate(starts)
    ]
    totals = {str(state): sum(int(getattr(r.stats, state)) for r in rows) for state in JobState}
    return Overview(
        now=now,
        since=starts[0],
        queues=rows,
        totals=totals,
        chart=chart,
        chart_max=max([1, *(b["completed"] + b["failed"] for b in chart)]),
        dead_letter_queues=[r for r in rows if r.dead_letter_for],
        horizon=horizon.report(queue.horizon(), settings.horizon_warn_seconds),
    )


def failing(
    queue: Queue, infos: list[QueueInfo], name: str | None = None, limit: int = 100
) -> tuple[list[Job], list[Job]]:
    """Failed jobs (newest first, archived included) and jobs waiting for another attempt."""
    failed = queue.failed_jobs(limit=limit, name=name)
    names = [name] if name else [info.name for info in infos]
    retrying: list[Job] = []
    for each in names:
        retrying.extend(queue.find_jobs(each, state=JobState.RETRY, include_archive=False, limit=limit))
    retrying.sort(key=lambda j: j.created_on or datetime.min.replace(tzinfo=UTC), reverse=True)
    return failed, retrying[:limit]


def dead_letter_queues(queue: Queue, infos: list[QueueInfo]) -> list[tuple[QueueStats, list[str]]]:
    """Each queue that receives other queues' failures, with its counts and those queues."""
    sources = dead_letter_sources(infos)
    return [(s, sources[s.name]) for s in queue.get_queue_stats() if s.name in sources]


def next_fires(cron: str, timezone: str, now: datetime, count: int = 3) -> list[datetime]:
    try:
        return next_fire_times(cron, timezone, now, count)
    except Exception:  # a schedule stored by an older version with a now-invalid expression
        return []


def schedules(queue: Queue, now: datetime | None = None) -> list[dict[str, Any]]:
    now = now or datetime.now(UTC)
    return [
        {
            "schedule": s,
            # After the last fire time too: the scheduler fires by its events' clock, which may run
            # ahead of this one (make dev's simulated clock), and "next" never comes before "last".
            "next": next_fires(s.cron, s.timezone, max(now, s.last_fire_time or now)),
            # last_fire_time starts at the schedule's creation (nothing before it fires): not a fire.
            "last_fired": s.last_fire_time if s.last_fire_time and s.last_fire_time > s.created_on else None,
        }
        for s in sorted(queue.get_schedules(), key=lambda s: (s.name, s.key))
    ]


def age(seconds: float) -> str:
    """A duration for people: 45s, 12m 5s, 3h 20m, 2d 4h."""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def error_message(job: Job) -> str:
    """The message of a failed job's error output, whatever shape the handler gave it."""
    output = job.output
    if isinstance(output, dict):
        message = output.get("message") or output.get("error")
        if message:
            return str(message)
    return "" if output is None else str(output)


@dataclass
class HistoryView:
    """A queue's history (every queue's when `name` is None) as charts over one span."""

    name: str | None
    span: charts.Span
    since: datetime
    charts: list[charts.Chart]
    totals: dict[str, int]


def history(queue: Queue, name: str | None, span: charts.Span, now: datetime | None = None) -> HistoryView:
    """The span's buckets end with the one that holds `now`, aligned to whole buckets (UTC)."""
    from runtime.dashboard import charts

    now = now or datetime.now(UTC)
    epoch = int(now.timestamp())
    end = datetime.fromtimestamp(epoch - epoch % span.bucket_s + span.bucket_s, UTC)
    since = end - timedelta(hours=span.hours)
    points = queue.history(name, since, end, bucket_seconds=span.bucket_s)
    starts = charts.slots(since, span)
    return HistoryView(
        name=name,
        span=span,
        since=since,
        charts=[
            charts.counts(points, starts, span),
            charts.times(points, starts, span, "wait", "Wait: ready to started"),
            charts.times(points, starts, span, "run", "Run: started to finished"),
        ],
        totals={
            what: sum(getattr(p, what) for p in points)
            for what in ("sent", "started", "completed", "failed", "cancelled", "expired")
        },
    )
