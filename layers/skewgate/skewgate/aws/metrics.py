"""Fleet metrics as CloudWatch Embedded Metric Format (EMF) lines on stdout.

One line per stored batch and session, with one dimension set, ``method`` × ``corrected`` ×
``offset_bucket`` (plus the constant ``service``): at most 4 × 2 × 5 = 40 series per metric,
whatever the traffic (no session or trace ids as dimensions). Metrics on that line:

- ``Batches`` (Count, 1): the line's batch × session; ``SUM`` counts traffic per bucket;
- ``AbsOffsetMs`` (Milliseconds): |point estimate| — see :func:`offset_bucket` for its caveat;
- ``Jumps`` (Count, 0/1): a clock step was detected;
- ``ClockDrifts`` (Count, 0/1): the client's clocks drifted apart — the companion saw
  ``Date.now()`` and its monotonic clock disagree (``clock_drift``), or the spans ended far
  before the send time (``sleep_drift``). ``SUM`` per period is how many session-batches saw
  one, beside ``Jumps``; drifts without jumps are mostly sleeps, with jumps clock changes;
- ``Spans`` (Count): the spans stored for that session, so ``SUM(Spans)`` is every stored span.

The lines are written directly (the format is a JSON object with an ``_aws`` directive), not
through Powertools: its import alone would add ~60 ms to the first request of every cold
container. The Powertools variables still configure it, as for the other functions:
``POWERTOOLS_METRICS_NAMESPACE`` (default ``Skewgate``), ``POWERTOOLS_SERVICE_NAME``
(default ``skewgate``) and ``POWERTOOLS_METRICS_DISABLED``. A metrics failure is logged and
never fails a batch that is already committed.

Example:
    >>> line = emf_line("Skewgate", {"method": "ntp"}, [("Batches", "Count", 1)], 1_767_225_600_000)
    >>> line.startswith('{"_aws":{"Timestamp":1767225600000,')
    True
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Final

from skewgate.clock.estimate import Flag
from skewgate.clock.interval import SKEW_THRESHOLDS, proven_abs_offset_ms

if TYPE_CHECKING:
    from skewgate.aws.ingest import BatchOutcome

__all__ = ["OFFSET_BUCKETS", "EmfMetricsSink", "emf_line", "offset_bucket"]

logger = logging.getLogger("skewgate.metrics")

# Buckets of the *proven* |offset| for the fleet view: in sync or not provably off, noticeable,
# visibly wrong, broken, wrong by hours — split at the fleet thresholds.
_BUCKETS: Final = (
    (50.0, "lt_50ms"),
    (100.0, "50ms_100ms"),
    (1_000.0, "100ms_1s"),
    (3_600_000.0, "1s_1h"),
)
assert tuple(bound for bound, _ in _BUCKETS) == tuple(b for _, b in SKEW_THRESHOLDS)
OFFSET_BUCKETS: Final = (*(name for _, name in _BUCKETS), "ge_1h")
# The flags that say the client's wall clock and the clock its spans ran on came apart.
_DRIFTS: Final = frozenset({Flag.CLOCK_DRIFT, Flag.SLEEP_DRIFT})


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


def emf_line(
    namespace: str,
    dimensions: Mapping[str, str],
    metrics: Iterable[tuple[str, str, float]],
    timestamp_ms: int,
) -> str:
    """One EMF log line: a single dimension set, each metric a one-value list."""
    metrics = list(metrics)
    blob: dict[str, object] = {
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [list(dimensions)],
                    "Metrics": [{"Name": name, "Unit": unit} for name, unit, _ in metrics],
                }
            ],
        },
        **dimensions,
    }
    for name, _unit, value in metrics:
        blob[name] = [float(value)]
    return json.dumps(blob, separators=(",", ":"), allow_nan=False)


class EmfMetricsSink:
    """Per-batch fleet metrics to stdout, where Lambda's log agent hands them to CloudWatch."""

    def __init__(self, namespace: str | None = None) -> None:
        self.namespace = namespace or os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "Skewgate"
        self.service = os.environ.get("POWERTOOLS_SERVICE_NAME") or "skewgate"

    def record_batch(self, outcome: BatchOutcome) -> None:
        if os.environ.get("POWERTOOLS_METRICS_DISABLED", "").strip().lower() in ("1", "true"):
            return
        try:
            sys.stdout.write("".join(line + "\n" for line in self.lines(outcome)))
            sys.stdout.flush()
        except Exception:
            logger.warning(
                "could not emit EMF metrics for batch %s", outcome.batch_id, exc_info=True
            )

    def lines(self, outcome: BatchOutcome) -> list[str]:
        now = int(time.time() * 1000)
        per_session = len(outcome.session_spans) == len(outcome.estimates)
        out = []
        for index, (_session, estimate) in enumerate(outcome.estimates):
            if per_session:
                spans = outcome.session_spans[index]
            else:  # an outcome built without per-session counts: all on the first line
                spans = outcome.span_count if index == 0 else 0
            dimensions = {
                "method": estimate.method.value,
                "corrected": str(estimate.applied).lower(),
                "offset_bucket": offset_bucket(estimate.lower_ms, estimate.upper_ms),
                "service": self.service,
            }
            metrics = [
                ("Batches", "Count", 1),
                ("AbsOffsetMs", "Milliseconds", abs(estimate.offset_ms)),
                ("Jumps", "Count", int(estimate.jump)),
                ("ClockDrifts", "Count", int(bool(_DRIFTS.intersection(estimate.flags)))),
                ("Spans", "Count", spans),
            ]
            out.append(emf_line(self.namespace, dimensions, metrics, now))
        return out
