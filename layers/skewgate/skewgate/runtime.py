"""Lambda wiring shared by ``functions/*`` and the local runner: settings, client, metrics.

Everything here runs once per container (at import of the function module): one boto3
client, one validated ``Settings``. Bad configuration fails the init with a message naming
the variable.

Example:
    >>> from skewgate.runtime import build_ingest_app  # doctest: +SKIP
    >>> handler = build_ingest_app().handle  # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import Any

from skewgate.config import Settings
from skewgate.ingest import BatchOutcome, IngestApp
from skewgate.read import ReadApp
from skewgate.store import Store

__all__ = ["EmfMetricsSink", "build_ingest_app", "build_read_app", "dynamodb_client"]

# Buckets of |offset| for the fleet view: in sync, noticeable, broken, wrong by hours.
_BUCKETS = ((50.0, "lt_50ms"), (1_000.0, "50ms_1s"), (3_600_000.0, "1s_1h"))


def offset_bucket(offset_ms: float) -> str:
    magnitude = abs(offset_ms)
    for bound, name in _BUCKETS:
        if magnitude < bound:
            return name
    return "ge_1h"


def dynamodb_client() -> Any:
    """One client per container. ``AWS_ENDPOINT_URL_DYNAMODB`` (read by botocore) selects
    DynamoDB Local. Timeouts are short: API Gateway gives up after 30 s, and a slow table
    must become a 503 the exporter retries, not a hung request."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=2,
        read_timeout=5,
        retries={"mode": "standard", "max_attempts": 3},
        tcp_keepalive=True,
    )
    return boto3.client("dynamodb", config=config)


class EmfMetricsSink:
    """Fleet metrics as CloudWatch EMF through Powertools: one line per batch and session."""

    def __init__(self, namespace: str | None = None) -> None:
        self.namespace = namespace or os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Skewgate")

    def record_batch(self, outcome: BatchOutcome) -> None:
        from aws_lambda_powertools.metrics import MetricUnit, single_metric

        for _session, estimate in outcome.estimates:
            with single_metric(
                name="Batches", unit=MetricUnit.Count, value=1, namespace=self.namespace
            ) as metric:
                metric.add_dimension(name="method", value=estimate.method.value)
                metric.add_dimension(name="corrected", value=str(estimate.applied).lower())
                metric.add_dimension(name="offset_bucket", value=offset_bucket(estimate.offset_ms))
                metric.add_metric(name="AbsOffsetMs", unit=MetricUnit.Milliseconds,
                                  value=abs(estimate.offset_ms))
                metric.add_metric(name="Jumps", unit=MetricUnit.Count, value=int(estimate.jump))
                metric.add_metric(name="Spans", unit=MetricUnit.Count, value=outcome.span_count)


def build_ingest_app(*, metrics: bool = True) -> IngestApp:
    settings = Settings.from_env()
    store = Store(dynamodb_client(), settings.table_name, settings.retention_seconds)
    return IngestApp(settings, store, metrics=EmfMetricsSink() if metrics else None)


def build_read_app() -> ReadApp:
    settings = Settings.from_env()
    return ReadApp(Store(dynamodb_client(), settings.table_name, settings.retention_seconds))
