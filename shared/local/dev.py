"""`make dev` (`jobs dev` in any project): the whole system running on this machine, on embedded defaults.

Starts the local stack (local/stack.py) for the current project (deploy.project) with
its data in `.local/` (or --data-dir), prints the API's URL and token, and drives the
platform's demo load (local.platform; for pods, podslocal: pods are provisioned on three
host agents, snapshotted, health-checked and cleaned up, with faults injected now and
then). A live table shows jobs per queue and state; the functions' logs and metrics go
to `.local/logs/<function>.log` (--verbose: to the terminal). Ports and the API token are kept
in `.local/stack.json`, so a restart keeps the same URLs; Ctrl-C stops everything and the
next run resumes on the same data (--reset starts from empty data). `.local/sam-env.json`
lets `sam local invoke` and `sam local start-api` run the functions in containers against
this stack (local/sam_env.py); --no-demo runs the stack without the demo's load.

`--once` runs the platform's --once jobs (by default each job type's `example`) to
completion, prints a summary and exits 0 only if every one completed (the test suite runs
it). `--soak N` runs the demo for N simulated minutes, then lets the work drain, runs the
platform's checks (for pods: every pod cleaned up, no host slot leaked), and exits
non-zero if health turned unhealthy, work did not drain, or a check failed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Group
from rich.live import Live
from rich.table import Table

from jobqueue import FINISHED, ConfigurationError, Queue
from local import sam_env
from local.embedded_postgres import EmbeddedPostgresError
from local.screen import Screen
from local.soak import Soak, summary, wait_for_api, waiting
from local.stack import LocalStack
from local.stack_settings import StackSettings
from runtime import catalog

ONCE_TIMEOUT_S = 120.0
PLAIN_EVERY_S = 10.0  # a status line this often when the output is not a terminal
HEALTH_EVERY_S = 5.0  # a soak asks the API's health this often


def stats_table(queue: Queue, started: float, completed_before: int, status: str) -> Table:
    rows = queue.get_queue_stats()
    dead_letters = queue.dead_letter_sources()
    completed = sum(s.completed for s in rows)
    rate = (completed - completed_before) / max(1e-6, time.monotonic() - started)
    table = Table(title=f"jobs per queue  (completed {completed}, {rate:.1f}/s since start)", caption=status)
    for column in ("queue", "created", "retry", "active", "completed", "failed", "cancelled", "oldest wait (s)"):
        table.add_column(column, justify="left" if column == "queue" else "right")
    for s in rows:
        if s.created + s.retry + s.active + s.completed + s.failed + s.cancelled:
            table.add_row(
                f"{s.name} (dead letters)" if s.name in dead_letters else s.name,
                str(s.created),
                str(s.retry),
                str(s.active),
                str(s.completed),
                f"[red]{s.failed}[/red]" if s.failed else "0",
                str(s.cancelled),
                f"{s.oldest_queued_seconds:.0f}",
            )
    return table


def functions_table(stack: LocalStack) -> Table:
    """Each function as Lambda would bill it: invocations, cold starts, errors, billed time."""
    table = Table(title="functions (Lambda's REPORT lines, summed)")
    for column in (
        "function",
        "invocations",
        "cold starts",
        "errors",
        "timeouts",
        "retries",
        "billed ms",
        "environments",
    ):
        table.add_column(column, justify="left" if column == "function" else "right")
    service = stack.lambda_service
    for name, function in (service.functions if service else {}).items():
        stats = function.stats
        if stats.invocations:
            table.add_row(
                name,
                str(stats.invocations),
                str(stats.cold_starts),
                f"[red]{stats.errors}[/red]" if stats.errors else "0",
                str(stats.timeouts),
                str(stats.retries),
                f"{stats.billed_ms:,}",
                str(function.running),
            )
    return table


def status_line(queue: Queue, stack: LocalStack, started: float, completed_before: int) -> str:
    """One line: what the live table says, for output that is not a terminal."""
    found = summary(queue)
    rate = (found["completed"] - completed_before) / max(1e-6, time.monotonic() - started)
    return (
        f"{time.monotonic() - started:6.0f}s  simulated {stack.simulated_now():%Y-%m-%d %H:%M}Z  "
        f"completed {found['completed']} ({rate:.1f}/s)  waiting {sum(waiting(queue).values())}  "
        f"failed {found['failed']}  dead letters {found['dead_letters']}  blocked keys {found['blocked_keys']}"
    )


class Stopper:
    """SIGTERM, Ctrl-C and a closed terminal (SIGHUP) end the loop at its next step, so that the stack
    stops its processes (Postgres, the API) instead of leaving them behind."""

    def __init__(self) -> None:
        self.stopping = False
        for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(number, self.stop)

    def stop(self, *_: object) -> None:
        self.stopping = True


def drive(
    stack: LocalStack,
    queue: Queue,
    screen: Screen,
    until: float | None,
    soak: Soak | None = None,
    *,
    demo_load: bool = True,
) -> bool:
    """Run the stack (and the demo's load) until `until` (monotonic) or a stop signal; False when stopped early."""
    stopper = Stopper()
    started = time.monotonic()
    completed_before = summary(queue)["completed"]
    platform = stack.platform
    assert platform is not None  # the stack has started
    demo_load = demo_load and platform.has_load()
    rounds = 0
    settled = False
    next_round = next_plain = next_health = 0.0
    log = f"functions' logs: {stack.data_dir / 'logs'}/" if screen.log_path else "functions' logs: above"

    def table() -> Group:
        status = f"simulated {stack.simulated_now():%Y-%m-%d %H:%M}Z · {log} · Ctrl-C stops"
        return Group(stats_table(queue, started, completed_before, status), functions_table(stack))

    # Live would otherwise take over sys.stdout and print what the functions write there (their
    # metrics: Powertools prints them) above the table; they belong in the log file, as their logs.
    redirect = screen.log_path is None
    live = (
        Live(table(), console=screen.console, auto_refresh=False, redirect_stdout=redirect, redirect_stderr=redirect)
        if screen.interactive
        else None
    )
    with live or contextlib.nullcontext():
        while not stopper.stopping and (until is None or time.monotonic() < until):
            now = time.monotonic()
            if demo_load and now >= next_round:
                platform.demo_round(queue, stack, rounds)
                rounds += 1
                next_round = now + platform.round_s
            if stack.step() and not settled:
                # The first ticks end before the first status line: it then tells what they did, and
                # whoever waits for it (sam local's tests) knows the stack's own work is done.
                settled = stack.settle()
            if soak is not None and now >= next_health:
                soak.check_health(stack)
                next_health = now + HEALTH_EVERY_S
                if soak.problems:
                    break
            if live is not None:
                live.update(table(), refresh=True)
            elif now >= next_plain:
                screen.line(status_line(queue, stack, started, completed_before))
                next_plain = now + PLAIN_EVERY_S
            time.sleep(0.2)
    return not stopper.stopping


def run_forever(stack: LocalStack, queue: Queue, screen: Screen, *, demo_load: bool = True) -> int:
    drive(stack, queue, screen, until=None, demo_load=demo_load)
    screen.line(f"stopping: the data stays in {stack.data_dir}")
    return 0


def run_soak(stack: LocalStack, queue: Queue, screen: Screen, minutes: float) -> int:
    """The demo for `minutes` simulated minutes, then: work drains, and the platform's own checks hold."""
    soak = Soak()
    if not wait_for_api(stack):
        screen.line("error: the API did not start")
        return 1
    real_s = minutes * 60 / stack.speed
    screen.line(f"Soak:  {minutes:g} simulated minutes ({real_s:.0f} s at {stack.speed:g}x)")
    finished = drive(stack, queue, screen, until=time.monotonic() + real_s, soak=soak)
    if not finished:
        screen.line("soak stopped before its end")
        return 1
    if not soak.problems:
        soak.drain(stack, queue, 120, "after the load stopped")
    assert stack.platform is not None
    stack.platform.after_soak(soak, stack, queue)
    found = summary(queue)
    screen.line(
        f"soak: {minutes:g} simulated minutes, {found['completed']} jobs completed, {found['failed']} failed, "
        f"{found['cancelled']} cancelled, {found['dead_letters']} dead letters, {found['blocked_keys']} blocked "
        f"keys; health asked {soak.health_checks} times"
    )
    screen.console.print(functions_table(stack))
    for problem in soak.problems:
        screen.line(f"problem: {problem}")
    screen.line("soak passed" if not soak.problems else "soak failed")
    return 1 if soak.problems else 0


def run_once(stack: LocalStack, queue: Queue, screen: Screen) -> int:
    """The platform's --once jobs (local.platform.once), each list run to completion before the next is sent."""
    assert stack.platform is not None
    expected: dict[str, str] = {}
    deadline = time.monotonic() + ONCE_TIMEOUT_S
    for sent in stack.platform.once(queue, stack):
        expected.update({job_id: "completed" for job_id in sent if job_id is not None})
        while time.monotonic() < deadline:
            stack.step()
            now = [job.state if (job := queue.get_job(job_id)) else "missing" for job_id in expected]
            if all(state in FINISHED for state in now):
                break
            time.sleep(0.1)
    states = {job_id: (job.state if (job := queue.get_job(job_id)) else "missing") for job_id in expected}
    wrong = {job_id: state for job_id, state in states.items() if state != expected[job_id]}
    screen.console.print(stats_table(queue, stack.started_at, 0, ""))
    screen.console.print(functions_table(stack))
    screen.line(
        f"demo: {len(expected)} jobs, {len(expected) - len(wrong)} ended as expected; functions ran "
        f"{stack.invocations()} times"
    )
    if not expected:
        screen.line("no job to try: give a job type an `example` (runtime.jobtypes.JobType)")
    if wrong:
        for job_id, state in wrong.items():
            job = queue.get_job(job_id)
            screen.line(
                f"  {job.name if job else '?'} {job_id}: {state} (expected {expected[job_id]})"
                f" {job.output if job else ''}"
            )
        return 1
    if not api_answers(stack, screen):
        return 1
    screen.line("all demo jobs ended as expected")
    return 0


def api_answers(stack: LocalStack, screen: Screen) -> bool:
    """The API on localhost serves health with the token and refuses a request without it."""
    import httpx

    if not wait_for_api(stack):
        screen.line("error: the API did not start")
        return False
    with_token = httpx.get(f"{stack.api_url}/health", headers={"Authorization": f"Bearer {stack.env['API_TOKEN']}"})
    without = httpx.get(f"{stack.api_url}/health")
    screen.line(f"API: health {with_token.status_code} {with_token.json()}; without a token {without.status_code}")
    page = httpx.get(stack.dashboard_url, headers={"Authorization": f"Bearer {stack.env['API_TOKEN']}"})
    refused = httpx.get(stack.dashboard_url)
    screen.line(f"Dashboard: {page.status_code} with the token; without {refused.status_code}")
    return (
        with_token.status_code == 200
        and without.status_code == 401
        and page.status_code == 200
        and f'data-queue="{catalog.load().job_types[0].name}"' in page.text
        and refused.status_code == 401
    )


def write_env_file(data_dir: Path, stack: LocalStack) -> Path:
    """`<data dir>/env`: the stack's DATABASE_URL, API_URL and API_TOKEN, for a shell to source."""
    path = data_dir / "env"
    path.write_text(
        f"DATABASE_URL={stack.env['DATABASE_URL']}\nAPI_URL={stack.api_url}\nAPI_TOKEN={stack.env['API_TOKEN']}\n"
    )
    path.chmod(0o600)  # holds the token
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make dev", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=Path(".local"), help="where the stack keeps its data")
    parser.add_argument(
        "--speed", type=float, default=60.0, help="simulated seconds per real second (60: a minute a second)"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="run the demo once, print a summary, exit")
    mode.add_argument(
        "--soak", type=float, metavar="MINUTES", help="run the demo for MINUTES simulated minutes, check, exit"
    )
    parser.add_argument("--reset", action="store_true", help="start from empty data (ports and token are kept)")
    parser.add_argument("--api-port", type=int, help="the API's and dashboard's port (default: as last time)")
    parser.add_argument("--pg-port", type=int, help="Postgres's port (default: as last time)")
    parser.add_argument("--verbose", action="store_true", help="the functions' logs and metrics on the terminal")
    mode.add_argument(
        "--no-demo",
        action="store_true",
        help="the stack and its schedules only: no demo load (for sam local, your jobs)",
    )
    parser.add_argument(
        "--sam-host",
        default=sam_env.default_container_host(),
        help="how sam local's containers reach this machine, for .local/sam-env.json "
        f"(default here: {sam_env.default_container_host()}; {sam_env.LOOPBACK} means --docker-network host)",
    )
    args = parser.parse_args(argv)
    if args.reset:
        shutil.rmtree(args.data_dir / "postgres", ignore_errors=True)
    screen = Screen(args.data_dir, verbose=args.verbose)
    settings, changes = StackSettings.load(
        args.data_dir, postgres_port=args.pg_port, api_port=args.api_port, api_token=os.environ.get("API_TOKEN")
    )
    for change in changes:
        screen.line(f"note: {change}")
    errors: list[str] = []
    stack = LocalStack(
        args.data_dir,
        speed=args.speed,
        quiet=not args.verbose,
        on_error=lambda name, error: errors.append(f"{name}: {error}"),
        # --verbose: each function's stream on the terminal, its lines marked with its name.
        function_log=(lambda name, line: screen.line(f"[{name}] {line}")) if args.verbose else None,
    )
    try:
        stack.start(settings)
    except (EmbeddedPostgresError, ConfigurationError) as exc:
        screen.line(f"error: {exc}")
        stack.stop()
        return 1
    try:
        screen.line(f"API:   {stack.api_url}")
        screen.line(
            f"Token: {stack.env['API_TOKEN']}   (Authorization: Bearer <token>; kept in {args.data_dir}/stack.json)"
        )
        screen.line(f"Web:   {stack.dashboard_url}   (sign in with the token)")
        screen.line(f"DB:    DATABASE_URL={stack.env['DATABASE_URL']}")
        screen.line(f"Speed: {args.speed:g}x (a minute of schedules every {60 / args.speed:g} s)")
        if screen.log_path:
            logs = args.data_dir / "logs"
            screen.line(f"Logs:  {logs}/<function>.log (each function's own stream: its lines, metrics, REPORT)")
        env_file = write_env_file(args.data_dir, stack)
        screen.line(f"Env:   set -a; . {env_file}; set +a   (DATABASE_URL, API_URL and API_TOKEN for `jobs`, curl)")
        sam_file = sam_env.write(args.data_dir, stack.env, args.sam_host)
        network = sam_env.docker_network_option(args.sam_host)
        screen.line(
            f"SAM:   sam local invoke <LogicalId> -e events/<event>.json --env-vars {sam_file} {network}".rstrip()
        )
        with Queue(stack.env["DATABASE_URL"]) as queue:
            if args.once:
                code = run_once(stack, queue, screen)
            elif args.soak is not None:
                code = run_soak(stack, queue, screen, args.soak)
            else:
                code = run_forever(stack, queue, screen, demo_load=not args.no_demo)
        for line in errors[:10]:
            screen.line(f"function error: {line}")
        return code
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
