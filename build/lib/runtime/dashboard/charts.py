"""SVG geometry for the dashboard's history charts: bars and lines, computed here, drawn by templates.

The templates stay free of arithmetic: a chart is a viewBox, shapes with their coordinates and a
tooltip each, tick labels and the value the top of the chart stands for. Time runs left to right,
one slot per bucket; a bucket where nothing happened is a slot with zeros (counts) or a gap (times).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from jobqueue import HistoryPoint

WIDTH: Final = 720  # viewBox units, the plot's width
HEIGHT: Final = 120  # the plot's height; labels go below and to the left
LEFT: Final = 44  # room for the y-axis labels
BOTTOM: Final = 18  # room for the time labels
TICKS: Final = 6  # time labels along the x axis


@dataclass(frozen=True)
class Span:
    """A chart's time span and how wide its buckets are."""

    key: str
    label: str
    hours: int
    bucket_s: int
    tick_format: str

    @property
    def bucket_words(self) -> str:
        minutes = self.bucket_s // 60
        return "minute" if minutes == 1 else f"{minutes} minutes" if minutes < 60 else f"{minutes // 60} hours"


SPANS: Final = {
    span.key: span
    for span in (
        Span("1h", "1 hour", 1, 60, "%H:%M"),
        Span("24h", "24 hours", 24, 900, "%H:%M"),
        Span("14d", "14 days", 14 * 24, 3 * 3600, "%d %b"),
    )
}


@dataclass
class Shape:
    css: str  # the series' class: its colour
    tooltip: str
    x: float = 0.0
    y: float = 0.0
    width: float = 0.0
    height: float = 0.0
    points: str = ""  # a polyline's "x,y x,y ..."


@dataclass
class Chart:
    title: str
    unit: str
    top: float  # the value at the top of the plot
    shapes: list[Shape] = field(default_factory=list)
    ticks: list[tuple[float, str]] = field(default_factory=list)  # (x, label)
    legend: list[tuple[str, str]] = field(default_factory=list)  # (css, label)
    empty: bool = True

    @property
    def view_box(self) -> str:
        return f"0 0 {LEFT + WIDTH} {HEIGHT + BOTTOM}"

    @property
    def top_label(self) -> str:
        return _number(self.top, self.unit)


def slots(since: datetime, span: Span) -> list[datetime]:
    """The buckets' starts from `since`, as Queue.history bins them."""
    count = span.hours * 3600 // span.bucket_s
    return [since + timedelta(seconds=span.bucket_s * n) for n in range(count)]


def _nice(peak: float) -> float:
    """A round number at or above `peak` for the top of a chart (1, 2, 5 times a power of ten)."""
    if peak <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(peak))
    return float(next(step * power for step in (1, 2, 5, 10) if step * power >= peak))


def _number(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:,.3g} s"
    return f"{value:,.0f}"


def _ticks(starts: Sequence[datetime], span: Span) -> list[tuple[float, str]]:
    step = max(1, len(starts) // TICKS)
    slot = WIDTH / len(starts)
    return [(LEFT + (n + 0.5) * slot, starts[n].strftime(span.tick_format)) for n in range(0, len(starts), step)]


def _by_slot(points: Sequence[HistoryPoint], starts: Sequence[datetime]) -> list[HistoryPoint | None]:
    at = {point.at: point for point in points}
    return [at.get(start) for start in starts]


def counts(points: Sequence[HistoryPoint], starts: Sequence[datetime], span: Span) -> Chart:
    """Jobs finished per bucket, stacked (completed, failed, expired attempts), and sent as a line."""
    by_slot = _by_slot(points, starts)
    stacks = [
        ("ok", "completed", [p.completed if p else 0 for p in by_slot]),
        ("bad", "failed", [p.failed if p else 0 for p in by_slot]),
        ("warn", "expired", [p.expired if p else 0 for p in by_slot]),
    ]
    sent = [p.sent if p else 0 for p in by_slot]
    peak = max([*(sum(values) for values in zip(*(s[2] for s in stacks), strict=True)), *sent, 0])
    chart = Chart(
        title=f"Jobs per {span.bucket_words}",
        unit="jobs",
        top=_nice(peak),
        ticks=_ticks(starts, span),
        legend=[(css, label) for css, label, _ in stacks] + [("line-sent", "sent")],
        empty=peak == 0,
    )
    slot = WIDTH / len(starts)
    for n, start in enumerate(starts):
        base = float(HEIGHT)
        for css, label, values in stacks:
            if values[n]:
                height = values[n] / chart.top * HEIGHT
                base -= height
                chart.shapes.append(
                    Shape(
                        css,
                        f"{start:%Y-%m-%d %H:%M} UTC: {values[n]:,} {label}",
                        x=round(LEFT + n * slot + slot * 0.1, 2),
                        y=round(base, 2),
                        width=round(slot * 0.8, 2),
                        height=round(height, 2),
                    )
                )
    chart.shapes += _polylines("line-sent", "sent", [float(v) for v in sent], starts, top=chart.top, unit="jobs")
    return chart


def times(points: Sequence[HistoryPoint], starts: Sequence[datetime], span: Span, which: str, title: str) -> Chart:
    """p50, p95 and p99 of `which` ("wait" or "run") per bucket, as lines (a gap where none ran)."""
    by_slot = _by_slot(points, starts)
    series = {
        quantile: [getattr(p, f"{which}_{quantile}") if p else None for p in by_slot]
        for quantile in ("p50", "p95", "p99")
    }
    peak = max([v for values in series.values() for v in values if v is not None], default=0.0)
    chart = Chart(
        title=title,
        unit="s",
        top=_nice(peak),
        ticks=_ticks(starts, span),
        legend=[(f"line-{q}", q) for q in series],
        empty=all(v is None for values in series.values() for v in values),
    )
    for quantile, values in series.items():
        chart.shapes += _polylines(f"line-{quantile}", quantile, values, starts, top=chart.top, unit="s")
    return chart


def _polylines(
    css: str, label: str, values: Sequence[float | None], starts: Sequence[datetime], *, top: float, unit: str
) -> list[Shape]:
    """A line through the buckets' values, broken where a value is missing; a lone value is a dot."""
    slot = WIDTH / len(starts)
    runs: list[list[tuple[float, float]]] = [[]]
    for n, value in enumerate(values):
        if value is None:
            runs.append([])
            continue
        runs[-1].append((round(LEFT + (n + 0.5) * slot, 2), round(HEIGHT - min(value, top) / top * HEIGHT, 2)))
    shapes = []
    present = [v for v in values if v is not None]
    tooltip = f"{label}: peak {_number(max(present), unit)}" if present else label
    for run in runs:
        # A lone value is a segment of no length, drawn as a dot by the line's round caps.
        drawn = run * 2 if len(run) == 1 else run
        if drawn:
            shapes.append(Shape(css, tooltip, points=" ".join(f"{x},{y}" for x, y in drawn)))
    return shapes
