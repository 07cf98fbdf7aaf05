"""Where in its interval a session's clock most likely is: the point estimate's math. Pure.

The interval (:mod:`skewgate.clock.estimate`) says where θ *can* be; this module says where in
it θ most likely is, from everything a session has sent, and how sure that is:

* **Round trips** — the clock filter of RFC 5905 §10. Every exchange the session echoes is
  counted once and kept (the last :data:`WINDOW`, tagged with its clock segment). The
  estimate is the offset of the exchange with the least *dispersion now*: half its delay (the
  most its midpoint can be off, whatever the asymmetry) plus ``PHI`` × its age. Queueing only
  ever adds delay, so the least-delay exchange of a window is the one least bent by it. The
  *jitter* ψ is the RMS spread of the others' offsets around it.
* **Popcorn spikes** (RFC 5905's suppressor). A new exchange that would move the estimate by
  more than :data:`SGATE` × ψ (plus the wander ``PHI`` allows since the best one) although its
  delay is no lower is counted but not used — unless the next one confirms it (a real change
  persists; a spike does not). A clock jump never gets here: it starts a new segment.
* **One-way bounds** (send time, causality): each batch's ``θ ≤ u`` tops the clock from above.
  Their least, aged at ``PHI`` (a bound of a while ago says a little less about now), is the
  *ceiling*; the EWMA of how far the batches' bounds lie above it is its jitter.
* **The one-way delay floor**: ceiling − round-trip estimate, the least seen. It belongs to the
  network path, not the clock, so it survives clock jumps, and it places one-way-only
  estimates (ceiling − floor) where the round trips put the clock — instead of a fixed
  default delay that is wrong for every path but one.

``PHI`` is a *typical* drift rate (``EstimatorConfig.typical_drift_ppm``, 15 ppm as in RFC
5905): it ranks evidence by freshness. The interval's bounds use the worst case instead
(``max_drift_ppm``), because they must hold; a point estimate only has to be likely.

Example:
    >>> a = SyncSample(1_000.0, -800.0, 40.0, segment=0)
    >>> b = SyncSample(301_000.0, -790.0, 90.0, segment=0)
    >>> best, jitter = clock_filter((a, b), 0, 301_000.0, 15e-6)
    >>> best.offset_ms, jitter  # 20 + 4.5 ms of age beats 45 ms of delay
    (-800.0, 10.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec

from skewgate.clock.evidence import ClockSync

__all__ = [
    "PRECISION_MS",
    "SGATE",
    "WINDOW",
    "SyncSample",
    "add_sample",
    "clock_filter",
    "raise_ceiling",
]

#: Exchanges kept per session: RFC 5905's clock filter holds 8. With the companion's 5-minute
#: resyncs that is the last ~40 minutes, long enough to ride out a congestion episode.
WINDOW = 8
#: How many jitters a new exchange may move the estimate before it is held back as a spike
#: (RFC 5905's SGATE): beyond 3 ψ a sample is unlikely to come from the same distribution.
SGATE = 3.0
#: ``Date.now()`` is whole milliseconds: no spread below that is measured.
PRECISION_MS = 1.0
#: Weight of a new batch in the ceiling's jitter EWMA: the last ~8 batches speak.
_EWMA = 1.0 / 8.0


class SyncSample(msgspec.Struct, frozen=True, array_like=True):
    """One counted exchange: when (t2, our clock), its midpoint and delay, its segment.

    ``retired`` samples still identify their exchange (a later echo of it is known, not counted
    again) but no longer speak for the clock: popcorn spikes, round trips that contradicted the
    batch's hard bounds, and those of a segment whose clock may have been set back.
    """

    t2_ms: float
    offset_ms: float
    delay_ms: float
    segment: int
    retired: bool = False

    @classmethod
    def of(cls, sync: ClockSync, segment: int, *, retired: bool = False) -> SyncSample:
        return cls(sync.t2, sync.midpoint_ms, sync.delay_ms, segment, retired)

    def dispersion_at(self, at_ms: float, phi: float) -> float:
        """How far off this exchange's midpoint may be by now: δ/2 + PHI × age."""
        return max(self.delay_ms, 0.0) / 2.0 + phi * max(at_ms - self.t2_ms, 0.0)

    def is_exchange(self, sync: ClockSync) -> bool:
        """Is ``sync`` this very exchange (same server times *and* client times)?"""
        return (
            self.t2_ms == sync.t2
            and abs(self.offset_ms - sync.midpoint_ms) < 1e-6
            and abs(self.delay_ms - sync.delay_ms) < 1e-6
        )


def clock_filter(
    samples: Sequence[SyncSample], segment: int, at_ms: float, phi: float
) -> tuple[SyncSample | None, float | None]:
    """The segment's least-dispersion exchange at ``at_ms`` and the jitter around it.

    The jitter is ``None`` with a single usable exchange: one sample has no spread.
    """
    usable = [s for s in samples if s.segment == segment and not s.retired]
    if not usable:
        return None, None
    best = min(usable, key=lambda s: s.dispersion_at(at_ms, phi))
    others = [s.offset_ms - best.offset_ms for s in usable if s is not best]
    if not others:
        return best, None
    return best, math.sqrt(sum(d * d for d in others) / len(others))


def add_sample(
    samples: Sequence[SyncSample], new: SyncSample, phi: float, max_drift: float
) -> tuple[tuple[SyncSample, ...], bool]:
    """Count ``new`` into the window; returns the window and whether it was held back.

    A spike moves the estimate by more than SGATE × ψ (+ PHI's wander since the best) with
    no lower delay, while the best's offset is still possible under its hard bounds (widened
    by the worst drift): if it were not, the old estimate would be wrong and must go. Only one
    spike in a row is held back; the next sample that agrees with it is taken.
    """
    retired = new.retired
    if not retired:
        best, jitter = clock_filter(samples, new.segment, new.t2_ms, phi)
        mine = [s for s in samples if s.segment == new.segment]
        if best is not None and jitter is not None and mine and not mine[-1].retired:
            elapsed = max(new.t2_ms - best.t2_ms, 0.0)
            moved = abs(new.offset_ms - best.offset_ms)
            possible = new.delay_ms / 2.0 + max_drift * elapsed + PRECISION_MS
            retired = (
                moved > SGATE * max(jitter, PRECISION_MS) + phi * elapsed
                and new.delay_ms >= best.delay_ms
                and moved <= possible
            )
    kept = (*samples, msgspec.structs.replace(new, retired=retired))
    return kept[-WINDOW:], retired and not new.retired


def raise_ceiling(
    ceiling_ms: float | None,
    ceiling_at_ms: float | None,
    jitter_ms: float | None,
    bound_ms: float,
    at_ms: float,
    phi: float,
) -> tuple[float, float | None]:
    """The ceiling and its jitter after a batch whose one-way bound is ``bound_ms``.

    The old ceiling ages up at PHI; the new one is the lower of it and the bound. The jitter
    is an EWMA of how far bounds land above the ceiling (their queueing and transfer time).
    """
    if ceiling_ms is None or ceiling_at_ms is None:
        return bound_ms, jitter_ms
    aged = ceiling_ms + phi * max(at_ms - ceiling_at_ms, 0.0)
    excess = max(bound_ms - aged, 0.0)
    if jitter_ms is None:
        jitter = excess
    else:
        jitter = math.sqrt((1.0 - _EWMA) * jitter_ms * jitter_ms + _EWMA * excess * excess)
    return min(aged, bound_ms), jitter
