"""Scheduler function: every minute, due cron fire times become jobs (once each)."""

from typing import Any

from runtime import bootstrap
from runtime.observability import logger, metrics, tracer
from runtime.scheduler import tick


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return tick(bootstrap.ready(), event)
