"""`make dev`: the whole system running on this machine, on embedded defaults.

Starts the local stack (local/stack.py) with its data in `.local/` (or
--data-dir), prints the API's URL and token, and drives a demo workload:
pods are provisioned on three host agents, snapshotted and health-checked,
with faults injected now and then (a host answering 500, an unhealthy pod);
a live table shows jobs per queue and state. Ctrl-C stops everything; the
next run resumes on the same data.

`--once` runs a fixed demo to completion, prints a summary and exits 0 only
if every demo job ended as expected (the test suite runs it).
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from jobqueue import FINISHED, Queue
from local.embedded_postgres import EmbeddedPostgresError
from local.stack import LocalStack
from pods import lifecycle
from runtime import platform

console = Console()
ONCE_TIMEOUT_S = 120.0


def stats_table(queue: Queue, started: float, completed_before: int) -> Table:
    rows = queue.get_queue_stats()
    completed = sum(s.completed for s in rows)
    rate = (completed - completed_before) / max(1e-6, time.monotonic() - started)
    table = Table(title=f"jobs per queue  (completed {completed}, {rate:.1f}/s since start)")
    for column in ("queue", "created", "retry", "active", "completed", "failed", "oldest wait (s)"):
        table.add_column(column, justify="left" if column == "queue" else "right")
    for s in rows:
        if s.created + s.retry + s.active + s.completed + s.failed:
            table.add_row(
                s.name,
                str(s.created),
                str(s.retry),
                str(s.active),
                str(s.completed),
                f"[red]{s.failed}[/red]" if s.failed else "0",
                f"{s.oldest_queued_seconds:.0f}",
            )
    return table


def demo_round(queue: Queue, stack: LocalStack, serial: int) -> None:
    """Three pods provisioned, an older one snapshotted, an older one cleaned up, an email; a fault now and then.

    Every action on a pod goes to its lifecycle queue, so each pod's actions run in the order sent here.
    """
    with queue.db.transaction() as conn:
        for n in range(3):
            tier = "dev.large" if (serial + n) % 6 == 0 else "dev.small"
            pod = f"pod-{serial + n}"
            lifecycle.request(queue, "provision", pod, conn=conn, spec={"tier": tier}, userId=f"user-{n % 3}")
    if serial >= 6:
        # Snapshot a pod that runs now, one of the newest (the oldest are about to be cleaned up).
        newest = queue.db.connection().execute(
            "SELECT id FROM pods.pod WHERE status = 'running' ORDER BY created_on DESC LIMIT 3"
        )
        running = [row[0] for row in newest.fetchall()]
        if running:
            lifecycle.request(queue, "snapshot", random.choice(running))
        queue.send(
            "send-email",
            {
                "to": "user-1@example.com",
                "template": "pod-ready",
                "params": {"podId": f"pod-{serial - 6}", "url": "http://localhost"},
            },
        )
    if serial >= 12:
        with queue.db.transaction() as conn:
            for n in range(3):
                lifecycle.request(queue, "cleanup", f"pod-{serial - 12 + n}", conn=conn)
    if serial % 12 == 0:
        random.choice(stack.agents).faults.fail_next = 1  # one 500 from a host: retried
    if serial % 15 == 0 and serial:
        stack.agents[0].faults.unhealthy.add(f"pod-{serial - 15}")  # restarted by health checks


def run_forever(stack: LocalStack, queue: Queue) -> int:
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    started = time.monotonic()
    completed_before = sum(s.completed for s in queue.get_queue_stats())
    serial = 0
    next_demo = 0.0
    try:
        with Live(stats_table(queue, started, completed_before), console=console, refresh_per_second=2) as live:
            while not stopping:
                if time.monotonic() >= next_demo:
                    demo_round(queue, stack, serial)
                    serial += 3
                    next_demo = time.monotonic() + 2
                stack.step()
                live.update(stats_table(queue, started, completed_before))
                time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    console.print("stopping: the data stays in", stack.data_dir)
    return 0


def run_once(stack: LocalStack, queue: Queue) -> int:
    """Six pods provisioned (a host fails once: retried), two snapshots, an email, health checks,
    and one job of each scheduled job type."""
    stack.agents[0].faults.fail_next = 1
    ids = [
        lifecycle.request(queue, "provision", f"demo-{n}", spec={"tier": "dev.small"}, userId="user-1")
        for n in range(6)
    ]
    expected: dict[str, str] = {job_id: "completed" for job_id in ids if job_id is not None}
    deadline = time.monotonic() + ONCE_TIMEOUT_S
    phase = 0
    while time.monotonic() < deadline:
        stack.step()
        states = {job_id: (job.state if (job := queue.get_job(job_id)) else "missing") for job_id in expected}
        if all(state in FINISHED for state in states.values()):
            if phase == 0:
                more = [lifecycle.request(queue, "snapshot", f"demo-{n}") for n in (0, 1)]
                more.append(
                    queue.send(
                        "send-email",
                        {
                            "to": "user-1@example.com",
                            "template": "pod-ready",
                            "params": {"podId": "demo-0", "url": "http://localhost"},
                        },
                    )
                )
                more.append(queue.send("health-check", {}))
                # What the scheduler sends for each scheduled job type, through its worker.
                for job_type in platform.load().job_types:
                    more += [queue.send(job_type.name, dict(s.data)) for s in job_type.schedules]
                expected.update({str(job_id): "completed" for job_id in more if job_id is not None})
                phase = 1
                continue
            break
        time.sleep(0.1)
    states = {job_id: (job.state if (job := queue.get_job(job_id)) else "missing") for job_id in expected}
    wrong = {job_id: state for job_id, state in states.items() if state != expected[job_id]}
    console.print(stats_table(queue, stack.started_at, 0))
    console.print(
        f"demo: {len(expected)} jobs, {len(expected) - len(wrong)} ended as expected; functions ran "
        f"{sum(f.runs for f in stack.functions.values())} times"
    )
    if wrong:
        for job_id, state in wrong.items():
            job = queue.get_job(job_id)
            console.print(
                f"  {job.name if job else '?'} {job_id}: {state} (expected {expected[job_id]})"
                f" {job.output if job else ''}"
            )
        return 1
    if not api_answers(stack):
        return 1
    console.print("all demo jobs ended as expected")
    return 0


def api_answers(stack: LocalStack) -> bool:
    """The API on localhost serves health with the token and refuses a request without it."""
    import httpx

    deadline = time.monotonic() + 30
    while True:
        try:
            with_token = httpx.get(
                f"{stack.api_url}/health", headers={"Authorization": f"Bearer {stack.env['API_TOKEN']}"}
            )
            without = httpx.get(f"{stack.api_url}/health")
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                console.print("[red]the API did not start[/red]")
                return False
            time.sleep(0.2)
    console.print(f"API: health {with_token.status_code} {with_token.json()}; without a token {without.status_code}")
    page = httpx.get(stack.dashboard_url, headers={"Authorization": f"Bearer {stack.env['API_TOKEN']}"})
    refused = httpx.get(stack.dashboard_url)
    console.print(f"Dashboard: {page.status_code} with the token; without {refused.status_code}")
    return (
        with_token.status_code == 200
        and without.status_code == 401
        and page.status_code == 200
        and f'data-queue="{lifecycle.LIFECYCLE}"' in page.text
        and refused.status_code == 401
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make dev", description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=Path(".local"), help="where the stack keeps its data")
    parser.add_argument(
        "--speed", type=float, default=60.0, help="simulated seconds per real second (60: a minute a second)"
    )
    parser.add_argument("--once", action="store_true", help="run the demo once, print a summary, exit")
    parser.add_argument("--verbose", action="store_true", help="show the functions' log lines")
    args = parser.parse_args(argv)
    errors: list[str] = []
    stack = LocalStack(
        args.data_dir,
        speed=args.speed,
        quiet=not args.verbose,
        on_error=lambda name, exc: errors.append(f"{name}: {type(exc).__name__}: {exc}"),
    )
    try:
        stack.start()
    except EmbeddedPostgresError as exc:
        console.print(f"[red]error:[/red] {exc}")
        stack.stop()
        return 1
    try:
        console.print(f"API:   {stack.api_url}  (Authorization: Bearer {stack.env['API_TOKEN']})")
        console.print(f"Web:   {stack.dashboard_url}  (sign in with the same token)")
        console.print(f"DB:    DATABASE_URL={stack.env['DATABASE_URL']}")
        console.print(f"Speed: {args.speed:g}x (a minute of schedules every {60 / args.speed:g} s)")
        with Queue(stack.env["DATABASE_URL"]) as queue:
            code = run_once(stack, queue) if args.once else run_forever(stack, queue)
        for line in errors[:10]:
            console.print(f"[yellow]function error[/yellow] {line}")
        return code
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
