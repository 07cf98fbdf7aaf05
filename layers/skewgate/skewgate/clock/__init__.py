"""The clock room: what a batch proves about its client's clock, and what to write. Pure.

Intervals (:mod:`~skewgate.clock.interval`), evidence (:mod:`~skewgate.clock.evidence`), the
estimator and its policy (:mod:`~skewgate.clock.estimate`), the one-shift correction
(:mod:`~skewgate.clock.correction`), the stored records (:mod:`~skewgate.clock.records`) and
the ingest core, :func:`~skewgate.clock.plan.plan_batch`.
"""

from skewgate.clock.correction import (
    Grouping,
    SessionShift,
    batch_id,
    corrected_request,
    read_back,
    skew_attributes,
)
from skewgate.clock.estimate import (
    EstimatorConfig,
    Flag,
    Method,
    SessionClock,
    SkewEstimate,
    estimate,
)
from skewgate.clock.evidence import (
    MAX_PLAUSIBLE_OFFSET_MS,
    BatchEvidence,
    ClockSync,
    ClockSyncHeader,
    clock_key_id,
    sign_clock_reading,
)
from skewgate.clock.interval import SKEW_THRESHOLDS, OffsetInterval, proven_abs_offset_ms
from skewgate.clock.plan import (
    BatchPlan,
    PlanConfig,
    PreparedBatch,
    RequestFacts,
    SessionPlan,
    plan_batch,
    prepare_batch,
)
from skewgate.clock.records import BatchRecord, SessionDay, SessionState, SkewSample

__all__ = [
    "MAX_PLAUSIBLE_OFFSET_MS",
    "SKEW_THRESHOLDS",
    "BatchEvidence",
    "BatchPlan",
    "BatchRecord",
    "ClockSync",
    "ClockSyncHeader",
    "EstimatorConfig",
    "Flag",
    "Grouping",
    "Method",
    "OffsetInterval",
    "PlanConfig",
    "PreparedBatch",
    "RequestFacts",
    "SessionClock",
    "SessionDay",
    "SessionPlan",
    "SessionShift",
    "SessionState",
    "SkewEstimate",
    "SkewSample",
    "batch_id",
    "clock_key_id",
    "corrected_request",
    "estimate",
    "plan_batch",
    "prepare_batch",
    "proven_abs_offset_ms",
    "read_back",
    "sign_clock_reading",
    "skew_attributes",
]
