"""Starting workers between EventBridge ticks: kicks, backlog-driven scale-out, and handover.

EventBridge fires at most once a minute. A producer that wants a job started
sooner "kicks" its queue's worker (an asynchronous invoke) right after send.
A backlog is drained by chains of invocations, at most max_concurrency of them:

- a root invocation (a tick, a kick, maintenance) that finds a backlog and no
  other invocation at work on the queue starts up to max_concurrency
  scale-out invocations (one of them takes over from the root);
- a scale-out invocation that stops with work left hands over to exactly one
  successor, so the number of chains never grows;
- the function's reserved concurrency stays the hard cap (Lambda holds back
  and retries what goes beyond it).
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
    """How many scale-out invocations a root starts for a backlog (one of them takes over from it)."""
    if backlog <= 0:
        return 0
    return max(0, min(max_concurrency, math.ceil(backlog / max(1, jobs_per_invocation))))


def scale_out(function: str, queue: str, backlog: int, jobs_per_invocation: int, max_concurrency: int) -> int:
    """A root's fan-out: start chains of scale-out invocations for a backlog."""
    count = workers_wanted(backlog, jobs_per_invocation, max_concurrency)
    started = sum(invoke_async(function, {"source": SCALE_OUT, "queue": queue}) for _ in range(count))
    if started:
        logger.info("scaled out", extra={"queue": queue, "backlog": backlog, "workers_started": started})
    return started


def hand_over(function: str, queue: str) -> int:
    """A scale-out invocation with work left starts its one successor."""
    return int(invoke_async(function, {"source": SCALE_OUT, "queue": queue}))
