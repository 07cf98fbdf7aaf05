"""Ingest Lambda: POST /v1/traces, GET /v1/clock and their CORS preflights.

A thin adapter: the logic is ``skewgate.ingest.IngestApp`` in the shared layer, which the
local runner calls too. Settings and the DynamoDB client are built once per container.
"""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from skewgate.runtime import build_ingest_app

logger = Logger()
app = build_ingest_app()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.handle(event, context.get_remaining_time_in_millis)
