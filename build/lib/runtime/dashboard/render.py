"""Jinja2 rendering for the dashboard: one environment per container, autoescaped."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from jobqueue import Job
from runtime import job_actions
from runtime.dashboard import views

TEMPLATES = Path(__file__).parent / "templates"


def when(moment: datetime | None) -> str:
    """A timestamp in UTC to the second; the page's script shows it in the reader's time zone."""
    if moment is None:
        return ""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).isoformat()


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def since(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return ""
    seconds = (now - moment).total_seconds()
    return f"{views.age(seconds)} ago" if seconds >= 0 else f"in {views.age(-seconds)}"


# How each action's button looks; which buttons a job gets comes from runtime.job_actions.
BUTTONS = {
    job_actions.Action.RETRY: ("Retry", "primary"),
    job_actions.Action.CANCEL: ("Cancel", "danger"),
    job_actions.Action.RESUME: ("Resume", ""),
}


def actions_for(job: Job) -> list[tuple[str, str, str]]:
    """(action, label, style) of each action the job's state allows."""
    return [(str(action), *BUTTONS[action]) for action, states in job_actions.ALLOWED.items() if job.state in states]


@cache
def environment() -> Any:
    # Imported here: the JSON API's requests never pay for it.
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,  # a misspelt variable is an error, not an empty cell
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=when, iso=iso, pretty=pretty, age=views.age, message=views.error_message)
    env.globals.update(since=since, actions_for=actions_for)
    return env


def page(template: str, **context: Any) -> str:
    return str(environment().get_template(template).render(**context))
