"""What skewgate stores and serves about clocks, each record shape declared once. Pure.

The item codec (:mod:`skewgate.aws.codec`), the read API and the CLI all use these Structs;
JSON documents are ``msgspec.json.encode`` of them, byte for byte the same everywhere.

Milliseconds are kept to the microsecond: offsets are rounded, interval bounds rounded
*outward* (an interval never shrinks below what the evidence supports), so documents print
``-811.0`` and ``172790003.743``, not ``172790003.74299997``.

Example:
    >>> from skewgate.clock.estimate import Method, SkewEstimate
    >>> est = SkewEstimate(-811.00000012, -10_791.0000001, -790.99999, Method.SEND_TIME, True)
    >>> s = SkewSample.from_estimate(est, session_id="s", batch_id="b", received_at_ms=5,
    ...                              span_count=1, trace_ids=["t"])
    >>> s.offset_ms, s.lower_ms, s.upper_ms
    (-811.0, -10791.001, -790.999)
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Final

import msgspec

from skewgate.clock.correction import Grouping, SessionShift
from skewgate.clock.estimate import Method, SessionClock, SkewEstimate
from skewgate.clock.interval import proven_abs_offset_ms
from skewgate.wire.blob import BodyLayout
from skewgate.wire.decode import Limits

__all__ = [
    "FORMAT",
    "BatchRecord",
    "SessionDay",
    "SessionState",
    "SkewSample",
    "ceil_ms",
    "day_of",
    "floor_ms",
    "round_ms",
]

_US = 1_000.0


def round_ms(value: float) -> float:
    """To the microsecond."""
    return round(value * _US) / _US


def floor_ms(value: float | None) -> float | None:
    return None if value is None else math.floor(value * _US) / _US


def ceil_ms(value: float | None) -> float | None:
    return None if value is None else math.ceil(value * _US) / _US


def day_of(ms: float) -> str:
    """The UTC day ``yyyy-mm-dd`` of an epoch-ms instant."""
    return datetime.fromtimestamp(ms / 1000.0, tz=UTC).strftime("%Y-%m-%d")


class SkewSample(msgspec.Struct, frozen=True, kw_only=True):
    """One skew sample: the verdict on one session's clock in one batch."""

    session_id: str
    batch_id: str
    received_at_ms: int
    offset_ms: float
    lower_ms: float | None
    upper_ms: float | None
    method: Method
    applied: bool
    jump: bool
    flags: list[str]
    span_count: int
    trace_ids: list[str]
    #: Traces of the session in this batch beyond ``trace_ids`` (capped to fit one item).
    more_traces: int = 0
    segment: int = 0
    sent_at_ms: float | None = None
    max_client_time_ms: float | None = None
    sync_delay_ms: float | None = None
    #: With flag ``shift_moved``: what the segment's previous batch was shifted by.
    previous_shift_ms: float | None = None

    @classmethod
    def from_estimate(
        cls, estimate: SkewEstimate, *, session_id: str, batch_id: str, received_at_ms: int,
        span_count: int, trace_ids: list[str], **extra: object,
    ) -> SkewSample:
        return cls(
            session_id=session_id,
            batch_id=batch_id,
            received_at_ms=received_at_ms,
            offset_ms=round_ms(estimate.offset_ms),
            lower_ms=floor_ms(estimate.lower_ms),
            upper_ms=ceil_ms(estimate.upper_ms),
            method=estimate.method,
            applied=estimate.applied,
            jump=estimate.jump,
            flags=[str(f) for f in estimate.flags],
            span_count=span_count,
            trace_ids=trace_ids,
            previous_shift_ms=(
                None if estimate.previous_shift_ms is None else round_ms(estimate.previous_shift_ms)
            ),
            # sent_at_ms, max_client_time_ms, sync_delay_ms: to the microsecond as well.
            **{k: round_ms(v) if isinstance(v, float) else v for k, v in extra.items()},  # type: ignore[arg-type]
        )

    @property
    def proven_abs_ms(self) -> float:
        return proven_abs_offset_ms(self.lower_ms, self.upper_ms)


#: The stored batch format: 1 kept spans per trace and batch (``TRACE#``/``SPANS#`` items),
#: 2 keeps the body once, beside this record.
FORMAT: Final = 2


class BatchRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A committed batch (its ``BATCH#<id>`` marker): what it answered, so a retry gets the
    same answer, and how to read its body back (format 2).

    ``sessions`` are the verdicts its spans were shifted by; ``grouping`` and the limits are
    the rules it was received under, so reading it back finds the same spans in the same
    sessions, truncated the same way.
    """

    batch_id: str
    received_at_ms: int
    span_count: int
    rejected_spans: int
    error_message: str = ""
    format: int = 1
    kind: str = "application/json"
    attempt: str = ""
    chunks: int = 0
    body: BodyLayout | None = None
    grouping: Grouping = Grouping()
    sessions: list[SessionShift] = []
    trace_count: int = 0
    max_attributes: int = 128
    max_value_bytes: int = 16 * 1024
    max_nested_values: int = 1_024
    max_nested_depth: int = 8

    @property
    def limits(self) -> Limits:
        """The limits to read the body back under (sizes were checked at receipt)."""
        return Limits(
            max_body_bytes=1 << 62,
            max_inflated_bytes=1 << 62,
            max_spans=1 << 30,
            max_attributes=self.max_attributes,
            max_value_bytes=self.max_value_bytes,
            max_nested_values=self.max_nested_values,
            max_nested_depth=self.max_nested_depth,
            max_nested_bytes=1 << 62,
            max_messages=1 << 62,
        )

    def shifts(self) -> dict[str | None, SessionShift]:
        return {s.session_id: s for s in self.sessions}


class SessionState(msgspec.Struct, frozen=True, kw_only=True):
    """A session's stored clock, its version (for the conditional write) and its day's peak."""

    session_id: str
    clock: SessionClock
    version: int = 0
    day: str = ""
    day_max_proven_abs_ms: float = 0.0

    def day_peak(self, received_at_ms: float, proven_abs_ms: float) -> float:
        """The day's largest proven |θ| after this sample (a new day starts from it)."""
        if day_of(received_at_ms) == self.day:
            return max(self.day_max_proven_abs_ms, proven_abs_ms)
        return proven_abs_ms


class SessionDay(msgspec.Struct, frozen=True, kw_only=True):
    """One session on one UTC day: its latest verdict and the day's counts."""

    session_id: str
    day: str
    max_proven_abs_offset_ms: float
    offset_ms: float
    lower_ms: float | None
    upper_ms: float | None
    method: Method
    applied: bool
    batches: int
    corrected_batches: int = 0
    jumps: int = 0
    first_received_at_ms: int | None = None
    last_received_at_ms: int = 0
    #: ``batches_<method>`` and ``over_<threshold>_<method>`` (absent counters are 0).
    counters: dict[str, int] = {}
