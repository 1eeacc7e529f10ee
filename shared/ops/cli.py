"""The `jobs` command line: operate the queue from a terminal.

Reads DATABASE_URL (or --database-url). A user's mistake (a bad option, an
unknown queue or job, an unreachable database) is one clear line on stderr and
a non-zero exit, never a traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.table import Table

from deploy import project
from jobqueue import FINISHED, ConfigurationError, Job, JobQueueError, JobState, Policy, Queue
from jobqueue.models import RUNNER_FIELDS
from local import invoke as local_invoke
from ops import top as top_view
from runtime import catalog, job_actions

# Piped or captured output gets wide tables instead of names cut short.
console = Console(width=None if sys.stdout.isatty() else 160)


def fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


@contextmanager
def open_queue(ctx: click.Context) -> Iterator[Queue]:
    url = ctx.obj.get("database_url")
    if not url:
        fail("no database: set DATABASE_URL or pass --database-url")
    try:
        queue = Queue(url, schema=ctx.obj.get("schema", "jobqueue"))
        with queue:
            yield queue
    except JobQueueError as exc:
        fail(str(exc))


def default_data(queue_name: str) -> Any:
    """What a job's data is when --data is not given: an object for the platform's job types (their
    handlers take one, as from any sender), null for other queues."""
    return {} if queue_name in catalog.load().names else None


def json_option(value: str | None, what: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        fail(f"{what} is not valid JSON: {exc.msg} at position {exc.pos}")
    return None


@click.group()
@click.version_option(package_name="pgjobs", message="%(prog)s (pgjobs) %(version)s")
@click.option("--database-url", envvar="DATABASE_URL", help="postgresql:// URL (default: $DATABASE_URL)")
@click.option("--schema", default="jobqueue", show_default=True, help="the queue's Postgres schema")
@click.option(
    "--platform",
    "platform_spec",
    envvar=catalog.VARIABLE,
    help=f"module of the platform's job types (default: ${catalog.VARIABLE}, else the project's "
    "[tool.pgjobs] platform)",
)
@click.pass_context
def main(ctx: click.Context, database_url: str | None, schema: str, platform_spec: str | None) -> None:
    """Operate the job system: run functions locally, inspect and manage jobs."""
    ctx.obj = {"database_url": database_url, "schema": schema}
    if platform_spec:
        os.environ[catalog.VARIABLE] = platform_spec  # what the runtime (and `invoke`) read
        return
    with contextlib.suppress(ConfigurationError):  # outside a project: the queue's own commands still work
        os.environ[catalog.VARIABLE] = project.find().platform


@main.command()
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Install or upgrade the queue's schema (and the platform's queues)."""
    with open_queue(ctx) as queue:
        version = queue.migrate()
        catalog.register(queue)
    click.echo(f"schema {ctx.obj['schema']} at version {version}; platform queues registered")


@main.command()
@click.argument("queue_name")
@click.option("--data", help="the job's data, as JSON (default: {} for the platform's job types, else null)")
@click.option("--priority", type=int)
@click.option("--start-after", help="seconds, or an ISO 8601 time with a zone")
@click.option("--retry-limit", type=int)
@click.option("--singleton-key")
@click.option("--options", "options_json", help="any other send options, as a JSON object")
@click.pass_context
def send(
    ctx: click.Context,
    queue_name: str,
    data: str | None,
    priority: int | None,
    start_after: str | None,
    retry_limit: int | None,
    singleton_key: str | None,
    options_json: str | None,
) -> None:
    """Send one job to QUEUE_NAME; prints its id."""
    options = json_option(options_json, "--options") or {}
    if not isinstance(options, dict):
        fail("--options must be a JSON object")
    for key, value in (("priority", priority), ("retry_limit", retry_limit), ("singleton_key", singleton_key)):
        if value is not None:
            options[key] = value
    if start_after is not None:
        options["start_after"] = float(start_after) if start_after.replace(".", "", 1).isdigit() else start_after
    payload = default_data(queue_name) if data is None else json_option(data, "--data")
    with open_queue(ctx) as queue:
        job_id = queue.send(queue_name, payload, **catalog.load().send_options(queue_name, payload, options))
    if job_id is None:
        fail(job_actions.refused_by_policy(queue_name))
    click.echo(job_id)


@main.command()
@click.argument("queue_name")
@click.argument("file", type=click.File("r"))
@click.pass_context
def insert(ctx: click.Context, queue_name: str, file: Any) -> None:
    """Insert the jobs in FILE (a JSON array of {"data": ..., options...}, or JSON lines; - for stdin)."""
    text = file.read()
    try:
        jobs = (
            json.loads(text)
            if text.lstrip().startswith("[")
            else [json.loads(line) for line in text.splitlines() if line.strip()]
        )
    except json.JSONDecodeError as exc:
        fail(f"{getattr(file, 'name', 'input')} is not JSON: {exc.msg} at line {exc.lineno}")
    if not isinstance(jobs, list):
        fail("expected a JSON array of jobs")
    declared = catalog.load()
    with open_queue(ctx) as queue:
        jobs = [_with_derived_options(declared, queue_name, job) for job in jobs]
        ids = queue.insert(queue_name, jobs)
    click.echo(f"inserted {len(ids)} of {len(jobs)} jobs into {queue_name}")


def _with_derived_options(declared: Any, queue_name: str, job: Any) -> Any:
    """A job of an insert file with what its job type derives from its data (its key, its group)."""
    if not isinstance(job, dict):
        return job  # insert() names the problem
    given = {k: v for k, v in job.items() if k != "data"}
    return {"data": job.get("data"), **declared.send_options(queue_name, job.get("data"), given)}


@main.command()
@click.option(
    "--max-age",
    type=click.FloatRange(min=0),
    default=None,
    help="seconds a snapshot may hold the MVCC horizon back [default: $HORIZON_WARN_SECONDS or 300]",
)
@click.pass_context
def doctor(ctx: click.Context, max_age: float | None) -> None:
    """What holds the MVCC horizon back: sessions, standbys, replication slots, prepared transactions.

    While a snapshot is held, vacuum cannot remove the jobs claimed and finished since: the tables
    and their indexes grow. Exits 1 when a snapshot is older than --max-age.
    """
    from runtime.config import horizon_warn_seconds

    limit = horizon_warn_seconds() if max_age is None else max_age
    with open_queue(ctx) as queue:
        found = queue.horizon()
    click.echo(
        f"oldest snapshot: {found.oldest_seconds:,.0f} s; job tables: {found.dead_job_tuples:,} dead rows, "
        f"{found.live_job_tuples:,} live"
    )
    if not found.holders:
        click.echo("nothing holds the horizon back")
    table = Table("holder", "held (s)", "xmin age", "details")
    for holder in found.holders:
        shown = ", ".join(f"{key} {value}" for key, value in holder.details.items())
        held = "?" if holder.held_seconds is None else f"{holder.held_seconds:,.0f}"
        table.add_row(f"{holder.kind} {holder.name}", held, f"{holder.xmin_age or 0:,}", shown)
    if found.holders:
        console.print(table)
    old = [h for h in found.older_than(limit) if h.held_seconds is not None]
    if old:
        click.echo(f"problem: {old[0].describe()}: older than {limit:,.0f} s", err=True)
        click.echo(
            "end that transaction (pg_terminate_backend for a session, ROLLBACK PREPARED, drop an unused slot)",
            err=True,
        )
        sys.exit(1)
    unknown = [h for h in found.holders if h.held_seconds is None and h.kind == "session"]
    if unknown:
        click.echo(
            f"note: the age of {len(unknown)} session(s) of other roles is hidden (grant pg_read_all_stats)", err=True
        )


@main.command()
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_context
def stats(ctx: click.Context, as_json: bool) -> None:
    """Jobs per queue and state, and the wait of each queue's oldest ready job."""
    with open_queue(ctx) as queue:
        rows = queue.get_queue_stats()
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "queue": s.name,
                        "created": s.created,
                        "retry": s.retry,
                        "active": s.active,
                        "completed": s.completed,
                        "cancelled": s.cancelled,
                        "failed": s.failed,
                        "oldest_queued_seconds": s.oldest_queued_seconds,
                        "paused": s.paused,
                    }
                    for s in rows
                ],
                indent=2,
            )
        )
        return
    table = Table("queue", "created", "retry", "active", "completed", "cancelled", "failed", "oldest wait (s)")
    for s in rows:
        table.add_row(
            f"{s.name} (paused)" if s.paused else s.name,
            str(s.created),
            str(s.retry),
            str(s.active),
            str(s.completed),
            str(s.cancelled),
            str(s.failed),
            f"{s.oldest_queued_seconds:.0f}",
        )
    console.print(table)


@main.command()
@click.option(
    "--interval", type=click.FloatRange(0.5, 3600), default=2.0, show_default=True, help="seconds between frames"
)
@click.option("--once", is_flag=True, help="print one frame and exit (also when the output is not a terminal)")
@click.pass_context
def top(ctx: click.Context, interval: float, once: bool) -> None:
    """The queues live: waiting, active, failed, finished per minute over the last hour, wait and run p95."""
    with open_queue(ctx) as queue:
        top_view.watch(queue, console, interval, once=once)


@main.command("queue")
@click.argument("queue_name")
@click.pass_context
def queue_command(ctx: click.Context, queue_name: str) -> None:
    """A queue's policy, where its finished jobs go, its rate limits (and the fullest groups'
    windows), the keys a failed job blocks (key_strict_fifo) and its active jobs per group."""
    with open_queue(ctx) as queue:
        info = queue.get_queue(queue.require_queue(queue_name))
        if info is None:
            fail(f"queue {queue_name!r} was deleted meanwhile")
        blocked = queue.get_blocked_keys(queue_name) if info.policy is Policy.KEY_STRICT_FIFO else []
        groups = queue.active_groups(queue_name)
        window = queue.rate_window(queue_name)
        group_windows = queue.group_rate_windows(queue_name)
    click.echo(f"queue {info.name}: policy {info.policy}")
    if info.archive:
        kept = f"deleted {info.delete_after} s later" if info.delete_after else "kept for good"
        click.echo(f"finished jobs: archived {info.archive_after} s after they finish, {kept}")
    else:
        click.echo(f"finished jobs: deleted {info.archive_after} s after they finish, not archived")
    if info.partition:
        click.echo("jobs: in a partition of the job table of their own (partition=True)")
    if window is not None:
        click.echo(
            f"rate limit: {window.limit} jobs started in any {window.period} s; now {window.started} started, "
            + (f"room for {window.room}" if window.room else f"full for {window.frees_in:.1f} s more")
        )
    if info.group_rate_limit:
        rate = info.group_rate_limit
        click.echo(f"group rate limit: {rate['limit']} jobs started in any {rate['period']} s per group")
        if group_windows:
            windows = Table("group", "started", "room")
            for group_window in group_windows:
                room = str(group_window.room) if group_window.room else f"full for {group_window.frees_in:.1f} s"
                windows.add_row(group_window.group_id or "", str(group_window.started), room)
            console.print(windows)
    if info.fairness != "fifo":
        weights = info.fairness["tiers"] if isinstance(info.fairness, dict) else {}
        shares = ", ".join(f"{tier} {weight}" for tier, weight in weights.items())
        click.echo("fairness: round robin between groups" + (f", jobs a turn per tier: {shares}" if shares else ""))
    if info.policy is Policy.KEY_STRICT_FIFO:
        click.echo(f"blocked keys ({len(blocked)}): {', '.join(blocked) or 'none'}")
    if groups:
        table = Table("group", "tier", "active")
        for group in groups:
            table.add_row(group.group_id, group.tier or "", str(group.active))
        console.print(table)
    else:
        click.echo("no group has active jobs")


@main.command("pause-queue")
@click.argument("queue_name")
@click.pass_context
def pause_queue(ctx: click.Context, queue_name: str) -> None:
    """Pause QUEUE_NAME: its workers fetch nothing until resume-queue; sends and schedules go on."""
    _switch(ctx, queue_name, job_actions.QueueAction.PAUSE)


def _switch(ctx: click.Context, queue_name: str, chosen: job_actions.QueueAction) -> None:
    with open_queue(ctx) as queue:
        paused = job_actions.apply_to_queue(queue, chosen, queue_name)["paused"]
    click.echo(f"{'paused' if paused else 'resumed'} {queue_name}")


@main.command()
@click.argument("dead_letter_queue")
@click.argument("job_ids", nargs=-1)
@click.pass_context
def redrive(ctx: click.Context, dead_letter_queue: str, job_ids: tuple[str, ...]) -> None:
    """Move DEAD_LETTER_QUEUE's jobs (all, or JOB_IDS) back to the queues they came from."""
    with open_queue(ctx) as queue:
        chosen = job_actions.QueueAction.REDRIVE
        result = job_actions.apply_to_queue(queue, chosen, dead_letter_queue, list(job_ids) or None)
    for letter, again in result["moved"].items():
        click.echo(f"redriven: {letter} -> {again}")
    for letter, why in result["skipped"].items():
        click.echo(f"stayed: {letter}: {why}")
    click.echo(f"{len(result['moved'])} moved, {len(result['skipped'])} stayed")


@main.command("resume-queue")
@click.argument("queue_name")
@click.pass_context
def resume_queue(ctx: click.Context, queue_name: str) -> None:
    """Let a paused QUEUE_NAME's jobs be fetched again."""
    _switch(ctx, queue_name, job_actions.QueueAction.RESUME)


@main.command()
@click.argument("queue_name", required=False)
@click.option("--limit", default=20, show_default=True)
@click.pass_context
def failed(ctx: click.Context, queue_name: str | None, limit: int) -> None:
    """The most recently failed jobs (of QUEUE_NAME, or of all queues)."""
    with open_queue(ctx) as queue:
        jobs = queue.failed_jobs(limit=limit, name=None if queue_name is None else queue.require_queue(queue_name))
    table = Table("id", "queue", "attempts", "failed at", "error")
    for job in jobs:
        error = job.output.get("message", "") if isinstance(job.output, dict) else str(job.output)
        table.add_row(
            job.id, job.name, f"{job.attempts_made} of {job.retry_limit + 1}", _when(job.completed_on), error[:80]
        )
    console.print(table)


@main.command()
@click.argument("job_id")
@click.pass_context
def show(ctx: click.Context, job_id: str) -> None:
    """Everything about one job (hot or archived)."""
    with open_queue(ctx) as queue:
        job = queue.get_job(job_id)
        if job is None:
            fail(queue.missing_job(job_id))
    _print_job(job)


def _print_job(job: Job) -> None:
    # The same record as the API's GET /api/jobs/{id}: attempts counted as everywhere else.
    record = {k: v for k, v in asdict(job).items() if k not in RUNNER_FIELDS}
    click.echo(json.dumps({**record, "attempts": job.attempts_made}, indent=2, default=str))


@main.command()
@click.argument("batch_id")
@click.pass_context
def batch(ctx: click.Context, batch_id: str) -> None:
    """A batch of jobs (Queue.insert's batch): how many, and how many finished in each way."""
    with open_queue(ctx) as queue:
        found = queue.get_batch(batch_id)
    if found is None:
        fail(queue.missing_batch(batch_id))
    click.echo(json.dumps({**asdict(found), "unfinished": found.unfinished}, indent=2, default=str))


@main.command()
@click.argument("job_id")
@click.option("--timeout", default=60.0, show_default=True, help="seconds to wait at most")
@click.pass_context
def wait(ctx: click.Context, job_id: str, timeout: float) -> None:
    """Wait for a job to finish, then print it as `show` does. Exit status: 0 completed, 1 failed
    or cancelled, 2 still unfinished when the timeout passed."""
    with open_queue(ctx) as queue:
        found = queue.get_job(job_id)
        if found is None:
            fail(queue.missing_job(job_id))
        job = queue.wait(found.name, found.id, timeout=timeout) or found
    _print_job(job)
    if job.state is not JobState.COMPLETED:
        ctx.exit(2 if job.state not in FINISHED else 1)


def _act(ctx: click.Context, job_ids: tuple[str, ...], chosen: job_actions.Action) -> None:
    with open_queue(ctx) as queue:
        for job_id in job_ids:
            try:
                job_actions.apply(queue, chosen, job_id)
            except JobQueueError as exc:
                fail(str(exc))
            click.echo(f"{chosen}: {job_id}")


@main.command()
@click.argument("job_ids", nargs=-1, required=True)
@click.pass_context
def retry(ctx: click.Context, job_ids: tuple[str, ...]) -> None:
    """Put failed jobs back in their queue, with a fresh set of attempts."""
    _act(ctx, job_ids, job_actions.Action.RETRY)


@main.command()
@click.argument("job_ids", nargs=-1, required=True)
@click.pass_context
def cancel(ctx: click.Context, job_ids: tuple[str, ...]) -> None:
    """Cancel jobs that have not finished."""
    _act(ctx, job_ids, job_actions.Action.CANCEL)


@main.command()
@click.argument("job_ids", nargs=-1, required=True)
@click.pass_context
def resume(ctx: click.Context, job_ids: tuple[str, ...]) -> None:
    """Put cancelled jobs back in their queue."""
    _act(ctx, job_ids, job_actions.Action.RESUME)


@main.group(invoke_without_command=True)
@click.pass_context
def schedules(ctx: click.Context) -> None:
    """List, add or remove cron schedules."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_schedules)


@schedules.command("list")
@click.pass_context
def list_schedules(ctx: click.Context) -> None:
    """The schedules and their next fire times."""
    from datetime import UTC

    from jobqueue import next_fire_times

    with open_queue(ctx) as queue:
        rows = queue.get_schedules()
    table = Table("queue", "key", "cron", "time zone", "last fired", "next")
    now = datetime.now(UTC)
    for s in rows:
        # After the last fire time too: "next" never comes before "last" (make dev's clock runs ahead).
        upcoming = next_fire_times(s.cron, s.timezone, max(now, s.last_fire_time or now), 1)
        # last_fire_time starts at the schedule's creation (nothing before it fires): not a fire.
        fired = s.last_fire_time if s.last_fire_time and s.last_fire_time > s.created_on else None
        table.add_row(s.name, s.key, s.cron, s.timezone, _when(fired), _when(upcoming[0] if upcoming else None))
    console.print(table)


@schedules.command("add")
@click.argument("queue_name")
@click.argument("cron")
@click.option("--tz", default="UTC", show_default=True)
@click.option("--key", default="", help="to keep several schedules on one queue")
@click.option("--data", help="the jobs' data, as JSON (default: {} for the platform's job types, else null)")
@click.option("--replace", is_flag=True, help="replace the schedule (QUEUE_NAME, --key) if there is one")
@click.pass_context
def add_schedule(
    ctx: click.Context, queue_name: str, cron: str, tz: str, key: str, data: str | None, replace: bool
) -> None:
    """Create the schedule (QUEUE_NAME, --key); an existing one is replaced only with --replace."""
    payload = default_data(queue_name) if data is None else json_option(data, "--data")
    with open_queue(ctx) as queue:
        existing = [s for s in queue.get_schedules(queue.require_queue(queue_name)) if s.key == key]
        if existing and not replace:
            fail(
                f"{queue_name!r} already has a schedule with key {key!r} ({existing[0].cron} {existing[0].timezone}):"
                " pass --replace to replace it, or --key to add another"
            )
        queue.schedule(queue_name, cron, payload, tz=tz, key=key)
    click.echo(f"{'replaced' if existing else 'scheduled'} {queue_name} at {cron!r} ({tz})")


@schedules.command("remove")
@click.argument("queue_name")
@click.option("--key", default="")
@click.pass_context
def remove_schedule(ctx: click.Context, queue_name: str, key: str) -> None:
    """Remove a schedule."""
    with open_queue(ctx) as queue:
        removed = queue.unschedule(queue_name, key)
    if not removed:
        fail(f"no schedule for {queue_name!r} with key {key!r}")
    click.echo(f"removed the schedule of {queue_name}")


@main.command()
@click.argument("logical_id")
@click.option(
    "-e",
    "--event",
    "event_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="event file, e.g. events/schedule.json",
)
@click.option("--env", "env_pairs", multiple=True, metavar="KEY=VALUE", help="extra environment for the function")
@click.option(
    "--env-vars",
    "env_vars_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="sam local's env-vars file (e.g. .local/sam-env.json): exactly the environment sam would give",
)
@click.option("--timeout", type=float, default=None, help="seconds (default: the function's Timeout)")
def invoke(
    logical_id: str, event_file: Path, env_pairs: tuple[str, ...], env_vars_file: Path | None, timeout: float | None
) -> None:
    """Run LOGICAL_ID from template.yaml with an event, as `sam local invoke` would, without Docker.

    The function runs in a new execution environment (AWS's runtime client in a process of its own);
    its log, ending with Lambda's REPORT line, goes to stderr, the payload Lambda returns to stdout.
    """
    if env_vars_file is not None and env_pairs:
        raise click.UsageError("--env-vars gives the whole environment, as sam local does: drop --env")
    try:
        env_vars = local_invoke.read_env_vars(env_vars_file) if env_vars_file else None
    except local_invoke.EnvVarsError as exc:
        raise click.BadParameter(str(exc), param_hint="--env-vars") from None
    overrides = {}
    for pair in env_pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--env")
        overrides[key] = value
    try:
        outcome = local_invoke.invoke(logical_id, event_file, overrides=overrides, timeout=timeout, env_vars=env_vars)
    except KeyError as exc:
        raise click.ClickException(str(exc.args[0])) from None
    if outcome.output:
        click.echo(outcome.output, err=True)
    click.echo(json.dumps(outcome.result, indent=2, default=str))
    # An HTTP function that answers 5xx failed too (its handler caught the error and said so).
    status = outcome.result.get("statusCode") if isinstance(outcome.result, dict) else None
    sys.exit(0 if outcome.ok and not (isinstance(status, int) and status >= 500) else 1)


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def dev(ctx: click.Context) -> None:
    """Run the whole system locally (what `make dev` runs); options as for make dev ARGS."""
    from local.dev import main as dev_main

    sys.exit(dev_main(ctx.args))


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", help="the project's name (default: the directory's), e.g. billing-jobs")
@click.option(
    "--pgjobs",
    "requirement",
    metavar="REQUIREMENT",
    help="how the project requires pgjobs (default: this version, e.g. pgjobs==0.2.0; or 'pgjobs @ file:///...whl')",
)
def init(directory: Path, name: str | None, requirement: str | None) -> None:
    """Write a new project into DIRECTORY: one job type, its tests, template.yaml, ready for make dev."""
    from deploy import skeleton

    try:
        written = skeleton.init(directory, name, requirement)
    except ConfigurationError as exc:
        fail(str(exc))
    click.echo(f"wrote {len(written)} files into {directory}")
    click.echo(f"next: cd {directory} && make test && make dev")


@main.command("template")
def template_command() -> None:
    """Regenerate the project's template.yaml from its job types ([tool.pgjobs] platform)."""
    from deploy import template as project_template

    try:
        path = project_template.write()
    except ConfigurationError as exc:
        fail(str(exc))
    click.echo(f"wrote {path}")


def _when(moment: datetime | None) -> str:
    """A moment in UTC, saying so."""
    from datetime import UTC

    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"
