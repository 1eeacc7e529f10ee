"""Flows (pg-boss 12's `flow`): jobs across queues created together, each starting once the jobs
it depends on have completed.

A job with parents waits (start_after in the year 9999, so no fetch sees it) with a count of the parents
not yet completed; the statement that completes a parent counts it off and makes the child ready
when it reaches 0 (sql/queries/flows.sql: the fragment resolve_dependents), so there is no background pass and
no latency beyond the completion itself. A parent that fails for good or is cancelled cancels
every job below it, saying which job it waited for.
"""

from __future__ import annotations

import graphlib
from collections.abc import Mapping, Sequence
from typing import Any, Final

from jobqueue import options
from jobqueue.client import Conn
from jobqueue.errors import InvalidOptionError, PolicyConflictError
from jobqueue.models import Job, job_row
from jobqueue.sending import Sending

FLOW_KEYS: Final = frozenset({"ref", "name", "data", "options", "depends_on"})
MAX_FLOW_JOBS: Final = 1000


class Flows(Sending):
    """Part of Queue: a flow's jobs are sent as any job is."""

    def flow(self, jobs: Sequence[Mapping[str, Any]], conn: Conn = None) -> dict[str, str]:
        """Create the jobs of a flow, all or none; returns {ref: job id}.

        Each item: {"ref": str, "name": queue, "data": ..., "options": {send options},
        "depends_on": [refs]}. A job with `depends_on` starts when all of them have
        completed (its own start_after is refused: it starts then); if one fails for
        good or is cancelled, it is cancelled with the reason.
        """
        by_ref, order = checked_flow(jobs)
        ids: dict[str, str] = {}
        with self.db.transaction(conn) as tx:
            for ref in order:
                item = by_ref[ref]
                job_id = self.send(item["name"], item.get("data"), conn=tx, **dict(item.get("options") or {}))
                if job_id is None:
                    refused = f"flow: queue {item['name']!r} refused job {ref!r} (its policy or a throttle)"
                    raise PolicyConflictError(f"{refused}; nothing was created")
                ids[ref] = job_id
                parents = item.get("depends_on") or []
                if parents:
                    self.db.execute("hold_for_parents", {"id": job_id, "parents": [ids[p] for p in parents]}, tx)
        return ids

    def get_dependencies(self, id: str, conn: Conn = None) -> list[Job]:
        """The jobs `id` depends on, oldest first (hot and archived)."""
        return self._relatives(id, up=True, conn=conn)

    def get_dependents(self, id: str, conn: Conn = None) -> list[Job]:
        """The jobs that depend on `id`, oldest first (hot and archived)."""
        return self._relatives(id, up=False, conn=conn)

    def _relatives(self, id: str, *, up: bool, conn: Conn) -> list[Job]:
        rows: list[Job] = self.db.rows("get_relatives", {"id": options.job_id(id), "up": up}, conn, job_row)
        return rows


def checked_flow(jobs: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Mapping[str, Any]], list[str]]:
    """The items by ref, and an order in which every job comes after those it depends on."""
    if isinstance(jobs, str | bytes) or not isinstance(jobs, Sequence) or not jobs:
        raise InvalidOptionError("a flow is a non-empty list of jobs")
    if len(jobs) > MAX_FLOW_JOBS:
        raise InvalidOptionError(f"a flow holds at most {MAX_FLOW_JOBS} jobs, got {len(jobs)}")
    by_ref: dict[str, Mapping[str, Any]] = {}
    for n, item in enumerate(jobs):
        if not isinstance(item, Mapping):
            raise InvalidOptionError(f"flow job {n} must be a mapping with ref, name, data, options, depends_on")
        unknown = set(item) - FLOW_KEYS
        if unknown:
            raise InvalidOptionError(f"flow job {n}: unknown key(s) {', '.join(sorted(unknown))}")
        ref = item.get("ref")
        if not isinstance(ref, str) or not ref:
            raise InvalidOptionError(f"flow job {n} needs a ref (a non-empty string)")
        if ref in by_ref:
            raise InvalidOptionError(f"flow: ref {ref!r} is used twice")
        options.queue_name(item.get("name"))
        depends_on = item.get("depends_on") or []
        if not isinstance(depends_on, list) or not all(isinstance(p, str) for p in depends_on):
            raise InvalidOptionError(f"flow job {ref!r}: depends_on must be a list of refs")
        given = item.get("options") or {}
        if not isinstance(given, Mapping):
            raise InvalidOptionError(f"flow job {ref!r}: options must be a mapping of send options")
        if depends_on and given.get("start_after") is not None:
            raise InvalidOptionError(f"flow job {ref!r}: a job that depends on others starts when they complete")
        by_ref[ref] = item
    graph: dict[str, list[str]] = {}
    for ref, item in by_ref.items():
        parents = item.get("depends_on") or []
        missing = [p for p in parents if p not in by_ref]
        if missing:
            raise InvalidOptionError(f"flow job {ref!r} depends on unknown ref(s) {', '.join(missing)}")
        graph[ref] = list(parents)
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        raise InvalidOptionError(f"flow: the dependencies form a cycle: {' -> '.join(exc.args[1])}") from None
    return by_ref, order
