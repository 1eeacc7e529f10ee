"""Scheduler function: every minute, due cron fire times become jobs (once each)."""

from typing import Any

from runtime import bootstrap
from runtime.observability import logger, metrics, tracer
from runtime.scheduler import tick

# Every database call ends this long before the invocation does: time to log and return.
DEADLINE_MARGIN_MS = 1_000


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    with bootstrap.calls_within(bootstrap.invocation_deadline_s(context, DEADLINE_MARGIN_MS)):
        return tick(bootstrap.ready(), event)
