"""Lambda wiring shared by ``functions/*`` and the local runner: settings, client, metrics.

Everything here runs once per container (at import of the function module): one boto3
client, one validated ``Settings``. Bad configuration fails the init with a message naming
the variable.

Example:
    >>> from skewgate.runtime import build_ingest_app  # doctest: +SKIP
    >>> handler = build_ingest_app().handle  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from typing import Any

from skewgate.config import Settings
from skewgate.ingest import BatchOutcome, IngestApp
from skewgate.read import ReadApp
from skewgate.store import Store, proven_abs_offset_ms

__all__ = [
    "OFFSET_BUCKETS",
    "EmfMetricsSink",
    "build_ingest_app",
    "build_read_app",
    "dynamodb_client",
    "offset_bucket",
]

logger = logging.getLogger("skewgate.runtime")

# Buckets of the *proven* |offset| (how far the measured interval lies from 0, see
# ``skewgate.store.proven_abs_offset_ms``) for the fleet view: in sync or not provably off,
# noticeable, visibly wrong, broken, wrong by hours. 100 ms is a boundary so "share of traffic
# skewed > 100 ms" is a sum over buckets (README: fleet metrics).
_BUCKETS = (
    (50.0, "lt_50ms"),
    (100.0, "50ms_100ms"),
    (1_000.0, "100ms_1s"),
    (3_600_000.0, "1s_1h"),
)
OFFSET_BUCKETS = (*(name for _, name in _BUCKETS), "ge_1h")


def offset_bucket(lower_ms: float | None, upper_ms: float | None) -> str:
    """The bucket of the proven |offset| of the interval [lower_ms, upper_ms].

    Not of the point estimate: with causality only that includes the batch's queueing delay,
    and would put clocks in sync into "1s_1h".

    >>> offset_bucket(-10_800.0, -780.0), offset_bucket(-55_000.0, 4_980.0)
    ('100ms_1s', 'lt_50ms')
    """
    magnitude = proven_abs_offset_ms(lower_ms, upper_ms)
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
    """Fleet metrics as CloudWatch EMF through Powertools: one line per batch and session.

    Each line has one dimension set, ``method`` x ``corrected`` x ``offset_bucket`` (plus
    Powertools' constant ``service``): at most 4 x 2 x 5 = 40 series per metric, whatever the
    traffic (no session or trace ids as dimensions). Metrics on that line:

    - ``Batches`` (Count, 1): the line's batch x session; ``SUM`` counts traffic per bucket;
    - ``AbsOffsetMs`` (Milliseconds): |point estimate| — see ``offset_bucket`` for its caveat;
    - ``Jumps`` (Count, 0/1): a clock step was detected;
    - ``Spans`` (Count): the spans stored for that session, so ``SUM(Spans)`` is the number of
      spans stored, split by the same dimensions.

    ``single_metric`` is not used: its ``add_metric`` keeps the first metric and silently drops
    the rest. A metrics failure is logged and never fails a batch that is already committed.
    """

    def __init__(self, namespace: str | None = None) -> None:
        self.namespace = namespace or os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Skewgate")

    def record_batch(self, outcome: BatchOutcome) -> None:
        try:
            self._emit(outcome)
        except Exception:
            logger.warning(
                "could not emit EMF metrics for batch %s", outcome.batch_id, exc_info=True
            )

    def _emit(self, outcome: BatchOutcome) -> None:
        from aws_lambda_powertools.metrics import MetricUnit
        from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
            AmazonCloudWatchEMFProvider,
        )

        per_session = len(outcome.session_spans) == len(outcome.estimates)
        for index, (_session, estimate) in enumerate(outcome.estimates):
            if per_session:
                spans = outcome.session_spans[index]
            else:  # an outcome built without per-session counts: all on the first line
                spans = outcome.span_count if index == 0 else 0
            emf = AmazonCloudWatchEMFProvider(namespace=self.namespace)
            emf.add_dimension(name="method", value=estimate.method.value)
            emf.add_dimension(name="corrected", value=str(estimate.applied).lower())
            emf.add_dimension(
                name="offset_bucket", value=offset_bucket(estimate.lower_ms, estimate.upper_ms)
            )
            emf.add_metric(name="Batches", unit=MetricUnit.Count, value=1)
            emf.add_metric(
                name="AbsOffsetMs", unit=MetricUnit.Milliseconds, value=abs(estimate.offset_ms)
            )
            emf.add_metric(name="Jumps", unit=MetricUnit.Count, value=int(estimate.jump))
            emf.add_metric(name="Spans", unit=MetricUnit.Count, value=spans)
            emf.flush_metrics(raise_on_empty_metrics=True)


def build_ingest_app(*, metrics: bool = True) -> IngestApp:
    settings = Settings.from_env()
    store = Store(dynamodb_client(), settings.table_name, settings.retention_seconds)
    return IngestApp(settings, store, metrics=EmfMetricsSink() if metrics else None)


def build_read_app() -> ReadApp:
    settings = Settings.from_env()
    return ReadApp(Store(dynamodb_client(), settings.table_name, settings.retention_seconds))
