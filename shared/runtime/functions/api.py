"""API function: /api/jobs/* over API Gateway's HTTP API."""

from typing import Any

from runtime.observability import logger, tracer
from runtime.webapp import handle


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle(event, context)
