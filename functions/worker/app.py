"""Worker function: drains its queue (QUEUE_NAME) within one invocation.

Deployed once per job type; EventBridge ticks it every minute, producers and
maintenance may start it sooner (runtime.scale).
"""

from typing import Any

from jobqueue import DatabaseUnavailableError
from runtime import bootstrap, scale
from runtime.handlers import handler_for
from runtime.observability import logger, metrics, tracer
from runtime.settings import WorkerSettings
from runtime.worker import drain

SETTINGS = WorkerSettings.from_env()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger.append_keys(queue=SETTINGS.queue, source=event.get("source", "schedule"))
    queue = bootstrap.ready()
    try:
        result = drain(queue, SETTINGS, handler_for(SETTINGS.queue), context.get_remaining_time_in_millis)
    except DatabaseUnavailableError as exc:
        # Claimed jobs stay claimed until shortly after this invocation's end, then expire and are retried.
        logger.error(
            "database unavailable; this invocation stops, its claimed jobs will expire and retry",
            extra={"error": str(exc)},
        )
        raise
    response = result.as_dict()
    if result.work_left and event.get("source") != scale.SCALE_OUT:
        backlog = queue.queue_size(SETTINGS.queue)
        response["workers_started"] = scale.scale_out(
            context.function_name, SETTINGS.queue, backlog, SETTINGS.max_jobs, SETTINGS.max_concurrency
        )
    logger.info("drained", extra=response)
    return response
