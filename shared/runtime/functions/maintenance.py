"""Maintenance function: expiry, archiving, purge, stats and backlog scale-out."""

from typing import Any

from runtime import bootstrap, upkeep
from runtime.config import MaintenanceSettings, worker_functions
from runtime.observability import logger, metrics, tracer

SETTINGS = MaintenanceSettings.from_env()
WORKERS = worker_functions()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # Every database call ends a quarter of the safety margin before the invocation does.
    with bootstrap.calls_within(bootstrap.invocation_deadline_s(context, SETTINGS.safety_margin_ms / 4)):
        result = upkeep.run(
            bootstrap.ready(), settings=SETTINGS, remaining_ms=context.get_remaining_time_in_millis, workers=WORKERS
        )
    logger.info("maintenance done", extra=result)
    return result
