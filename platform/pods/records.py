"""A pod's row, read by every handler that acts on a pod."""

from __future__ import annotations

from typing import Any

from psycopg.rows import dict_row

from jobqueue import JobError
from pods.clients.host_agent import HostAgent
from pods.context import Resources
from pods.schema import QUERIES


def pod(conn: Any, pod_id: str) -> dict[str, Any]:
    """The pod with its host's address; a pod that does not exist fails the job for good."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(QUERIES["get_pod"], {"id": pod_id}).fetchone()
    if row is None:
        raise JobError(f"pod {pod_id} does not exist", should_retry=False)
    return dict(row)


def placed(conn: Any, resources: Resources, pod_id: str) -> tuple[dict[str, Any], HostAgent]:
    """The pod and its host's agent; a pod on no host fails the job for good."""
    row = pod(conn, pod_id)
    if row["host_id"] is None:
        raise JobError(f"pod {pod_id} is not placed on a host (status {row['status']})", should_retry=False)
    return row, resources.agent(row["host_address"], row["host_port"])
