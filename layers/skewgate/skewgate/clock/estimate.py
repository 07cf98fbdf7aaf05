"""Clock-offset estimation: one small set of types owns the math.

θ (``offset_ms``) is ``server_clock − client_clock``: the amount to add to a client timestamp.
Every observation of a batch yields an interval that must contain θ:

* send time ``u = t_recv − t_send``: the upload delay is ≥ 0, so θ ≤ u. Nothing bounds the
  delay from above, so the lower side is an *assumption*, ``u − max_upload_delay_ms``.
* causality ``c = t_recv − max(client times in the batch)``: every span ended before the batch
  was received, so θ ≤ c; the lower side assumes ``max_batch_age_ms``.
* round trip (RFC 5905 §8) ``t2 − t3 ≤ θ ≤ t1 − t0``: both sides are hard.
* session history: earlier intervals of the same clock segment, widened by the worst drift
  rate times the time since, intersected with the new one (Marzullo with one source).

A new interval disjoint from the running one is a clock jump: the device slept, the user
changed the clock, or NTP stepped. A jump starts a new segment; history never crosses it.

Not every step can be seen. A clock set *back* (θ grows) by less than a one-way bound's assumed
side keeps the intervals intersecting: it looks like a slow upload. This is the common case of
a time service fixing a clock that ran ahead. Two rules keep it from doing harm:

* a one-way upper bound more than ``step_slack_ms`` above the session's last one drops the
  session's upper side (flag ``possible_step``); its lower side still holds, as θ only grew;
* only the batch's *own* evidence may prove the clock wrong; history narrows the interval and
  the estimate but never alone justifies a shift, since after a hidden step it would go on
  "proving" wrong a clock that is right again.

A send time or round trip describes the clock *now*; spans stamped before a step do not.
Spans older than any batching explains (``sleep_drift``) therefore count only through their
hard causality bound, and a jump seen by the send time or round trip but not by the spans'
own bound (``straddles_step``) reports both clocks' intervals and shifts nothing.

The correction policy refuses to touch a clock that is within the measurement error: only
an interval that lies wholly beyond ``±min_correction_ms`` proves the clock wrong. 25 ms is
about one browser frame plus the jitter of a one-way upload; smaller shifts would move span
times by less than what the page itself can observe, adding noise instead of removing it.

Example:
    >>> ev = BatchEvidence(
    ...     received_at_ms=10_000.0, sent_at_ms=10_800.0, max_client_time_ms=10_700.0
    ... )
    >>> est, state = estimate(ev, None, EstimatorConfig())
    >>> est.method.value, est.applied, est.upper_ms
    ('send_time', True, -800.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import StrEnum

import msgspec

from skewgate.clock.evidence import BatchEvidence, ClockSync
from skewgate.clock.interval import OffsetInterval

__all__ = [
    "EstimatorConfig",
    "Flag",
    "Method",
    "SessionClock",
    "SkewEstimate",
    "estimate",
]


class Method(StrEnum):
    """The strongest evidence behind an interval, strongest first."""

    NTP = "ntp"
    SEND_TIME = "send_time"
    CAUSALITY = "causality"
    NONE = "none"

    @property
    def strength(self) -> int:
        return _STRENGTH[self]


_STRENGTH = {Method.NTP: 3, Method.SEND_TIME: 2, Method.CAUSALITY: 1, Method.NONE: 0}


class Flag(StrEnum):
    """Why a verdict is unusual; a sample lists every flag that applies (``flags``).

    The meaning of each is in docs/design.md ("Flags").
    """

    JUMP = "jump"
    POSSIBLE_STEP = "possible_step"
    STRADDLES_STEP = "straddles_step"
    SLEEP_DRIFT = "sleep_drift"
    IMPLAUSIBLE_SYNC = "implausible_sync"
    STALE_SYNC = "stale_sync"
    INCONSISTENT_SEND_TIME = "inconsistent_send_time"
    BAD_SENT_AT = "bad_sent_at"
    OVER_CAP = "over_cap"
    NO_SESSION = "no_session"
    BAD_SESSION_ID = "bad_session_id"


@dataclass(frozen=True, slots=True)
class EstimatorConfig:
    """Stated assumptions; the defaults are docs/design.md §1's.

    ``default_one_way_delay_ms`` is the upload delay assumed when a session has no round trip
    to tell its own: a browser's one-way delay to a regional API is tens of ms.

    ``step_slack_ms`` is how far a one-way upper bound may exceed the session's before the
    session's upper side is no longer trusted: upload delays rarely spread by more, and half
    the companion's 1 s jump threshold leaves room for the bound's own slack (a causality
    bound sits a batch age above θ). Lower only widens intervals; higher lets steps hide.
    """

    min_correction_ms: float = 25.0
    max_correction_ms: float | None = None
    max_upload_delay_ms: float = 10_000.0
    max_batch_age_ms: float = 60_000.0
    max_drift_ppm: float = 200.0
    default_one_way_delay_ms: float = 20.0
    max_sync_age_ms: float = 6 * 3_600_000.0
    clock_sync_key: bytes | None = None
    step_slack_ms: float = 500.0

    def drift_ms(self, elapsed_ms: float) -> float:
        """How far a clock may wander in ``elapsed_ms``, plus 1 ms for ms-rounded readings."""
        return max(elapsed_ms, 0.0) * self.max_drift_ppm * 1e-6 + 1.0


class SessionClock(msgspec.Struct, frozen=True):
    """A session's running knowledge of its clock, persisted between batches.

    ``lower_ms``/``upper_ms`` hold as of ``at_ms`` (our clock) and widen with drift after it.
    ``best_sync_*`` is the lowest-dispersion round trip of the segment (NTP's clock filter):
    its midpoint is the estimate and half its delay the session's known one-way delay.
    """

    segment: int
    lower_ms: float | None
    upper_ms: float | None
    at_ms: float
    method: Method
    samples: int = 1
    best_sync_offset_ms: float | None = None
    best_sync_delay_ms: float | None = None
    best_sync_at_ms: float | None = None

    @property
    def interval(self) -> OffsetInterval:
        return OffsetInterval(self.lower_ms, self.upper_ms)

    def interval_at(self, when_ms: float, config: EstimatorConfig) -> OffsetInterval:
        return self.interval.widen(config.drift_ms(when_ms - self.at_ms))

    def sync_dispersion_at(self, when_ms: float, config: EstimatorConfig) -> float:
        if self.best_sync_delay_ms is None or self.best_sync_at_ms is None:
            return math.inf
        return self.best_sync_delay_ms / 2.0 + config.drift_ms(when_ms - self.best_sync_at_ms)


@dataclass(frozen=True, slots=True)
class SkewEstimate:
    """The verdict for one batch of one session; the skew sample stores exactly this."""

    offset_ms: float
    lower_ms: float | None
    upper_ms: float | None
    method: Method
    applied: bool
    jump: bool = False
    flags: tuple[Flag, ...] = field(default_factory=tuple)

    @property
    def shift_ms(self) -> float:
        """What is added to every client time of the batch."""
        return self.offset_ms if self.applied else 0.0

    @property
    def interval(self) -> OffsetInterval:
        return OffsetInterval(self.lower_ms, self.upper_ms)


def _batch_interval(
    evidence: BatchEvidence, config: EstimatorConfig, flags: list[Flag]
) -> tuple[OffsetInterval, Method, ClockSync | None]:
    """The interval this batch alone supports, its method, and the round trip it used."""
    recv = evidence.received_at_ms
    interval = OffsetInterval.unbounded()
    method = Method.NONE
    causality = None if evidence.max_client_time_ms is None else recv - evidence.max_client_time_ms
    if causality is not None:
        interval = OffsetInterval(causality - config.max_batch_age_ms, causality)
        method = Method.CAUSALITY
    if evidence.sent_at_ms is not None:
        upload = recv - evidence.sent_at_ms
        if (
            evidence.max_client_time_ms is not None
            and causality is not None
            and evidence.sent_at_ms - evidence.max_client_time_ms > config.max_batch_age_ms
        ):
            # Spans far older than any batching explains: the batch waited (offline, across
            # a sleep), the clock was set forward after they ended, or their times drifted
            # (performance.timeOrigin across a sleep). The send time and any round trip
            # describe the clock now, not necessarily the one that stamped these spans, and
            # their age is unknown: only the hard causality bound speaks for them.
            flags.append(Flag.SLEEP_DRIFT)
            return OffsetInterval(None, causality), Method.CAUSALITY, None
        # A send time is measured just before the upload, so its assumed lower bound is the
        # tighter and more reliable one; the causality bound still caps the upper side.
        send = OffsetInterval(upload - config.max_upload_delay_ms, upload)
        combined = send.intersect(OffsetInterval(None, causality))
        if combined is None:
            # Spans ended after the stated send time by more than any upload takes: the
            # header is not on the spans' clock (or the clock was set in between).
            flags.append(Flag.INCONSISTENT_SEND_TIME)
        else:
            interval, method = combined, Method.SEND_TIME
    used_sync = None
    sync = evidence.clock_sync
    if sync is not None:
        why = sync.implausibility(recv, config.max_sync_age_ms, config.clock_sync_key)
        if why is not None:
            flags.append(Flag.IMPLAUSIBLE_SYNC)
        else:
            # t1 − t0 bounds θ as of t0, which is up to one round trip plus our processing
            # before t2: widen from there (t1 − δ ≤ t0 on our clock), not from t2.
            ntp = sync.interval.widen(config.drift_ms(recv - sync.t1 + max(sync.delay_ms, 0.0)))
            # Only hard bounds may reject a round trip: the one-way upper bounds.
            narrowed = ntp.intersect(OffsetInterval(None, interval.upper_ms))
            if narrowed is None:
                flags.append(Flag.STALE_SYNC)  # the clock moved since that exchange
            else:
                interval, method, used_sync = narrowed, Method.NTP, sync
    return interval, method, used_sync


def _hull(a: OffsetInterval, b: OffsetInterval) -> OffsetInterval:
    """The smallest interval holding both (``None`` stays unbounded)."""
    lower = None if a.lower_ms is None or b.lower_ms is None else min(a.lower_ms, b.lower_ms)
    upper = None if a.upper_ms is None or b.upper_ms is None else max(a.upper_ms, b.upper_ms)
    return OffsetInterval(lower, upper)


def estimate(
    evidence: BatchEvidence,
    previous: SessionClock | None,
    config: EstimatorConfig,
) -> tuple[SkewEstimate, SessionClock]:
    """Estimate θ for one batch and return the session's next state.

    ``previous`` is ``None`` for a batch without session (no history) or a session's first.

    Only the batch's own evidence may prove the clock wrong (``applied``); history narrows the
    interval and the estimate. A clock set back (θ grows) by less than the assumed side of a
    one-way bound never makes the intervals disjoint: it looks like a slow upload, and history
    would go on "proving" wrong a clock that is right again. The batch's own hard bounds cannot
    be fooled that way.
    """
    recv = evidence.received_at_ms
    flags: list[Flag] = []
    own, own_method, sync = _batch_interval(evidence, config, flags)
    method = own_method
    # What the interval says about this batch's spans; differs from ``interval`` (the session's
    # new state) only for a batch that may straddle a clock step.
    report: OffsetInterval | None = None

    jump = False
    segment = 0
    best_offset = best_delay = best_at = None
    samples = 1
    interval = own
    if previous is not None:
        running = previous.interval_at(recv, config)
        joined = running.intersect(own)
        segment = previous.segment
        if joined is None:
            jump = True
            segment += 1
            spans_at = evidence.max_client_time_ms
            if own_method in (Method.SEND_TIME, Method.NTP) and spans_at is not None:
                c = recv - spans_at
                old = running.intersect(OffsetInterval(c - config.max_batch_age_ms, c))
                if old is not None:
                    # The send time or round trip shows the step, the spans' own interval does
                    # not: they may have been stamped before it, on the old clock. Which clock
                    # stamped them is unknown, so the batch reports both and is not shifted.
                    # The new segment starts from the evidence about the clock now, without
                    # the spans' bound (which may be the old clock's).
                    flags = []
                    interval, method, sync = _batch_interval(
                        replace(evidence, max_client_time_ms=None), config, flags
                    )
                    report = _hull(interval, old)
                    flags.append(Flag.STRADDLES_STEP)
        else:
            samples = previous.samples + 1
            if previous.method.strength > method.strength:
                method = previous.method
            best_offset = previous.best_sync_offset_ms
            best_delay = previous.best_sync_delay_ms
            best_at = previous.best_sync_at_ms
            if (
                own_method in (Method.SEND_TIME, Method.CAUSALITY)
                and own.upper_ms is not None
                and previous.upper_ms is not None
                and own.upper_ms - previous.upper_ms > config.step_slack_ms
            ):
                # A one-way upper bound well above the session's last one: a slow upload or
                # batch, or the clock was set back by a step hidden in the assumed side. The
                # session's upper bound may no longer hold; its lower bound still does (θ only
                # grew), so keep that and this batch's own upper. (Compared before drift
                # widening: after a long gap, worst-case drift would otherwise hide the step.)
                joined = OffsetInterval(joined.lower_ms, own.upper_ms)
                best_offset = best_delay = best_at = None
                flags.append(Flag.POSSIBLE_STEP)
            interval = joined
            if best_offset is not None and not interval.contains(best_offset):
                # The old round trip's midpoint left the narrowed interval: drop it.
                best_offset = best_delay = best_at = None

    state = SessionClock(
        segment=segment,
        lower_ms=interval.lower_ms,
        upper_ms=interval.upper_ms,
        at_ms=recv,
        method=method,
        samples=samples,
        best_sync_offset_ms=best_offset,
        best_sync_delay_ms=best_delay,
        best_sync_at_ms=best_at,
    )
    if sync is not None and sync.delay_ms / 2.0 + config.drift_ms(recv - sync.t2) < (
        state.sync_dispersion_at(recv, config)
    ):
        state = msgspec.structs.replace(
            state,
            best_sync_offset_ms=sync.midpoint_ms,
            best_sync_delay_ms=sync.delay_ms,
            best_sync_at_ms=sync.t2,
        )

    if state.best_sync_offset_ms is not None:
        point = state.best_sync_offset_ms
    elif interval.upper_ms is not None:
        point = interval.upper_ms - config.default_one_way_delay_ms
    elif interval.lower_ms is not None:
        point = interval.lower_ms
    else:
        point = 0.0
    offset = interval.clamp(point)

    applied = report is None and own.proves_wrong(config.min_correction_ms)
    if applied and config.max_correction_ms is not None and abs(offset) > config.max_correction_ms:
        flags.append(Flag.OVER_CAP)
        applied = False
    if jump:
        flags.append(Flag.JUMP)
    shown = interval if report is None else report
    result = SkewEstimate(
        offset_ms=offset,
        lower_ms=shown.lower_ms,
        upper_ms=shown.upper_ms,
        method=method,
        applied=applied,
        jump=jump,
        flags=tuple(flags),
    )
    return result, state
