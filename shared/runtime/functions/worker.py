"""Worker function: drains its queue (QUEUE_NAME) within one invocation.

Deployed once per job type; EventBridge ticks it every minute, producers and
maintenance may start it sooner (runtime.scale).
"""

from typing import Any

from runtime import worker
from runtime.config import WorkerSettings
from runtime.observability import logger, metrics, tracer

SETTINGS = WorkerSettings.from_env()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return worker.invocation(SETTINGS, event, context)
