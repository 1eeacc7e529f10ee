"""Cron schedules: stored in the database, turned into jobs by `run_schedules`.

Exactly once per fire time: the tick locks the schedules it processes (SKIP
LOCKED, so overlapping ticks split them instead of waiting), inserts one job per
due fire time and advances `last_fire_time` in the same transaction. A repeated
tick finds nothing due; a concurrent one finds the rows locked and moves on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Unpack

from jobqueue import options, tracing
from jobqueue.client import Client
from jobqueue.cron import due_fire_times, validate_cron, zone
from jobqueue.errors import InvalidOptionError
from jobqueue.ids import new_id
from jobqueue.models import Schedule
from jobqueue.rows import job_params
from jobqueue.settings import SendOptions

DEFAULT_CATCH_UP = timedelta(hours=1)
MAX_FIRES_PER_TICK = 1_000


def _jsonable_options(send_options: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(send_options)
    if isinstance(result.get("start_after"), datetime):
        raise InvalidOptionError("a schedule's start_after must be a delay in seconds, not a fixed time")
    return result


class Scheduling(Client):
    def schedule(
        self,
        name: str,
        cron: str,
        data: Any = None,
        *,
        tz: str = "UTC",
        key: str = "",
        now: datetime | None = None,
        **send_options: Unpack[SendOptions],
    ) -> None:
        """Create or replace the schedule (name, key): a job on `name` at each fire time of `cron` in `tz`."""
        options.queue_name(name)
        expression = validate_cron(cron)
        zone(tz)
        if not isinstance(key, str) or len(key) > options.MAX_SINGLETON_KEY:
            raise InvalidOptionError(f"schedule key must be a string of at most {options.MAX_SINGLETON_KEY} characters")
        job_params(send_options)  # refuse bad options now, not at every tick
        if send_options.get("id") is not None:
            raise InvalidOptionError("a schedule cannot fix the job id: each fire time makes a new job")
        self.require_queue(name)
        self.db.execute(
            "upsert_schedule",
            {
                "name": name,
                "key": key,
                "cron": expression,
                "timezone": tz,
                "data": self._json(data, "data"),
                "options": options.to_json(_jsonable_options(send_options), "schedule options"),
                "now": options.now_or_none(now),
            },
        )

    def unschedule(self, name: str, key: str | None = "") -> int:
        """Remove a schedule (key=None removes every key of the queue); returns how many."""
        return len(self.db.rows("delete_schedule", {"name": options.queue_name(name), "key": key}))

    def get_schedules(self, name: str | None = None) -> list[Schedule]:
        params = {"name": None if name is None else options.queue_name(name)}
        return [Schedule(**row) for row in self.db.rows("get_schedules", params)]

    def run_schedules(self, now: datetime | None = None, *, catch_up: timedelta = DEFAULT_CATCH_UP) -> list[str]:
        """Create one job per due fire time since the last run (at most `catch_up` back).

        Safe to call repeatedly and concurrently: each (schedule, key, fire
        time) becomes exactly one job. Returns the ids of the jobs created.
        """
        created: list[str] = []
        trace = tracing.current()
        with self.db.transaction() as tx:
            tick = options.now_or_none(now) or self.db.scalar("db_now", None, tx)
            earliest = tick - catch_up
            for row in self.db.rows("lock_schedules", None, tx):
                since = max(row["last_fire_time"] or earliest, earliest)
                times = due_fire_times(row["cron"], row["timezone"], since, tick, limit=MAX_FIRES_PER_TICK)
                if not times:
                    continue
                params = job_params(row["options"] or {})
                params.pop("singleton_next_slot")
                params["data"] = json.dumps(row["data"])
                params["singleton_offset"] = None
                given_id = params["id"]
                for fire_time in times:
                    params["id"] = str(given_id) if given_id is not None else new_id()
                    params["name"] = row["name"]
                    origin: dict[str, Any] = {
                        "schedule": row["name"],
                        "key": row["key"],
                        "fire_time": fire_time.isoformat(),
                    }
                    if trace is not None:  # the scheduler's invocation, when it is traced
                        origin[tracing.TRACE_KEY] = trace
                    params["origin"] = json.dumps(origin)
                    if self.db.affected("send", params, tx):  # a policy or throttle may refuse it, as any send
                        created.append(params["id"])
                self.db.execute("mark_fired", {"name": row["name"], "key": row["key"], "fire_time": times[-1]}, tx)
        return created
