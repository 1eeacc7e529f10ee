"""`jobs top`: the queues live in a terminal, what the dashboard's history page charts.

Each frame reads the queues' counts now and their last hour of history (Queue.history, which
maintenance records per minute): jobs waiting and running, the oldest wait, jobs finished per
minute over the hour as a sparkline, and the hour's wait and run p95. Redrawn in place every
`interval` seconds on a terminal; one frame and done with --once or when the output is not one.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Final

from rich.console import Console
from rich.live import Live
from rich.table import Table

from jobqueue import HistoryPoint, Queue

SPARK: Final = " ▁▂▃▄▅▆▇█"
MINUTES: Final = 60  # the sparkline's span, a character per minute


def sparkline(values: list[int]) -> str:
    """A character per value, its height in proportion to the largest (a space for none)."""
    peak = max(values, default=0)
    if peak == 0:
        return " " * len(values)
    return "".join(SPARK[0 if v == 0 else max(1, round(v / peak * (len(SPARK) - 1)))] for v in values)


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def _per_minute(points: list[HistoryPoint], since: datetime) -> list[int]:
    finished = [0] * MINUTES
    for point in points:
        slot = int((point.at - since).total_seconds() // 60)
        if 0 <= slot < MINUTES:
            finished[slot] = point.completed + point.failed
    return finished


def frame(queue: Queue, now: datetime | None = None) -> Table:
    """One frame: a row per queue."""
    now = now or datetime.now(UTC)
    since = now.replace(second=0, microsecond=0) - timedelta(minutes=MINUTES - 1)
    table = Table(
        title=f"jobs top · {now:%H:%M:%S} UTC",
        caption="history as recorded by maintenance, a minute at a time · Ctrl-C quits",
    )
    table.add_column("queue")
    for number in ("waiting", "active", "failed", "oldest wait"):
        table.add_column(number, justify="right")
    table.add_column(f"finished per minute, last {MINUTES} min")
    for number in ("done/min", "wait p95", "run p95"):
        table.add_column(number, justify="right")
    for stats in queue.get_queue_stats(now=now):
        points = queue.history(stats.name, since, now + timedelta(minutes=1))
        finished = _per_minute(points, since)
        recent = [p for p in points if p.completed + p.failed]
        table.add_row(
            f"{stats.name} (paused)" if stats.paused else stats.name,
            f"{stats.queued:,}",
            f"{stats.active:,}",
            f"[red]{stats.failed:,}[/red]" if stats.failed else "0",
            _seconds(stats.oldest_queued_seconds) if stats.queued else "-",
            f"[green]{sparkline(finished)}[/green]",
            f"{sum(finished) / MINUTES:,.1f}",
            _seconds(max((p.wait_p95 for p in points if p.wait_p95 is not None), default=None)),
            _seconds(max((p.run_p95 for p in recent if p.run_p95 is not None), default=None)),
        )
    return table


def watch(queue: Queue, console: Console, interval: float, *, once: bool) -> None:
    """Redraw the frame every `interval` seconds until interrupted; a single frame when `once` or
    when the console is not a terminal."""
    if once or not console.is_terminal:
        console.print(frame(queue))
        return
    with Live(frame(queue), console=console, auto_refresh=False) as live:
        try:
            while True:
                time.sleep(interval)
                live.update(frame(queue), refresh=True)
        except KeyboardInterrupt:
            return
