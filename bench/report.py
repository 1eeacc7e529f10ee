"""The benchmark's results as Markdown: printed after a run, and written to docs/benchmarks.md by a full run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
NOTES = Path(__file__).parent / "notes.md"  # what limits the figures: analysis kept by hand

INTRO = """# Benchmarks

This file is written by `make bench`; edit `bench/report.py` (layout) or
`bench/notes.md` (analysis) instead.

`make bench` starts a PostgreSQL server of its own and measures, on it and in
the same run, our queue, a minimal raw-SQL queue (`bench/raw_queue.py`: COPY to
enqueue, one `UPDATE ... FOR UPDATE SKIP LOCKED` to claim a batch, one UPDATE
to finish it) as the ceiling (for sends and inserts also the same rows written
by hand into our own job table, `JobTableBaseline`: what the queue's own code
costs), and pg-boss (the Node.js queue whose semantics we follow, from the npm
registry, driven by `bench/pgboss/bench.mjs` with batch insert, fetch with
batchSize and complete by ids) when Node.js is present. Ours and raw alternate
so that the machine's drift hits both alike. Postgres is pinned to CPU 0, the
benchmark and its workers to the other CPUs (`--no-pin` turns this off); the
server runs with `synchronous_commit = off` for every contender, so the figures
measure the queues rather than the disk's flush latency. Each throughput figure
is the median of `--runs` runs; raw results are kept in `bench/results/*.json`.

The ratios are the figures that travel between machines.
"""


def _num(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


FUNCTIONS = ("worker", "scheduler", "maintenance", "api")


def _met(value: float | None, target: float | None, above: bool = True) -> str:
    if value is None or target is None:
        return ""
    return "met" if (value >= target if above else value <= target) else "**missed**"


# What each queue of extra.flow_control has, as a report row says it.
FLOW_SETTINGS = {
    "rate_limited": "under a rate limit it never reaches",
    "group_rate_limited": "under a group rate limit no group reaches",
    "round_robin": "round robin between the groups",
}


def _flow_rows(rows: list[dict[str, Any]]) -> list[str]:
    """fetch + complete under each flow-control setting, against a standard queue of the same run."""
    return [
        f"| fetch 100 + complete 100 {what}, {row['waiting']:,} waiting in {row['groups']:,} groups "
        f"| {row[f'{name}_ms']:.2f} ms ({row[f'{name}_ms'] / row['standard_ms']:.2f}x a standard "
        f"queue's {row['standard_ms']:.2f} ms) "
        f"| within 2x {_met(row[f'{name}_ms'] / row['standard_ms'], 2, above=False)} |"
        for row in rows
        for name, what in FLOW_SETTINGS.items()
        if f"{name}_ms" in row
    ]


def _partitioned_rows(parted: dict[str, Any] | None) -> list[str]:
    """A huge queue in job_common (shared) or in its own partition (own): what the others see."""
    if not parted:
        return []
    shared, own = parted["shared"], parted["own"]
    huge = f"{parted['huge']:,}"

    def pair(key: str, unit: str, digits: int = 1) -> str:
        ratio = own[key] / shared[key] if shared[key] else float("nan")
        return f"{shared[key]:,.{digits}f} -> {own[key]:,.{digits}f} {unit} ({ratio:.2f}x)"

    fc_shared = shared["fetch_ms"] + shared["complete_ms"]
    fc_own = own["fetch_ms"] + own["complete_ms"]
    return [
        f"| a small queue's fetch 100 + complete 100 beside a queue of {huge} jobs, in job_common -> in "
        f"its own partition | {fc_shared:.2f} -> {fc_own:.2f} ms ({fc_own / fc_shared:.2f}x) | |",
        f"| VACUUM of job_common after the small queue's churn, same | {pair('vacuum_ms', 'ms')} | |",
        f"| delete_queue of the {huge}-job queue, same (rows deleted -> partition dropped) "
        f"| {pair('delete_ms', 'ms')}, WAL {pair('delete_wal_bytes', 'B', 0)} | |",
    ]


def markdown(r: dict[str, Any]) -> str:
    counts = r["counts"]
    lines = [
        f"## Figures ({'make bench-quick' if r['quick'] else 'make bench'}, {r['when']})",
        "",
        f"Machine: {r['machine']['cpus']} CPUs, {r['machine']['platform']}, Python {r['machine']['python']}; "
        f"pg-boss {r['machine']['pg_boss'] or 'not measured'}. "
        f"{counts['sends']:,} single sends, {counts['inserts']:,} jobs inserted, {counts['drained']:,} drained; "
        f"median of {r['runs']} run(s); Postgres pinned: {'yes' if r['pinned'] else 'no'}.",
        "",
        "### Throughput against the baselines",
        "",
        "| figure | ours | raw ceiling | ours/raw | target | pg-boss | ours/pg-boss | target |",
        "|---|---:|---:|---:|---|---:|---:|---|",
    ]
    for f in r["figures"]:
        peer_target = f.get("peer_target")
        peer_goal = f">= {peer_target:.1f} {_met(f.get('peer_ratio'), peer_target)}" if peer_target else ""
        lines.append(
            f"| {f['name']} ({f['unit']}) | {_num(f['ours'])} | {_num(f['raw'])} | {f['ratio']:.2f} "
            f"| >= {f['target']:.2f} {_met(f['ratio'], f['target'])} | {_num(f.get('peer'))} "
            f"| {_num(f.get('peer_ratio'), 2)} "
            f"| {peer_goal} |"
        )
    lat = r["send_latency_ms"]
    lines += ["", f"Single send latency: p50 {lat['p50']:.3f} ms, p99 {lat['p99']:.3f} ms.", ""]

    s2s = r["send_to_start"]
    kick, tick = s2s["kick"], s2s["tick"]
    lines += [
        f"### Send to handler start (through the worker function, {s2s['rounds']:,} rounds)",
        "",
        "| path | p50 | p99 | max | target |",
        "|---|---:|---:|---:|---|",
        f"| send, kick, warm worker | {kick['p50_ms']:.2f} ms | {kick['p99_ms']:.2f} ms | {kick['max_ms']:.2f} ms "
        f"| p50 < 50 ms {_met(kick['p50_ms'], 50, above=False)} |",
        f"| tick with the job queued, warm worker | {tick['p50_ms']:.2f} ms | {tick['p99_ms']:.2f} ms "
        f"| {tick['max_ms']:.2f} ms | |",
        f"| first invocation of a new container | {s2s['first_invocation_to_handler_ms']:.1f} ms | | | |",
        "",
        "A kick is an asynchronous Lambda invoke, replaced here by a thread on a warm",
        "container: add the Lambda service's dispatch (tens of ms) in AWS. On a tick a",
        "job first waits for the next EventBridge minute: 30 s on average, 60 s at most.",
        "A new container also pays the module import (cold start, below).",
        "",
    ]

    scale = r["scaling"]
    small, large = scale["queued_small"], scale["queued_large"]
    finished = scale["finished_large_plus_queued_small"]
    ratio = (large["fetch_ms"] + large["complete_ms"]) / (small["fetch_ms"] + small["complete_ms"])
    purge = r["purge"]
    rss = r["worker_rss"]
    imports = r["cold_import_ms"]
    lines += [
        "### Scale, maintenance, cold start",
        "",
        "| measure | figure | target |",
        "|---|---|---|",
        f"| fetch 100 + complete 100, {small['jobs']:,} queued | {small['fetch_ms']:.2f} ms + "
        f"{small['complete_ms']:.2f} ms | |",
        f"| same, {large['jobs']:,} queued | {large['fetch_ms']:.2f} ms + {large['complete_ms']:.2f} ms "
        f"({ratio:.2f}x) | within 1.2x {_met(ratio, 1.2, above=False)} |",
        f"| same, {finished['jobs']:,} finished jobs not yet archived + {small['jobs']:,} queued "
        f"| {finished['fetch_ms']:.2f} ms + {finished['complete_ms']:.2f} ms | |",
        f"| purge {purge['jobs']:,} finished jobs (archive, batches of {purge['batch_size']:,}; then drop "
        f"the days) | {purge['rows_per_s']:,.0f} jobs/s (archive {purge['archive_rows_per_s']:,.0f}/s, "
        f"delete {purge['delete_rows_per_s']:,.0f}/s) | |",
        f"| longest maintenance transaction meanwhile | {purge['longest_batch_ms']:.1f} ms | |",
        f"| slowest fetch + complete of a worker meanwhile ({purge['probe_rounds']:,} rounds) "
        f"| {purge['probe_slowest_fetch_complete_ms']:.1f} ms "
        f"| < 100 ms {_met(purge['probe_slowest_fetch_complete_ms'], 100, above=False)} |",
        *_partitioned_rows(r.get("partitioned")),
        *_flow_rows(r.get("flow_control", [])),
        f"| job table per million queued jobs ({large['jobs']:,} queued) | "
        + ", ".join(
            f"{name} {size / 2**20:,.0f} MB"
            for name, size in scale.get("bytes_per_million", {}).items()
            if size >= 2**20
        )
        + " | |",
        "| cold import, fresh interpreter (median of 5) | "
        + ", ".join(f"{name} {ms:.0f} ms" for name, ms in imports.items() if name in FUNCTIONS)
        + f" | each <= 250 ms {_met(max(imports[n] for n in FUNCTIONS if n in imports), 250, above=False)} |",
        f"| the API's first request after it (loads the validation; no database) | "
        f"{imports.get('api first request', float('nan')):.0f} ms | |",
        f"| peak RSS of a worker draining {rss['drained']:,} jobs | {rss['max_rss_mb']:.0f} MB "
        f"| < 150 MB {_met(rss['max_rss_mb'], 150, above=False)} |",
        "",
        f"### Drain by workers and batch size ({counts['matrix']:,} jobs; {counts['matrix'] // 5:,} at batch 1)",
        "",
        "| workers | batch 1 | batch 10 | batch 100 |",
        "|--------:|--------:|---------:|----------:|",
    ]
    for workers in (1, 2, 4):
        cells = [f"{r['drain_matrix'][f'{workers} workers, batch {b}']:,.0f}/s" for b in (1, 10, 100)]
        lines.append(f"| {workers} | " + " | ".join(cells) + " |")
    lines.append("")
    if "worker_function" in r:
        lines += worker_function_section(r["worker_function"])
    if "backlog" in r:
        lines += backlog_section(r["backlog"], r["machine"]["cpus"], r["pinned"])
    if "connection_paths" in r:
        lines += connection_paths_section(r["connection_paths"])
    if "ordering" in r:
        lines += ordering_section(r["ordering"])
    if "lifecycle" in r:
        lines += lifecycle_section(r["lifecycle"])
    if "held_snapshot" in r:
        lines += held_snapshot_section(r["held_snapshot"])
    return "\n".join(lines)


def held_snapshot_section(result: dict[str, Any]) -> list[str]:
    """Fetch latency per interval before and while another session holds an old snapshot."""
    held_min = result["held_s"] / 60
    lines = [
        f"### Held snapshot (a REPEATABLE READ transaction idle for {held_min:g} min)",
        "",
        "500 jobs/s (50 every 100 ms), two consumers doing fetch(50) + complete, maintenance every 10 s;",
        "after the first interval(s) a third session takes a snapshot and keeps it. Per interval of",
        f"{result['interval_s']:g} s: fetch p50/p99 (ms, as the consumer times it), the shared buffers of one",
        "fetch at the interval's end, the jobs waiting. Target for ours: the last held interval's p50",
        "and p99 within 1.5x of the interval before the snapshot, no backlog growth.",
        "",
        "| interval | snapshot | ours p50 | ours p99 | ours buffers | ours waiting "
        "| raw p50 | raw p99 | raw buffers | raw waiting |",
        "|---:|:-:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ours, raw = result["runs"]["ours"], result["runs"]["raw"]
    for n, (o, w) in enumerate(zip(ours["intervals"], raw["intervals"], strict=False), start=1):
        lines.append(
            f"| {n} | {'held' if o['held'] else '-'} | {o['p50_ms']:.2f} | {o['p99_ms']:.2f} | {o['buffers']} "
            f"| {o['waiting']} | {w['p50_ms']:.2f} | {w['p99_ms']:.2f} | {w['buffers']} | {w['waiting']} |"
        )
    lines += [
        "",
        "| last held / before | p50 | p99 | buffers |",
        "|---|---:|---:|---:|",
        f"| ours | {ours['p50_ratio']:.2f}x {_met(ours['p50_ratio'], 1.5, above=False)} "
        f"| {ours['p99_ratio']:.2f}x {_met(ours['p99_ratio'], 1.5, above=False)} | {ours['buffers_ratio']:.2f}x |",
        f"| raw SKIP LOCKED table | {raw['p50_ratio']:.2f}x | {raw['p99_ratio']:.2f}x | {raw['buffers_ratio']:.2f}x |",
        "",
    ]
    return lines


def lifecycle_section(lives: list[dict[str, Any]]) -> list[str]:
    """A job's whole life per design: jobs/s, and WAL bytes per job phase by phase."""
    phases = ("send", "fetch", "complete", "archive", "delete")
    raw = next((life for life in lives if life["design"] == "raw"), None)
    lines = [
        f"### A job's whole life ({lives[0]['jobs']:,} jobs: send, fetch, complete, archive, delete)",
        "",
        "Each design alone on the server after a CHECKPOINT: inserts of 1,000, fetches and",
        "completions of 100, then what removes finished jobs (ours: archive, then purge from",
        "the archive; pg-boss: one supervise() pass, deleteAfterSeconds; raw: one DELETE).",
        "",
        "| design | jobs/s, whole life | x raw | WAL bytes/job | "
        + " | ".join(f"{phase}: s, WAL B/job" for phase in phases)
        + " |",
        "|---|---:|---:|---:|" + "---:|" * len(phases),
    ]
    for life in lives:
        cells = [
            f"{life['seconds'][phase]:.2f}, {life['wal_bytes'][phase] / life['jobs']:,.0f}"
            if phase in life["seconds"]
            else "-"
            for phase in phases
        ]
        wal = sum(life["wal_bytes"].values()) / life["jobs"]
        versus = f"{life['rate'] / raw['rate']:.2f}" if raw else "n/a"
        lines.append(f"| {life['design']} | {life['rate']:,.0f} | {versus} | {wal:,.0f} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def ordering_section(result: dict[str, Any]) -> list[str]:
    sizes = result["sizes"]
    lines = [
        f"### Ordering and concurrency controls (fetch {result['batch']} + complete, {result['keys']:,} keys/groups)",
        "",
        "Median of one fetch and its complete, each control beside a standard queue with the same backlog",
        "(the exclusive queue holds one job per key). Target: within 2x of standard.",
        "",
        "| queued | standard | key_strict_fifo | group_concurrency=1 | exclusive |",
        "|---:|---:|---:|---:|---:|",
    ]
    for size, row in sizes.items():
        ms, ratio = row["ms"], row["ratio"]
        cells = [
            f"{ms[name]:.2f} ms ({ratio[name]:.2f}x {_met(ratio[name], 2.0, above=False)})"
            for name in ("key_strict_fifo", "group_concurrency", "exclusive")
        ]
        lines.append(f"| {int(size):,} | {ms['standard']:.2f} ms | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def connection_paths_section(paths: dict[str, Any]) -> list[str]:
    rates, ratio = paths["jobs_per_s"], paths["ratio"]
    rows = [
        ("direct connection, library defaults (no prepared statements): the baseline", "direct"),
        ("direct connection, prepare_threshold=5", "prepared"),
        ("through PgBouncer 1.18, transaction mode, defaults", "pgbouncer"),
        (f"singleton queue, {paths['keys']:,} keys, direct (keyed fetch)", "singleton"),
    ]
    lines = [
        f"### Connection paths ({paths['jobs']:,} jobs, {paths['workers']} workers, fetch {paths['batch']} + complete)",
        "",
        "| path | jobs/s | vs baseline |",
        "|---|---:|---:|",
    ]
    lines += [f"| {label} | {rates[key]:,.0f} | {ratio[key]:.2f} |" for label, key in rows]
    if "sends_per_s" in paths:
        sends, send_ratio = paths["sends_per_s"], paths["send_ratio"]
        lines += [
            "",
            f"Single sends ({paths['sends']:,}, one connection): defaults {sends['direct']:,.0f}/s; "
            f"prepared statements {sends['prepared']:,.0f}/s ({send_ratio['prepared']:.2f}x); "
            f"through PgBouncer {sends['pgbouncer']:,.0f}/s ({send_ratio['pgbouncer']:.2f}x). Without prepared",
            "statements every statement is parsed and planned again, which a single send feels most.",
        ]
    lines.append("")
    return lines


def backlog_section(rows: list[dict[str, Any]], cpus: int, pinned: bool) -> list[str]:
    jobs = rows[0]["jobs"]
    lines = [
        f"### A backlog of {jobs:,} no-op jobs drained by scale-out",
        "",
        "One tick starts the worker function; it drains 1,000 jobs (MAX_JOBS), starts chains of scale-out",
        "invocations (at most MAX_CONCURRENCY), and each hands over to one successor while work is left.",
        "Invocations run as Lambda runs them: AWS's runtime client in execution environments of their own,",
        "warm after their first, scale-out through the local Invoke API (local/lambda_service.py). Shares",
        "are of the environments' time (wall time x concurrency). Billed: the sum of the REPORT lines'",
        "Billed Duration (init included on a cold start) at 512 MB, with the requests and the log's bytes,",
        "priced per million jobs (bench/prices.py).",
        "",
        "| concurrency | time | jobs/s | invocations | cold start | database | rest of the drain "
        "| invocation overhead | cold starts | idle | billed | $ per million jobs |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        billed = f"{row['billed_ms'] / 1000:,.1f} s" if "billed_ms" in row else "-"
        dollars = f"${row['billed_cost_per_million']:.5f}" if "billed_cost_per_million" in row else "-"
        lines.append(
            f"| {row['concurrency']} | {row['seconds']:.1f} s | {row['jobs_per_s']:,.0f} | {row['invocations']} "
            f"| {row['cold_start_s'] * 1000:.0f} ms | {row['share_database']:.0%} | {row['share_rest_of_drain']:.0%} "
            f"| {row['share_invocation_overhead']:.0%} | {row['share_cold_start']:.0%} | {row['share_idle']:.0%} "
            f"| {billed} | {dollars} |"
        )
    where = "its own CPU, the invocations sharing the other" if pinned else "the same CPUs as the invocations"
    lines += [
        "",
        f"This machine has {cpus} CPUs, Postgres on {where}: past two invocations they wait for the",
        "database and for each other, which is what the idle share shows; on AWS each invocation has its own",
        "CPU and the database its own instance.",
        "",
    ]
    return lines


def worker_function_section(w: dict[str, Any]) -> list[str]:
    batch, team = w["defaults"]
    lines = [
        f"### The worker function beside the core ({w['jobs']:,} no-op jobs, median of {w.get('runs', 1)} run(s))",
        "",
        "The core: one connection, fetch(100) + complete, as fast as one worker can go. The worker",
        "function: functions/worker/app.py's handler in-process with a Lambda-like context, 1,000 jobs",
        "per invocation (template defaults), until the queue is empty; its logs counted at INFO.",
        "",
        "| BATCH_SIZE | TEAM_SIZE | core | worker function | worker/core | target | log bytes per job |",
        "|---:|---:|---:|---:|---:|---|---:|",
    ]
    for row in w["rows"]:
        ratio = row["jobs_per_s"] / row["core"]
        default = (row["batch_size"], row["team_size"]) == (batch, team)
        goal = f">= 0.80 {_met(ratio, 0.8)}" if default else ""
        lines.append(
            f"| {row['batch_size']}{' (default)' if default else ''} | {row['team_size']} | {row['core']:,.0f}/s "
            f"| {row['jobs_per_s']:,.0f}/s | {ratio:.2f} | {goal} | {row['log_bytes_per_job']:.2f} |"
        )
    cost = w["cost_per_million"]
    lines += [
        "",
        f"Cost of one million no-op jobs through the worker function at the defaults ({w['memory_mb']} MB, "
        "arm64; list prices in bench/prices.py): "
        f"compute ${cost['compute']:.5f} + requests ${cost['requests']:.5f} + logs ${cost['logs']:.5f} "
        f"= **${cost['total']:.5f}** (target < $0.01 {_met(cost['total'], 0.01, above=False)}). "
        "In AWS the database is a network hop away, so an invocation lasts longer than here; compute is "
        "the item that grows with it.",
        "",
    ]
    return lines


def write_docs(figures: str) -> None:
    DOCS.write_text(INTRO + "\n" + figures + "\n" + NOTES.read_text())
