"""Intervals of θ = server_clock − client_clock, in ms. Pure.

Every observation of a batch yields an interval that must contain θ; the estimator only ever
intersects, widens and hulls them. ``None`` is unbounded on that side.

Example:
    >>> a = OffsetInterval(-10_800.0, -780.0)
    >>> a.intersect(OffsetInterval(None, -800.0)), a.proves_wrong(25.0), a.proven_abs_ms
    (OffsetInterval(lower_ms=-10800.0, upper_ms=-800.0), True, 780.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

__all__ = ["SKEW_THRESHOLDS", "OffsetInterval", "proven_abs_offset_ms"]


@dataclass(frozen=True, slots=True)
class OffsetInterval:
    """A closed interval of θ in ms; ``None`` is unbounded on that side."""

    lower_ms: float | None
    upper_ms: float | None

    @classmethod
    def unbounded(cls) -> OffsetInterval:
        return cls(None, None)

    def contains(self, theta_ms: float) -> bool:
        return (self.lower_ms is None or self.lower_ms <= theta_ms) and (
            self.upper_ms is None or theta_ms <= self.upper_ms
        )

    @property
    def width_ms(self) -> float:
        if self.lower_ms is None or self.upper_ms is None:
            return math.inf
        return self.upper_ms - self.lower_ms

    def widen(self, by_ms: float) -> OffsetInterval:
        return OffsetInterval(
            None if self.lower_ms is None else self.lower_ms - by_ms,
            None if self.upper_ms is None else self.upper_ms + by_ms,
        )

    def intersect(self, other: OffsetInterval) -> OffsetInterval | None:
        """The common part, or ``None`` when the two are disjoint."""
        lower = _max_opt(self.lower_ms, other.lower_ms)
        upper = _min_opt(self.upper_ms, other.upper_ms)
        if lower is not None and upper is not None and lower > upper:
            return None
        return OffsetInterval(lower, upper)

    def clamp(self, theta_ms: float) -> float:
        if self.lower_ms is not None and theta_ms < self.lower_ms:
            return self.lower_ms
        if self.upper_ms is not None and theta_ms > self.upper_ms:
            return self.upper_ms
        return theta_ms

    @property
    def proven_abs_ms(self) -> float:
        """The least |θ| this interval allows (see :func:`proven_abs_offset_ms`)."""
        return proven_abs_offset_ms(self.lower_ms, self.upper_ms)

    def proves_wrong(self, min_correction_ms: float) -> bool:
        """True iff every θ in the interval is beyond ±min_correction_ms."""
        return (self.lower_ms is not None and self.lower_ms > min_correction_ms) or (
            self.upper_ms is not None and self.upper_ms < -min_correction_ms
        )


def _max_opt(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a >= b else b


def _min_opt(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a <= b else b


def proven_abs_offset_ms(lower_ms: float | None, upper_ms: float | None) -> float:
    """How far the interval [lower, upper] lies from 0: a lower bound on |θ| (0 if it holds 0).

    The point estimate is no measure of skew on its own: with causality only it carries the
    batch's queueing delay (a clock in sync, batches flushed every 5 s, reads as θ ≈ 5 s).
    What the evidence *proves* is this distance, so fleet counts use it.

    >>> proven_abs_offset_ms(-10_800.0, -780.0), proven_abs_offset_ms(-55_000.0, 5_000.0)
    (780.0, 0.0)
    """
    if lower_ms is not None and lower_ms > 0:
        return lower_ms
    if upper_ms is not None and upper_ms < 0:
        return -upper_ms
    return 0.0


#: Fleet thresholds on the *proven* |offset|: the per-day counters ``over_<name>_<method>``,
#: ``skewgate stats`` and the metrics' ``offset_bucket`` use these. 100 ms is one of them so
#: "share of traffic skewed > 100 ms" is a sum over buckets.
SKEW_THRESHOLDS: Final = (("50ms", 50.0), ("100ms", 100.0), ("1s", 1_000.0), ("1h", 3_600_000.0))
