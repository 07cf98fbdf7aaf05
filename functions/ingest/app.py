"""Ingest Lambda: POST /v1/traces, GET /v1/clock and their CORS preflights.

A thin adapter: the logic is ``skewgate.aws.ingest.IngestApp`` in the shared layer, which the
local runner calls too. Settings and the DynamoDB client are built once per container. Logs go
through the standard library (the function's ``LoggingConfig`` makes them JSON); nothing else
is imported here, since every millisecond of init is a cold start's.
"""

import gc
from typing import Any

from skewgate.aws.ingest import build_ingest_app

app = build_ingest_app()
# What init built (boto3's service models, our decoders) lives as long as the container: out
# of the cyclic collector's sight, a collection walks only what a request made.
gc.freeze()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.handle(event, context.get_remaining_time_in_millis)
