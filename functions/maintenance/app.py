"""Maintenance function: expiry, archiving, purge, stats and backlog scale-out."""

import os
from typing import Any

from runtime import bootstrap, upkeep
from runtime.observability import logger, metrics, tracer
from runtime.settings import MaintenanceSettings, worker_functions

SETTINGS = MaintenanceSettings.from_env()
WORKERS = worker_functions()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = upkeep.run(
        bootstrap.ready(),
        settings=SETTINGS,
        remaining_ms=context.get_remaining_time_in_millis,
        workers=WORKERS,
        jobs_per_worker=int(os.environ.get("SCALE_JOBS_PER_WORKER", "1000")),
        max_workers=int(os.environ.get("SCALE_MAX_WORKERS", "4")),
    )
    logger.info("maintenance done", extra=result)
    return result
