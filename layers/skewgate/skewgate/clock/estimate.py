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
changed the clock, or NTP stepped. A jump starts a new segment; history never crosses it. So
does the companion's report that ``Date.now()`` and its monotonic clock disagreed
(``clock_drift``): its clock may have moved by less than the intervals can show.

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

**One clock per segment.** Where in the interval θ lies comes from :mod:`skewgate.clock.filter`
(the clock filter over every exchange of the segment, the one-way ceiling, the learned delay
floor). The segment keeps *one* estimate: a batch gets the same value as the one before unless
the new evidence moves the estimate by more than its own uncertainty (the filter's jitter), or
the old value left the interval. So every batch of a segment that is shifted is shifted by the
same amount, and spans of one trace split over batches keep their exact gaps. When the shift
does change within a segment the batch says so (``shift_moved``, ``previous_shift_ms``).

A round trip counts once per session: an echo of an exchange the session already counted is
known (it still says "no step since", as the companion means it), an exchange older than the
newest counted one, or known server times with other client times, are ``replayed_sync``.

The correction policy refuses to touch a clock that is within the measurement error: only
an interval that lies wholly beyond ``±min_correction_ms`` proves the clock wrong. 25 ms is
about one browser frame plus the jitter of a one-way upload; smaller shifts would move span
times by less than what the page itself can observe, adding noise instead of removing it.
Independently of the interval, no adjusted span may end after we received it (Relay moves
such timestamps to the receipt time): a batch that would is shifted as a whole so its last end
is at receipt (``future``), durations and order kept, raw kept.

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
from skewgate.clock.filter import (
    PRECISION_MS,
    WINDOW,
    SyncSample,
    add_sample,
    clock_filter,
    raise_ceiling,
)
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
    CLOCK_DRIFT = "clock_drift"
    SHIFT_MOVED = "shift_moved"
    FUTURE = "future"
    IMPLAUSIBLE_SYNC = "implausible_sync"
    REPLAYED_SYNC = "replayed_sync"
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

    ``max_sync_age_ms`` is how long after we stamped t2 an echo still counts: the companion
    sends its latest exchange for at most two resync intervals (2 × 5 min), so 10 minutes; an
    exchange is milliseconds, and a longer window only serves replays.

    ``step_slack_ms`` is how far a one-way upper bound may exceed the session's before the
    session's upper side is no longer trusted: upload delays rarely spread by more, and half
    the companion's 1 s jump threshold leaves room for the bound's own slack (a causality
    bound sits a batch age above θ). Lower only widens intervals; higher lets steps hide.

    ``typical_drift_ppm`` ranks evidence by freshness for the point estimate (RFC 5905's PHI,
    15 ppm: most crystals and every disciplined clock drift less); the bounds use the worst
    case, ``max_drift_ppm``, because they must hold.
    """

    min_correction_ms: float = 25.0
    max_correction_ms: float | None = None
    max_upload_delay_ms: float = 10_000.0
    max_batch_age_ms: float = 60_000.0
    max_drift_ppm: float = 200.0
    default_one_way_delay_ms: float = 20.0
    max_sync_age_ms: float = 10 * 60_000.0
    clock_sync_key: bytes | None = None
    clock_sync_previous_keys: tuple[bytes, ...] = ()
    step_slack_ms: float = 500.0
    typical_drift_ppm: float = 15.0

    def drift_ms(self, elapsed_ms: float) -> float:
        """How far a clock may wander in ``elapsed_ms``, plus 1 ms for ms-rounded readings."""
        return max(elapsed_ms, 0.0) * self.max_drift_ppm * 1e-6 + 1.0

    @property
    def phi(self) -> float:
        return self.typical_drift_ppm * 1e-6


class SessionClock(msgspec.Struct, frozen=True):
    """A session's running knowledge of its clock, persisted between batches.

    ``lower_ms``/``upper_ms`` hold as of ``at_ms`` (our clock) and widen with drift after it.
    The rest feeds the point estimate (:mod:`skewgate.clock.filter`): ``syncs``, the counted
    exchanges (the last 8, of any segment, so an echo is recognised); ``newest_sync_t2_ms``,
    the newest counted exchange (an older one is not counted again); the segment's one-way
    ``ceiling_*``; the session's learned ``delay_floor_ms`` (of the network path, so kept
    across segments); ``estimate_ms``, the segment's one estimate, and what it rests on;
    ``shift_ms``, what the segment's last batch was shifted by; ``epoch``, the companion's
    drift epoch last seen.
    """

    segment: int
    lower_ms: float | None
    upper_ms: float | None
    at_ms: float
    method: Method
    samples: int = 1
    syncs: tuple[SyncSample, ...] = ()
    newest_sync_t2_ms: float | None = None
    ceiling_ms: float | None = None
    ceiling_at_ms: float | None = None
    ceiling_jitter_ms: float | None = None
    delay_floor_ms: float | None = None
    estimate_ms: float | None = None
    estimate_method: Method | None = None
    shift_ms: float | None = None
    epoch: int = 0

    @property
    def interval(self) -> OffsetInterval:
        return OffsetInterval(self.lower_ms, self.upper_ms)

    def interval_at(self, when_ms: float, config: EstimatorConfig) -> OffsetInterval:
        return self.interval.widen(config.drift_ms(when_ms - self.at_ms))

    def knows(self, sync: ClockSync) -> bool | None:
        """``True``: this exchange was counted; ``False``: its server times were, with other
        client times, or it is older than the newest counted one; ``None``: it is new."""
        for sample in self.syncs:
            if sample.t2_ms == sync.t2:
                return sample.is_exchange(sync)
        if self.newest_sync_t2_ms is not None and sync.t2 <= self.newest_sync_t2_ms:
            return False
        return None


@dataclass(frozen=True, slots=True)
class SkewEstimate:
    """The verdict for one batch of one session; the skew sample stores exactly this.

    ``previous_shift_ms`` is set with ``shift_moved``: what the segment's previous batch was
    shifted by, so a reader knows which spans can be compared.
    """

    offset_ms: float
    lower_ms: float | None
    upper_ms: float | None
    method: Method
    applied: bool
    jump: bool = False
    flags: tuple[Flag, ...] = field(default_factory=tuple)
    previous_shift_ms: float | None = None

    @property
    def shift_ms(self) -> float:
        """What is added to every client time of the batch."""
        return self.offset_ms if self.applied else 0.0

    @property
    def interval(self) -> OffsetInterval:
        return OffsetInterval(self.lower_ms, self.upper_ms)


@dataclass(frozen=True, slots=True)
class _Own:
    """What a batch alone supports: its interval and method, the round trip it used, and its
    one-way upper bound (the tightest of send time and causality) for the ceiling."""

    interval: OffsetInterval
    method: Method
    sync: ClockSync | None
    one_way_upper: float | None


def _vet_sync(
    evidence: BatchEvidence,
    previous: SessionClock | None,
    config: EstimatorConfig,
    flags: list[Flag],
) -> tuple[ClockSync | None, bool]:
    """The round trip this batch may use, and whether it is new to the session."""
    sync = evidence.clock_sync
    if sync is None:
        return None, False
    why = sync.implausibility(
        evidence.received_at_ms,
        config.max_sync_age_ms,
        config.clock_sync_key,
        evidence.session_id,
        config.clock_sync_previous_keys,
    )
    if why is not None:
        flags.append(Flag.IMPLAUSIBLE_SYNC)
        return None, False
    known = previous.knows(sync) if previous is not None else None
    if known is False:
        # Counted once per session: the same server times with other client times, or an
        # exchange older than one already counted (the companion only ever moves forward).
        flags.append(Flag.REPLAYED_SYNC)
        return None, False
    return sync, known is None


def _batch_interval(
    evidence: BatchEvidence,
    sync: ClockSync | None,
    config: EstimatorConfig,
    flags: list[Flag],
) -> _Own:
    """The interval this batch alone supports (``sync`` already vetted)."""
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
            return _Own(OffsetInterval(None, causality), Method.CAUSALITY, None, causality)
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
    one_way_upper = interval.upper_ms
    used = None
    if sync is not None:
        # t1 − t0 bounds θ as of t0, which is up to one round trip plus our processing
        # before t2: widen from there (t1 − δ ≤ t0 on our clock), not from t2.
        ntp = sync.interval.widen(config.drift_ms(recv - sync.t1 + max(sync.delay_ms, 0.0)))
        # Only hard bounds may reject a round trip: the one-way upper bounds.
        narrowed = ntp.intersect(OffsetInterval(None, interval.upper_ms))
        if narrowed is None:
            flags.append(Flag.STALE_SYNC)  # the clock moved since that exchange
        else:
            interval, method, used = narrowed, Method.NTP, sync
    return _Own(interval, method, used, one_way_upper)


#: The flags :func:`_batch_interval` raises (recomputed when a batch straddles a step).
_OWN_FLAGS = frozenset({Flag.SLEEP_DRIFT, Flag.INCONSISTENT_SEND_TIME, Flag.STALE_SYNC})


def _hull(a: OffsetInterval, b: OffsetInterval) -> OffsetInterval:
    """The smallest interval holding both (``None`` stays unbounded)."""
    lower = None if a.lower_ms is None or b.lower_ms is None else min(a.lower_ms, b.lower_ms)
    upper = None if a.upper_ms is None or b.upper_ms is None else max(a.upper_ms, b.upper_ms)
    return OffsetInterval(lower, upper)


def _floor_us(value: float) -> float:
    """Down to the microsecond, one more for float error: epoch-ms floats near 1.8e12 resolve
    0.24 µs, and a span moved back to its receipt must never end after it."""
    return (math.floor(value * 1_000.0) - 1.0) / 1_000.0


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
    phi = config.phi
    flags: list[Flag] = []

    # The companion counts how often it saw Date.now() and its monotonic clock disagree; a
    # higher count than last time means it did since (a page reload starts again from 0).
    epoch = previous.epoch if previous is not None else 0
    drifted = False
    if evidence.drift_epoch is not None:
        drifted = evidence.drift_epoch > epoch
        epoch = evidence.drift_epoch
    if drifted:
        flags.append(Flag.CLOCK_DRIFT)

    sync, new_sync = _vet_sync(evidence, previous, config, flags)
    own = _batch_interval(evidence, sync, config, flags)
    method = own.method
    used = own.sync
    one_way_upper = own.one_way_upper
    # What the interval says about this batch's spans; differs from ``interval`` (the session's
    # new state) only for a batch that may straddle a clock step.
    report: OffsetInterval | None = None

    jump = False
    segment = 0
    samples = 1
    interval = own.interval
    continues = False  # the batch continues the previous batch's segment
    fresh_estimate = False  # the segment's point estimate starts over (possible step)
    if previous is not None:
        running = previous.interval_at(recv, config)
        joined = running.intersect(own.interval)
        segment = previous.segment
        if joined is None:
            jump = True
            segment += 1
            spans_at = evidence.max_client_time_ms
            if own.method in (Method.SEND_TIME, Method.NTP) and spans_at is not None:
                c = recv - spans_at
                old = running.intersect(OffsetInterval(c - config.max_batch_age_ms, c))
                if old is not None:
                    # The send time or round trip shows the step, the spans' own interval does
                    # not: they may have been stamped before it, on the old clock. Which clock
                    # stamped them is unknown, so the batch reports both and is not shifted.
                    # The new segment starts from the evidence about the clock now, without
                    # the spans' bound (which may be the old clock's).
                    flags = [f for f in flags if f not in _OWN_FLAGS]
                    redone = _batch_interval(
                        replace(evidence, max_client_time_ms=None), sync, config, flags
                    )
                    interval, method, used = redone.interval, redone.method, redone.sync
                    one_way_upper = redone.one_way_upper
                    report = _hull(interval, old)
                    flags.append(Flag.STRADDLES_STEP)
        elif drifted:
            # No disjoint intervals, but the companion saw its clocks disagree: the clock may
            # have moved by less than the intervals show. History stops here.
            segment += 1
        else:
            continues = True
            samples = previous.samples + 1
            if previous.method.strength > method.strength:
                method = previous.method
            if (
                own.method in (Method.SEND_TIME, Method.CAUSALITY)
                and own.interval.upper_ms is not None
                and previous.upper_ms is not None
                and own.interval.upper_ms - previous.upper_ms > config.step_slack_ms
            ):
                # A one-way upper bound well above the session's last one: a slow upload or
                # batch, or the clock was set back by a step hidden in the assumed side. The
                # session's upper bound may no longer hold; its lower bound still does (θ only
                # grew), so keep that and this batch's own upper. (Compared before drift
                # widening: after a long gap, worst-case drift would otherwise hide the step.)
                # The point estimate starts over: it described the clock before.
                joined = OffsetInterval(joined.lower_ms, own.interval.upper_ms)
                fresh_estimate = True
                flags.append(Flag.POSSIBLE_STEP)
            interval = joined

    # --- the point estimate (skewgate.clock.filter) ------------------------------------
    syncs: tuple[SyncSample, ...] = previous.syncs if previous is not None else ()
    newest = previous.newest_sync_t2_ms if previous is not None else None
    if fresh_estimate:
        syncs = tuple(
            msgspec.structs.replace(s, retired=True) if s.segment == segment else s
            for s in syncs
        )
    before = syncs  # what the estimate rested on before this batch
    if sync is not None and new_sync:
        # Counted now, once: a round trip the hard bounds rejected still identifies its
        # exchange, but does not speak for the clock.
        sample = SyncSample.of(sync, segment, retired=used is None)
        syncs, _ = add_sample(syncs, sample, phi, config.max_drift_ppm * 1e-6)
        newest = sync.t2 if newest is None else max(newest, sync.t2)

    ceiling = ceiling_at = ceiling_jitter = None
    if continues and not fresh_estimate and previous is not None:
        ceiling, ceiling_at = previous.ceiling_ms, previous.ceiling_at_ms
        ceiling_jitter = previous.ceiling_jitter_ms
    if one_way_upper is not None:
        ceiling, ceiling_jitter = raise_ceiling(
            ceiling, ceiling_at, ceiling_jitter, one_way_upper, recv, phi
        )
        ceiling_at = recv

    floor = previous.delay_floor_ms if previous is not None else None
    best, _ = clock_filter(syncs, segment, recv, phi)
    if best is not None and ceiling is not None:
        seen = max(ceiling - best.offset_ms, 0.0)
        floor = seen if floor is None else min(floor, seen)

    if best is not None:
        fresh, source = best.offset_ms, Method.NTP
        # The spread of the segment's exchanges (one alone: half its delay, all it can be off).
        # How sure the estimate was before this batch: the spread of the exchanges it rested
        # on. (Measured after, a second exchange would set the spread to its own difference
        # and could never move anything.) Fewer than two: nothing to hold it to.
        _, before_jitter = clock_filter(before, segment, recv, phi)
        sigma = max(before_jitter or 0.0, PRECISION_MS)
    elif ceiling is not None:
        delay = floor if floor is not None else config.default_one_way_delay_ms
        fresh = ceiling - delay
        source = method if method is not Method.NTP else Method.SEND_TIME
        # The least of n bounds whose excess delays spread by J sits about J / n above the
        # floor (exponential excess): that, not one upload's jitter, is how sure it was.
        sigma = PRECISION_MS
        if continues and previous is not None and previous.ceiling_jitter_ms is not None:
            sigma = max(previous.ceiling_jitter_ms / min(previous.samples, WINDOW), sigma)
    elif interval.lower_ms is not None:
        fresh, source, sigma = interval.lower_ms, Method.NONE, PRECISION_MS
    else:
        fresh, source, sigma = 0.0, Method.NONE, PRECISION_MS
    fresh = interval.clamp(fresh)

    # One estimate per segment: kept while the new one lies within its uncertainty, rests on
    # no stronger evidence, and the old one is still possible.
    point, point_method = fresh, source
    if continues and previous is not None:
        kept, kept_method = previous.estimate_ms, previous.estimate_method
        if (
            kept is not None
            and kept_method is not None
            and interval.contains(kept)
            # A possible step is one slow batch far more often than a clock set back: it is no
            # evidence the clock moved. Its own bound restarts the ceiling; the next batches
            # either agree with the old value (kept) or move it.
            and (
                fresh_estimate
                or (kept_method.strength >= source.strength and abs(fresh - kept) <= sigma)
            )
        ):
            point, point_method = kept, kept_method
    offset = point

    applied = report is None and own.interval.proves_wrong(config.min_correction_ms)
    if applied and config.max_correction_ms is not None and abs(offset) > config.max_correction_ms:
        flags.append(Flag.OVER_CAP)
        applied = False
    if evidence.max_client_time_ms is not None:
        # A hard limit, whatever the interval: no adjusted span ends after we received it.
        room = recv - evidence.max_client_time_ms
        if (offset if applied else 0.0) > room:
            flags.append(Flag.FUTURE)
            offset, applied = _floor_us(room), True
    shift = offset if applied else 0.0

    previous_shift = None
    if continues and previous is not None and previous.shift_ms is not None:
        if shift != previous.shift_ms:
            flags.append(Flag.SHIFT_MOVED)
            previous_shift = previous.shift_ms
    if jump:
        flags.append(Flag.JUMP)

    state = SessionClock(
        segment=segment,
        lower_ms=interval.lower_ms,
        upper_ms=interval.upper_ms,
        at_ms=recv,
        method=method,
        samples=samples,
        syncs=syncs,
        newest_sync_t2_ms=newest,
        ceiling_ms=ceiling,
        ceiling_at_ms=ceiling_at,
        ceiling_jitter_ms=ceiling_jitter,
        delay_floor_ms=floor,
        estimate_ms=point,
        estimate_method=point_method,
        shift_ms=shift,
        epoch=epoch,
    )
    shown = interval if report is None else report
    result = SkewEstimate(
        offset_ms=offset,
        lower_ms=shown.lower_ms,
        upper_ms=shown.upper_ms,
        method=method,
        applied=applied,
        jump=jump,
        flags=tuple(flags),
        previous_shift_ms=previous_shift,
    )
    return result, state
