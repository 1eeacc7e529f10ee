"""The `jobs` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from local import invoke as local_invoke


@click.group()
def main() -> None:
    """Operate the job system: run functions locally, inspect and manage jobs."""


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
@click.option("--timeout", type=float, default=None, help="seconds (default: the function's Timeout)")
def invoke(logical_id: str, event_file: Path, env_pairs: tuple[str, ...], timeout: float | None) -> None:
    """Run LOGICAL_ID from template.yaml with an event, as `sam local invoke` would, without Docker."""
    overrides = {}
    for pair in env_pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--env")
        overrides[key] = value
    try:
        outcome = local_invoke.invoke(logical_id, event_file, overrides=overrides, timeout=timeout)
    except KeyError as exc:
        raise click.ClickException(str(exc.args[0])) from None
    if outcome.output:
        click.echo(outcome.output, err=True)
    click.echo(json.dumps(outcome.result, indent=2, default=str))
    sys.exit(0 if outcome.ok else 1)
