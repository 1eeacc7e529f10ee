"""Starting workers between EventBridge ticks: kicks and backlog-driven scale-out.

EventBridge fires at most once a minute. A producer that wants a job started
sooner "kicks" its queue's worker (an asynchronous invoke) right after send;
a worker that stops with work left, and maintenance when it sees a backlog,
start more workers for that queue. Fan-out is bounded twice: an invocation
started by scale-out does not scale out itself, and at most max_concurrency - 1
are started at once; the function's reserved concurrency is the hard cap.
"""

from __future__ import annotations

import json
import math
from typing import Any, Protocol

from runtime.observability import logger

SCALE_OUT = "scale-out"
KICK = "kick"


class LambdaClient(Protocol):
    def invoke(self, **kwargs: Any) -> Any: ...


_client: LambdaClient | None = None


def lambda_client() -> LambdaClient:
    global _client
    if _client is None:
        import boto3  # here, not at import: boto3 costs cold-start time

        _client = boto3.client("lambda")
    return _client


def set_lambda_client(client: LambdaClient | None) -> None:
    """Tests replace the Lambda service, which cannot run here."""
    global _client
    _client = client


def invoke_async(function: str, payload: dict[str, Any]) -> bool:
    try:
        lambda_client().invoke(FunctionName=function, InvocationType="Event", Payload=json.dumps(payload).encode())
    except Exception as exc:  # a failed kick only delays work until the next tick
        logger.warning("could not start a worker", extra={"function": function, "error": str(exc)})
        return False
    return True


def kick(function: str, queue: str) -> bool:
    """Start one worker for `queue` now (for sub-second start after a send)."""
    return invoke_async(function, {"source": KICK, "queue": queue})


def workers_wanted(backlog: int, jobs_per_invocation: int, max_concurrency: int) -> int:
    """How many more workers to start for a backlog, beyond the one already running."""
    if backlog <= 0:
        return 0
    return max(0, min(max_concurrency - 1, math.ceil(backlog / max(1, jobs_per_invocation))))


def scale_out(function: str, queue: str, backlog: int, jobs_per_invocation: int, max_concurrency: int) -> int:
    count = workers_wanted(backlog, jobs_per_invocation, max_concurrency)
    started = sum(invoke_async(function, {"source": SCALE_OUT, "queue": queue}) for _ in range(count))
    if started:
        logger.info("scaled out", extra={"queue": queue, "backlog": backlog, "workers_started": started})
    return started
