"""Which platform the runtime serves, learnt from configuration, and its registration.

The runtime knows no platform of its own: JOBS_PLATFORM names the module
(optionally `module:attribute`, default attribute CATALOG) that holds the
platform's `Catalog`. template.yaml sets it for every function; the local
stack and the tests set it too.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping
from typing import Final

from jobqueue import ConfigurationError, InvalidOptionError, Queue, QueueSettings
from jobqueue.settings import QUEUE_SETTINGS, RateLimit, check_all
from runtime.config import json_variable
from runtime.jobtypes import Catalog

VARIABLE: Final = "JOBS_PLATFORM"
DEFAULT_ATTRIBUTE: Final = "CATALOG"

_loaded: dict[str, Catalog] = {}


def load(env: Mapping[str, str] = os.environ) -> Catalog:
    """The configured platform's catalog (imported once per container)."""
    spec = env.get(VARIABLE, "").strip()
    if not spec:
        raise ConfigurationError(f"{VARIABLE} is not set: name the module of the platform's job types, e.g. pods.jobs")
    if spec not in _loaded:
        _loaded[spec] = _import(spec)
    return _loaded[spec]


def _import(spec: str) -> Catalog:
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigurationError(f"{VARIABLE}={spec!r}: cannot import {module_name!r} ({exc})") from None
    catalog = getattr(module, attribute or DEFAULT_ATTRIBUTE, None)
    if not isinstance(catalog, Catalog):
        raise ConfigurationError(f"{VARIABLE}={spec!r}: {attribute or DEFAULT_ATTRIBUTE} is not a runtime Catalog")
    return catalog


OVERRIDES_VARIABLE: Final = "JOBS_QUEUE_OVERRIDES"


def queue_overrides(env: Mapping[str, str] = os.environ) -> QueueSettings:
    """Queue settings laid over every job type's declaration (JOBS_QUEUE_OVERRIDES, a JSON object).

    For a local stack or a test that wants, say, retries seconds apart instead of
    minutes; a deployment leaves it unset and gets the declarations.
    """
    value = json_variable(env, OVERRIDES_VARIABLE)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigurationError(f"{OVERRIDES_VARIABLE} must be a JSON object of queue settings")
    try:
        check_all(QUEUE_SETTINGS, value, OVERRIDES_VARIABLE)
    except InvalidOptionError as exc:
        raise ConfigurationError(str(exc)) from None
    return value  # type: ignore[return-value]


RATE_LIMITS_VARIABLE: Final = "JOBS_RATE_LIMITS"


def rate_limits(env: Mapping[str, str] = os.environ) -> dict[str, RateLimit | None]:
    """The deployment's rate limits (JOBS_RATE_LIMITS): queue -> {"limit": n, "period": s}, or null for none.

    template.yaml builds it from each job type's <Worker>RateLimit parameter and passes it to every
    function, so that whichever registers the queues gives them the same limits.
    """
    value = json_variable(env, RATE_LIMITS_VARIABLE)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigurationError(f"{RATE_LIMITS_VARIABLE} must be a JSON object of queue -> rate limit")
    limits: dict[str, RateLimit | None] = {}
    for name, limit in value.items():
        try:
            checked = None if limit is None else check_all(QUEUE_SETTINGS, {"rate_limit": limit}, name)
            limits[name] = None if checked is None else checked["rate_limit"]
        except InvalidOptionError as exc:
            raise ConfigurationError(f"{RATE_LIMITS_VARIABLE}: queue {name!r}: {exc}") from None
    return limits


def register(queue: Queue, catalog: Catalog | None = None) -> None:
    """Create the dead letter queue, the job types' queues and their schedules (idempotent).

    Existing queues are brought to the declared settings (with JOBS_QUEUE_OVERRIDES
    laid over them), so a change of a declaration reaches the database with the
    next deployment.
    """
    catalog = catalog or load()
    overrides = queue_overrides()
    limits = rate_limits()
    if catalog.dead_letter is not None:
        queue.create_queue(catalog.dead_letter, **catalog.dead_letter_settings)
    for job_type in catalog.job_types:
        settings: QueueSettings = {**job_type.queue_settings(catalog.defaults), **overrides}
        if catalog.dead_letter is not None:
            settings.setdefault("dead_letter", catalog.dead_letter)
        if job_type.name in limits:
            settings["rate_limit"] = limits[job_type.name]
        if not queue.create_queue(job_type.name, **settings):
            queue.update_queue(job_type.name, **settings)
        existing = {(s.key, s.cron, s.timezone, json.dumps(s.data)) for s in queue.get_schedules(job_type.name)}
        for schedule in job_type.schedules:
            declared = (schedule.key, schedule.cron, schedule.tz, json.dumps(dict(schedule.data)))
            if declared not in existing:
                queue.schedule(job_type.name, schedule.cron, dict(schedule.data), tz=schedule.tz, key=schedule.key)
