"""Unit tests beside the math of ``skewgate.clock`` (the estimator is pure: no fixtures).

Conventions: θ = server − client, the amount added to client times. ``T`` is our clock at an
arbitrary receipt; a client whose clock is θ behind ours reads ``t − θ`` at our time ``t``.
"""

from __future__ import annotations

import math

import pytest

from skewgate.clock import (
    BatchEvidence,
    ClockSync,
    EstimatorConfig,
    Method,
    OffsetInterval,
    SessionClock,
    SkewEstimate,
    clock_key_id,
    estimate,
    sign_clock_reading,
)
from skewgate.clock.filter import clock_filter

T = 1_767_225_600_000.0  # 2026-01-01T00:00:00Z in ms
CFG = EstimatorConfig()
HOUR = 3_600_000.0


def drift(elapsed_ms: float, config: EstimatorConfig = CFG) -> float:
    return elapsed_ms * config.max_drift_ppm * 1e-6 + 1.0


def exchange(
    theta: float, at: float, up: float = 40.0, down: float = 40.0, process: float = 2.0
) -> ClockSync:
    """A /v1/clock exchange started at our time ``at`` by a client θ behind us."""
    t0, t1 = at - theta, at + up
    t2 = t1 + process
    t3 = t2 + down - theta
    header = ClockSync.parse(f"t0={t0!r};t1={t1!r};t2={t2!r};t3={t3!r}")
    assert header is not None
    return header


def ntp_widening(sync: ClockSync, recv: float, config: EstimatorConfig = CFG) -> float:
    """How far estimate() widens a round trip: drift since t0 (≥ t1 − δ on our clock)."""
    return drift(recv - sync.t1 + sync.delay_ms, config)


def run(
    batches: list[BatchEvidence], config: EstimatorConfig = CFG
) -> tuple[list[SkewEstimate], SessionClock]:
    """Feed one session's batches through estimate(), carrying the state like the ingest."""
    state: SessionClock | None = None
    out = []
    for ev in batches:
        est, state = estimate(ev, state, config)
        out.append(est)
    assert state is not None
    return out, state


# --- OffsetInterval ---------------------------------------------------------------------------


class TestOffsetInterval:
    def test_contains_is_inclusive_and_none_is_unbounded(self) -> None:
        i = OffsetInterval(-5.0, 5.0)
        assert i.contains(-5.0) and i.contains(5.0) and i.contains(0.0)
        assert not i.contains(-5.001) and not i.contains(5.001)
        assert OffsetInterval(None, 0.0).contains(-1e12)
        assert OffsetInterval(0.0, None).contains(1e12)
        assert OffsetInterval.unbounded().contains(123.0)

    def test_width(self) -> None:
        assert OffsetInterval(-5.0, 5.0).width_ms == 10.0
        assert OffsetInterval(None, 5.0).width_ms == math.inf
        assert OffsetInterval.unbounded().width_ms == math.inf

    def test_widen_keeps_unbounded_sides(self) -> None:
        assert OffsetInterval(-5.0, 5.0).widen(2.0) == OffsetInterval(-7.0, 7.0)
        assert OffsetInterval(None, 5.0).widen(2.0) == OffsetInterval(None, 7.0)

    def test_intersect(self) -> None:
        a = OffsetInterval(0.0, 10.0)
        assert a.intersect(OffsetInterval(5.0, 20.0)) == OffsetInterval(5.0, 10.0)
        assert a.intersect(OffsetInterval(10.0, 20.0)) == OffsetInterval(10.0, 10.0)  # touching
        assert a.intersect(OffsetInterval(10.5, 20.0)) is None  # disjoint: a jump
        assert a.intersect(OffsetInterval(None, 3.0)) == OffsetInterval(0.0, 3.0)
        assert OffsetInterval.unbounded().intersect(a) == a

    def test_clamp(self) -> None:
        i = OffsetInterval(-5.0, 5.0)
        assert (i.clamp(-9.0), i.clamp(9.0), i.clamp(1.0)) == (-5.0, 5.0, 1.0)
        assert OffsetInterval.unbounded().clamp(42.0) == 42.0

    @pytest.mark.parametrize(
        ("lower", "upper", "wrong"),
        [
            (30.0, 40.0, True),  # behind by 30..40 ms
            (-40.0, -30.0, True),  # ahead by 30..40 ms
            (-30.0, 10.0, False),  # straddles 0
            (25.0, 40.0, False),  # touches +25: not *beyond* it
            (-40.0, -25.0, False),
            (25.001, 40.0, True),
            (None, -26.0, True),  # a one-way upper bound alone can prove "ahead"
            (None, -25.0, False),
            (26.0, None, True),
            (None, None, False),
        ],
    )
    def test_proves_wrong_only_beyond_min(
        self, lower: float | None, upper: float | None, wrong: bool
    ) -> None:
        assert OffsetInterval(lower, upper).proves_wrong(25.0) is wrong


# --- one-way bounds ---------------------------------------------------------------------------


class TestSendTime:
    def test_upper_is_the_upload_and_lower_the_assumed_delay(self) -> None:
        # The client is 800 ms ahead: it stamped X-Sent-At = T + 800 and we received at T.
        est, _ = estimate(BatchEvidence(received_at_ms=T, sent_at_ms=T + 800.0), None, CFG)
        assert est.method is Method.SEND_TIME
        assert (est.lower_ms, est.upper_ms) == (-800.0 - 10_000.0, -800.0)
        assert est.applied and est.shift_ms == est.offset_ms

    def test_cannot_prove_a_clock_behind_by_less_than_the_assumed_delay(self) -> None:
        # 5 s behind, 100 ms upload: u = 5100, interval [-4900, 5100] straddles 0.
        est, _ = estimate(BatchEvidence(received_at_ms=T, sent_at_ms=T - 5_100.0), None, CFG)
        assert (est.lower_ms, est.upper_ms) == (-4_900.0, 5_100.0)
        assert not est.applied and est.shift_ms == 0.0

    def test_proves_behind_beyond_the_assumed_delay(self) -> None:
        est, _ = estimate(BatchEvidence(received_at_ms=T, sent_at_ms=T - 12_000.0), None, CFG)
        assert est.lower_ms == 2_000.0 and est.applied

    def test_assumed_delay_is_configurable(self) -> None:
        cfg = EstimatorConfig(max_upload_delay_ms=2_000.0)
        est, _ = estimate(BatchEvidence(received_at_ms=T, sent_at_ms=T - 5_100.0), None, cfg)
        assert est.lower_ms == 3_100.0 and est.applied


class TestCausality:
    def test_spans_ended_before_receipt(self) -> None:
        # An unmodified exporter: spans end "an hour in the future" on our clock.
        ev = BatchEvidence(received_at_ms=T, max_client_time_ms=T + HOUR)
        est, _ = estimate(ev, None, CFG)
        assert est.method is Method.CAUSALITY
        assert (est.lower_ms, est.upper_ms) == (-HOUR - 60_000.0, -HOUR)
        assert est.applied

    def test_a_clock_within_the_batch_age_is_left_alone(self) -> None:
        ev = BatchEvidence(received_at_ms=T, max_client_time_ms=T - 2_000.0)
        est, _ = estimate(ev, None, CFG)
        assert (est.lower_ms, est.upper_ms) == (-58_000.0, 2_000.0) and not est.applied

    def test_caps_the_send_time_upper_bound(self) -> None:
        # u = 100 ms, but the spans ended 500 ms "after" receipt on our clock: θ ≤ -500.
        ev = BatchEvidence(received_at_ms=T, sent_at_ms=T - 100.0, max_client_time_ms=T + 500.0)
        est, _ = estimate(ev, None, CFG)
        assert est.method is Method.SEND_TIME
        assert (est.lower_ms, est.upper_ms) == (-9_900.0, -500.0)

    def test_spans_after_the_send_time_make_it_inconsistent(self) -> None:
        # Spans end 20 s after X-Sent-At on the same client clock: the header is not on the
        # spans' clock (or the clock was set back in between); only causality is used.
        ev = BatchEvidence(received_at_ms=T, sent_at_ms=T - 100.0, max_client_time_ms=T + 20_000.0)
        est, _ = estimate(ev, None, CFG)
        assert "inconsistent_send_time" in est.flags
        assert est.method is Method.CAUSALITY
        assert (est.lower_ms, est.upper_ms) == (-80_000.0, -20_000.0)


# --- round trip ---------------------------------------------------------------------------------


class TestRoundTrip:
    def test_interval_delay_and_midpoint(self) -> None:
        s = ClockSync(t0=1_000.0, t1=1_500.0, t2=1_502.0, t3=1_102.0)
        assert s.interval == OffsetInterval(400.0, 500.0)  # [t2 − t3, t1 − t0]
        assert s.delay_ms == 100.0  # (t3 − t0) − (t2 − t1): the interval's width
        assert s.midpoint_ms == 450.0

    def test_bounds_hold_with_asymmetric_delays(self) -> None:
        # 300 ms up, 10 ms down: the midpoint is off by (300 − 10) / 2, the interval is not.
        s = exchange(theta=1_234.0, at=T - 60_000.0, up=300.0, down=10.0)
        assert s.interval.contains(1_234.0)
        assert s.midpoint_ms == pytest.approx(1_234.0 + 145.0)

    def test_estimate_uses_the_round_trip_widened_by_drift(self) -> None:
        sync = exchange(theta=-3_000.0, at=T - 60_000.0)
        # A 100 ms upload: its bound (-2900) is looser than the round trip's.
        ev = BatchEvidence(received_at_ms=T, sent_at_ms=T + 2_900.0, clock_sync=sync)
        est, state = estimate(ev, None, CFG)
        w = ntp_widening(sync, T)
        assert est.method is Method.NTP
        assert est.lower_ms == pytest.approx(sync.t2 - sync.t3 - w)
        assert est.upper_ms == pytest.approx(sync.t1 - sync.t0 + w)
        assert est.offset_ms == pytest.approx(-3_000.0) and est.applied
        (counted,) = state.syncs
        assert counted.offset_ms == pytest.approx(-3_000.0)
        assert counted.delay_ms == pytest.approx(80.0) and not counted.retired

    def test_one_way_upper_bound_narrows_a_round_trip(self) -> None:
        sync = exchange(theta=0.0, at=T - 1_000.0, up=200.0, down=200.0)  # [-200, 200]
        ev = BatchEvidence(received_at_ms=T, sent_at_ms=T - 30.0, clock_sync=sync)
        est, _ = estimate(ev, None, CFG)
        assert est.method is Method.NTP and est.upper_ms == 30.0

    def test_stale_sync_when_the_clock_moved_after_the_exchange(self) -> None:
        # The exchange says θ ≈ 0, the send time now says the client is 5 s ahead.
        sync = exchange(theta=0.0, at=T - 120_000.0)
        ev = BatchEvidence(received_at_ms=T, sent_at_ms=T + 5_000.0, clock_sync=sync)
        est, state = estimate(ev, None, CFG)
        assert "stale_sync" in est.flags
        assert est.method is Method.SEND_TIME
        assert (est.lower_ms, est.upper_ms) == (-15_000.0, -5_000.0)
        # Counted (a later echo of it is known), but it no longer speaks for the clock.
        assert [s.retired for s in state.syncs] == [True]


class TestPlausibility:
    def sync(self, t0: float, t1: float, t2: float, t3: float, token: str = "") -> ClockSync:
        text = f"t0={t0!r};t1={t1!r};t2={t2!r};t3={t3!r}" + (f";token={token}" if token else "")
        parsed = ClockSync.parse(text)
        assert parsed is not None
        return parsed

    @pytest.mark.parametrize(
        ("times", "why"),
        [
            ((1_000.0, 1_500.0, 1_502.0, 999.0), "t3 before t0"),
            ((1_000.0, 1_500.0, 1_499.0, 1_100.0), "t2 before t1"),
            ((1_000.0, 1_500.0, 1_600.0, 1_050.0), "negative round trip"),
            ((1_000.0, T + 5.0, T + 6.0, 1_100.0), "t2 after receipt"),
            ((1_000.0, T - 7 * HOUR, T - 7 * HOUR + 2.0, 1_100.0), "exchange too old"),
        ],
    )
    def test_implausible(self, times: tuple[float, float, float, float], why: str) -> None:
        s = self.sync(*times)
        assert s.implausibility(T, CFG.max_sync_age_ms, None) == why
        ev = BatchEvidence(received_at_ms=T, sent_at_ms=T - 50.0, clock_sync=s)
        est, _ = estimate(ev, None, CFG)
        assert "implausible_sync" in est.flags and est.method is Method.SEND_TIME

    def test_ms_rounding_is_tolerated(self) -> None:
        # t2 up to 1 ms past receipt (Lambda vs edge clock), a round trip of -2 ms (rounding).
        c = T - 1_000.0  # the client's clock: 1 s behind
        assert self.sync(c - 30.0, T - 20.0, T + 0.9, c - 9.0).implausibility(
            T, CFG.max_sync_age_ms, None
        ) is None
        assert self.sync(c - 30.0, T - 20.0, T - 17.0, c - 29.0).implausibility(
            T, CFG.max_sync_age_ms, None
        ) is None  # δ = 1 − 3 = -2

    def test_token_is_required_and_checked_with_a_key(self) -> None:
        key = b"secret"
        t1, t2 = "1767225599000", "1767225599002.25"
        good = sign_clock_reading(key, t1, t2)
        base = f"t0=1767225598950;t1={t1};t2={t2};t3=1767225599040"
        for header, why in [
            (base, "bad token"),
            (base + ";token=" + "0" * 32, "bad token"),
            (base + ";token=" + good, None),
        ]:
            s = ClockSync.parse(header)
            assert s is not None
            assert s.implausibility(T, CFG.max_sync_age_ms, key) == why

    def test_token_covers_the_echoed_text_exactly(self) -> None:
        # "…002.250" and "…002.25" are the same number but not the same signed text.
        key = b"secret"
        signed = sign_clock_reading(key, "1767225599000", "1767225599002.250")
        header = "t0=1767225598950;t1=1767225599000;t2=1767225599002.25;t3=1767225599040"
        s = ClockSync.parse(header + ";token=" + signed)
        assert s is not None and s.implausibility(T, CFG.max_sync_age_ms, key) == "bad token"

    def test_token_ignored_without_a_key(self) -> None:
        s = self.sync(T - 1_100.0, T - 50.0, T - 48.0, T - 1_000.0, token="anything")
        assert s.token == "anything"
        assert s.implausibility(T, CFG.max_sync_age_ms, None) is None

    def test_key_checked_through_estimate(self) -> None:
        cfg = EstimatorConfig(clock_sync_key=b"k")
        sync = exchange(theta=0.0, at=T - 1_000.0)
        est, _ = estimate(BatchEvidence(received_at_ms=T, clock_sync=sync), None, cfg)
        assert "implausible_sync" in est.flags and est.method is Method.NONE

    def test_sign_clock_reading(self) -> None:
        a = sign_clock_reading(b"k", "1", "2", "s1")
        kid, _, mac = a.partition(".")
        assert kid == clock_key_id(b"k") and len(mac) == 32 and int(mac, 16) >= 0
        assert a == sign_clock_reading(b"k", "1", "2", "s1")
        assert a != sign_clock_reading(b"other", "1", "2", "s1")
        assert a != sign_clock_reading(b"k", "1", "2.0", "s1")
        assert a != sign_clock_reading(b"k", "1", "2", "s2")  # bound to the session
        assert a != sign_clock_reading(b"k", "1", "2")  # and "no session" is one too


class TestHeaderParsing:
    def test_full_header_with_token(self) -> None:
        s = ClockSync.parse("t0=1;t1=5.5;t2=6.250;t3=4;token=abc")
        assert s is not None
        assert (s.t0, s.t1, s.t2, s.t3, s.token) == (1.0, 5.5, 6.25, 4.0, "abc")
        assert (s.t1_text, s.t2_text) == ("5.5", "6.250")  # verbatim, for the token

    def test_lenient_on_spaces_case_and_order(self) -> None:
        s = ClockSync.parse(" T3 = 4 ; t1=5;t2=6 ; t0=1 ")
        assert s is not None and (s.t0, s.t1, s.t2, s.t3) == (1.0, 5.0, 6.0, 4.0)

    def test_empty_token_is_no_token(self) -> None:
        s = ClockSync.parse("t0=1;t1=5;t2=6;t3=4;token=")
        assert s is not None and s.token is None

    @pytest.mark.parametrize(
        "header",
        [
            "",
            "t0=1;t1=5;t2=6",
            "t0=1;t1=5;t2=6;t3=x",
            "t0=1;t1=5;t2=6;t3=inf",
            "t0=nan;t1=5;t2=6;t3=4",
            "t0=1;t1=5;t2=6;t3=4;junk",
            "t0 1, t1 5, t2 6, t3 4",
        ],
    )
    def test_malformed_is_none(self, header: str) -> None:
        assert ClockSync.parse(header) is None


# --- session history --------------------------------------------------------------------------


class TestHistory:
    def test_narrows_and_widens_with_drift(self) -> None:
        a = BatchEvidence(received_at_ms=T, sent_at_ms=T + 700.0)  # [-10700, -700]
        b = BatchEvidence(received_at_ms=T + 60_000.0, sent_at_ms=T + 60_000.0 + 750.0)
        (_, est), state = run([a, b])
        w = drift(60_000.0)  # 12 ms + 1
        assert est.lower_ms == pytest.approx(-10_700.0 - w)
        assert est.upper_ms == -750.0
        assert (state.segment, state.samples, state.at_ms) == (0, 2, T + 60_000.0)

    def test_drift_widening_amount(self) -> None:
        state = SessionClock(0, -10.0, 10.0, at_ms=T, method=Method.NTP)
        assert state.interval_at(T + HOUR, CFG) == OffsetInterval(-731.0, 731.0)
        assert state.interval_at(T - 5.0, CFG) == OffsetInterval(-11.0, 11.0)  # never shrinks

    def test_round_trip_history_serves_later_one_way_batches(self) -> None:
        sync = exchange(theta=-2_000.0, at=T - 1_000.0)
        first = BatchEvidence(received_at_ms=T, sent_at_ms=T + 1_950.0, clock_sync=sync)
        later = BatchEvidence(received_at_ms=T + 5_000.0, sent_at_ms=T + 5_000.0 + 1_940.0)
        (_, est), _ = run([first, later])
        assert est.method is Method.NTP  # history's method, though the batch had only X-Sent-At
        assert est.interval.width_ms < 100.0
        assert est.offset_ms == pytest.approx(-2_000.0) and est.applied

    def test_best_round_trip_is_the_lowest_dispersion(self) -> None:
        good = exchange(theta=100.0, at=T - 2_000.0, up=20.0, down=20.0)  # δ 40
        worse = exchange(theta=100.0, at=T + 58_000.0, up=160.0, down=40.0)  # δ 200, skewed
        _, state = run(
            [
                BatchEvidence(received_at_ms=T, clock_sync=good),
                BatchEvidence(received_at_ms=T + 60_000.0, clock_sync=worse),
            ]
        )
        best, jitter = clock_filter(state.syncs, state.segment, T + 60_000.0, CFG.phi)
        assert best is not None and best.delay_ms == pytest.approx(40.0)
        assert jitter == pytest.approx(60.0)  # the skewed one's midpoint is 60 ms off
        assert state.estimate_ms == pytest.approx(100.0)
        # Two hours on, the old one has aged out of favour (20 + 15 ppm × 2 h = 128 > 100).
        late = exchange(theta=100.0, at=T + 2 * HOUR, up=160.0, down=40.0)
        _, state2 = estimate(
            BatchEvidence(received_at_ms=T + 2 * HOUR + 2_000.0, clock_sync=late), state, CFG
        )
        best, _ = clock_filter(state2.syncs, 0, T + 2 * HOUR + 2_000.0, CFG.phi)
        assert best is not None and best.delay_ms == pytest.approx(200.0)
        assert best.offset_ms == pytest.approx(100.0 + 60.0)
        # ... but it moves the estimate by no more than the jitter it had: the value stays.
        assert state2.estimate_ms == pytest.approx(100.0)


class TestJumps:
    def ntp_session(self, theta: float) -> SessionClock:
        sync = exchange(theta=theta, at=T - 1_000.0)
        _, state = estimate(
            BatchEvidence(received_at_ms=T, sent_at_ms=T - theta - 50.0, clock_sync=sync),
            None,
            CFG,
        )
        return state

    def test_clock_set_forward_is_a_jump(self) -> None:
        state = self.ntp_session(theta=0.0)
        recv = T + 30_000.0
        ev = BatchEvidence(received_at_ms=recv, sent_at_ms=recv + HOUR - 50.0)  # 1 h ahead now
        est, new = estimate(ev, state, CFG)
        assert est.jump and est.flags[-1] == "jump"
        assert (new.segment, new.samples) == (1, 1)
        assert est.interval == OffsetInterval(-HOUR + 50.0 - 10_000.0, -HOUR + 50.0)
        assert est.method is Method.SEND_TIME  # history does not cross a jump
        assert clock_filter(new.syncs, new.segment, recv, CFG.phi) == (None, None)
        assert new.estimate_method is Method.SEND_TIME
        assert est.applied

    def test_clock_set_back_is_a_jump(self) -> None:
        state = self.ntp_session(theta=0.0)
        recv = T + 30_000.0
        ev = BatchEvidence(received_at_ms=recv, sent_at_ms=recv - HOUR - 50.0)  # 1 h behind
        est, new = estimate(ev, state, CFG)
        assert est.jump and new.segment == 1
        assert est.lower_ms == HOUR + 50.0 - 10_000.0 and est.applied
        assert "straddles_step" not in est.flags

    def test_causality_alone_shows_a_clock_set_forward(self) -> None:
        a = BatchEvidence(received_at_ms=T, max_client_time_ms=T - 1_000.0)
        b = BatchEvidence(received_at_ms=T + 10_000.0, max_client_time_ms=T + 10_000.0 + HOUR)
        (_, est), state = run([a, b])
        assert est.jump and state.segment == 1 and est.applied

    def test_history_restarts_after_a_jump(self) -> None:
        state = self.ntp_session(theta=0.0)
        r1, r2 = T + 30_000.0, T + 40_000.0
        _, s1 = estimate(BatchEvidence(received_at_ms=r1, sent_at_ms=r1 + HOUR - 50.0), state, CFG)
        est, s2 = estimate(
            BatchEvidence(received_at_ms=r2, sent_at_ms=r2 + HOUR - 80.0), s1, CFG
        )
        assert not est.jump and (s2.segment, s2.samples) == (1, 2)
        assert est.upper_ms == -HOUR + 50.0 + drift(10_000.0)


# --- the correction decision -------------------------------------------------------------------


class TestCorrectionPolicy:
    @pytest.mark.parametrize(
        ("theta", "half_width", "applied"),
        [
            (-10.0, 20.0, False),  # [-30, 10]: straddles 0
            (0.0, 20.0, False),
            (-60.0, 20.0, True),  # [-80, -40]
            (40.0, 20.0, False),  # [20, 60]: not beyond +25
            (60.0, 20.0, True),  # [40, 80]
        ],
    )
    def test_round_trip_must_lie_beyond_min(
        self, theta: float, half_width: float, applied: bool
    ) -> None:
        sync = exchange(theta=theta, at=T - 500.0, up=half_width, down=half_width, process=0.0)
        est, _ = estimate(BatchEvidence(received_at_ms=T, clock_sync=sync), None, CFG)
        assert est.applied is applied
        assert est.shift_ms == (est.offset_ms if applied else 0.0)

    def test_one_way_upper_bound_just_below_zero_is_not_enough(self) -> None:
        est, _ = estimate(BatchEvidence(received_at_ms=T, sent_at_ms=T + 20.0), None, CFG)
        assert est.upper_ms == -20.0 and not est.applied

    def test_min_correction_is_configurable(self) -> None:
        ev = BatchEvidence(received_at_ms=T, sent_at_ms=T + 20.0)
        est, _ = estimate(ev, None, EstimatorConfig(min_correction_ms=10.0))
        assert est.applied

    def test_over_cap_is_flagged_and_not_applied(self) -> None:
        cfg = EstimatorConfig(max_correction_ms=60_000.0)
        ev = BatchEvidence(received_at_ms=T, sent_at_ms=T + HOUR)
        est, _ = estimate(ev, None, cfg)
        assert "over_cap" in est.flags and not est.applied and est.shift_ms == 0.0
        assert est.offset_ms == -HOUR - 20.0  # still reported
        small, _ = estimate(BatchEvidence(received_at_ms=T, sent_at_ms=T + 5_000.0), None, cfg)
        assert small.applied and "over_cap" not in small.flags

    def test_history_alone_never_proves_a_clock_wrong(self) -> None:
        # A round trip put the client 80 ms ahead. The next batch has only a send time whose
        # own interval straddles 0: history still narrows it, but does not shift it (after a
        # clock step hidden in that send time, the client may be right again).
        sync = exchange(theta=-80.0, at=T - 1_000.0, up=20.0, down=20.0)
        first = BatchEvidence(received_at_ms=T, sent_at_ms=T + 60.0, clock_sync=sync)
        later = BatchEvidence(received_at_ms=T + 5_000.0, sent_at_ms=T + 5_000.0 - 100.0)
        (e1, e2), _ = run([first, later])
        assert e1.applied
        assert e2.method is Method.NTP and e2.upper_ms is not None and e2.upper_ms < -25.0
        assert not e2.applied and e2.offset_ms == pytest.approx(-80.0)


class TestMethodPrecedence:
    def test_within_one_batch(self) -> None:
        sync = exchange(theta=0.0, at=T - 1_000.0)
        cases = [
            (BatchEvidence(T, T - 50.0, T - 2_000.0, sync), Method.NTP),
            (BatchEvidence(T, T - 50.0, T - 2_000.0), Method.SEND_TIME),
            (BatchEvidence(T, None, T - 2_000.0), Method.CAUSALITY),
            (BatchEvidence(T), Method.NONE),
        ]
        for ev, method in cases:
            est, _ = estimate(ev, None, CFG)
            assert est.method is method

    def test_no_evidence_is_unbounded_and_never_applied(self) -> None:
        est, state = estimate(BatchEvidence(T), None, CFG)
        assert (est.lower_ms, est.upper_ms, est.offset_ms, est.applied) == (None, None, 0.0, False)
        assert state.syncs == () and state.ceiling_ms is None

    @pytest.mark.parametrize(
        ("first", "then", "method"),
        [
            ("ntp", "send_time", Method.NTP),
            ("ntp", "causality", Method.NTP),
            ("send_time", "causality", Method.SEND_TIME),
            ("causality", "none", Method.CAUSALITY),
            ("causality", "ntp", Method.NTP),
        ],
    )
    def test_with_history_the_strongest_so_far_wins(
        self, first: str, then: str, method: Method
    ) -> None:
        def batch(kind: str, recv: float) -> BatchEvidence:
            sync = exchange(theta=0.0, at=recv - 1_000.0) if kind == "ntp" else None
            sent = recv - 50.0 if kind in ("ntp", "send_time") else None
            spans = recv - 2_000.0 if kind != "none" else None
            return BatchEvidence(recv, sent, spans, sync)

        (_, est), _ = run([batch(first, T), batch(then, T + 5_000.0)])
        assert est.method is method


class TestPointEstimate:
    def test_one_way_is_the_upper_bound_minus_the_default_delay(self) -> None:
        est, _ = estimate(BatchEvidence(received_at_ms=T, sent_at_ms=T + 5_000.0), None, CFG)
        assert est.offset_ms == -5_000.0 - 20.0
        cfg = EstimatorConfig(default_one_way_delay_ms=50.0)
        est, _ = estimate(BatchEvidence(received_at_ms=T, sent_at_ms=T + 5_000.0), None, cfg)
        assert est.offset_ms == -5_050.0

    def test_one_way_uses_the_tightest_upper_bound_of_the_session(self) -> None:
        a = BatchEvidence(received_at_ms=T, sent_at_ms=T + 5_000.0 - 40.0)  # 40 ms upload
        b = BatchEvidence(received_at_ms=T + 5_000.0, sent_at_ms=T + 5_000.0 + 5_000.0 - 300.0)
        (_, est), state = run([a, b])
        assert est.upper_ms == pytest.approx(-4_960.0 + drift(5_000.0))
        # The ceiling ages at the typical drift (15 ppm), not the worst case: 0.075 ms, less
        # than the estimate's uncertainty, so the segment's value stays.
        assert state.ceiling_ms == pytest.approx(-4_960.0 + 5_000.0 * CFG.phi)
        assert est.offset_ms == -4_960.0 - 20.0

    def test_with_a_round_trip_in_the_session_it_is_that_midpoint(self) -> None:
        # Not "upper − δ/2": the lowest-dispersion round trip's midpoint, clamped into the
        # interval, estimates θ for the one-way batches that follow it.
        sync = exchange(theta=-3_000.0, at=T - 1_000.0, up=70.0, down=30.0)  # midpoint -2980
        first = BatchEvidence(received_at_ms=T, sent_at_ms=T + 2_950.0, clock_sync=sync)
        later = BatchEvidence(received_at_ms=T + 5_000.0, sent_at_ms=T + 5_000.0 + 3_000.0 - 60.0)
        (_, est), _ = run([first, later])
        assert est.offset_ms == pytest.approx(sync.midpoint_ms) == pytest.approx(-2_980.0)

    def test_a_round_trip_midpoint_outside_the_narrowed_interval_is_clamped(self) -> None:
        sync = exchange(theta=-50.0, at=T - 1_000.0, up=60.0, down=60.0)  # [-110, 10]
        first = BatchEvidence(received_at_ms=T, clock_sync=sync)
        later = BatchEvidence(received_at_ms=T + 1_000.0, sent_at_ms=T + 1_000.0 + 90.0)
        (_, est), _ = run([first, later])
        assert est.upper_ms == -90.0
        assert est.offset_ms == -90.0  # the midpoint −50 is impossible now: the nearest bound
        assert est.lower_ms == pytest.approx(-110.0 - ntp_widening(sync, T) - drift(1_000.0))


# --- steps the intervals cannot show --------------------------------------------------------------


class TestHiddenSteps:
    def test_sleep_drift_counts_only_the_spans_causality_bound(self) -> None:
        # Spans two hours older than the send time: the batch waited, or the clock was set
        # forward after they ended. The send time (and any round trip) may be another clock.
        sync = exchange(theta=0.0, at=T - 1_000.0)
        ev = BatchEvidence(T, T - 50.0, T - 2 * HOUR - 50.0, sync)
        est, _ = estimate(ev, None, CFG)
        assert "sleep_drift" in est.flags
        assert est.method is Method.CAUSALITY
        assert (est.lower_ms, est.upper_ms) == (None, 2 * HOUR + 50.0)
        assert not est.applied

    def test_sleep_drift_batch_of_a_clock_far_ahead_is_still_corrected(self) -> None:
        # A clock 3 h ahead holds a batch 1 h: its spans still prove it ahead by ≥ 2 h.
        ev = BatchEvidence(T, T + 3 * HOUR, T + 2 * HOUR)
        est, _ = estimate(ev, None, CFG)
        assert "sleep_drift" in est.flags and est.upper_ms == -2 * HOUR and est.applied

    def test_a_clock_set_back_inside_the_one_way_bounds_is_not_corrected(self) -> None:
        # Send time only; the client runs 2 s ahead, then its time service steps it right.
        # The new send-time interval [u − 10 s, u] still meets the old one: no jump is
        # visible, but the upper bound jumped by 2 s, so history's upper side is dropped.
        before = [
            BatchEvidence(received_at_ms=T + k * 5_000.0, sent_at_ms=T + k * 5_000.0 + 1_950.0)
            for k in range(5)
        ]
        r = T + 60_000.0
        after = BatchEvidence(received_at_ms=r, sent_at_ms=r - 50.0)
        ests, state = run([*before, after])
        assert all(e.applied for e in ests[:-1])
        est = ests[-1]
        assert not est.jump and "possible_step" in est.flags
        assert est.interval.contains(0.0) and not est.applied
        assert state.upper_ms == 50.0 and state.segment == 0

    def test_possible_step_compares_with_the_upper_bound_before_drift_widening(self) -> None:
        # After two hours, worst-case drift widens the old upper bound by 1.44 s; a 1 s step
        # back must still be noticed.
        a = BatchEvidence(received_at_ms=T, sent_at_ms=T + 2_000.0 - 40.0)
        r = T + 2 * HOUR
        b = BatchEvidence(received_at_ms=r, sent_at_ms=r + 1_000.0 - 40.0)
        (_, est), _ = run([a, b])
        assert "possible_step" in est.flags and est.upper_ms == -960.0

    def test_ordinary_upload_jitter_keeps_history(self) -> None:
        a = BatchEvidence(received_at_ms=T, sent_at_ms=T + 1_000.0 - 40.0)
        b = BatchEvidence(received_at_ms=T + 5_000.0, sent_at_ms=T + 5_000.0 + 1_000.0 - 400.0)
        (_, est), _ = run([a, b])
        assert "possible_step" not in est.flags
        assert est.upper_ms == pytest.approx(-960.0 + drift(5_000.0))

    def test_a_round_trip_batch_never_trips_possible_step(self) -> None:
        # A later exchange with a much slower path widens the upper bound by more than the
        # slack, but round trips bound both sides: no step can hide in them.
        a = exchange(theta=0.0, at=T - 1_000.0, up=10.0, down=10.0)
        b = exchange(theta=0.0, at=T + 9_000.0, up=900.0, down=900.0)
        (_, est), _ = run(
            [BatchEvidence(T, clock_sync=a), BatchEvidence(T + 10_000.0, clock_sync=b)]
        )
        assert "possible_step" not in est.flags

    def test_step_slack_is_configurable(self) -> None:
        a = BatchEvidence(received_at_ms=T, sent_at_ms=T + 1_000.0 - 40.0)
        b = BatchEvidence(received_at_ms=T + 5_000.0, sent_at_ms=T + 5_000.0 + 1_000.0 - 400.0)
        (_, est), _ = run([a, b], EstimatorConfig(step_slack_ms=100.0))
        assert "possible_step" in est.flags and est.upper_ms == -600.0

    def test_a_batch_straddling_a_step_reports_both_clocks_and_shifts_nothing(self) -> None:
        # Round trips put the client 5 s behind. Its time service then steps it right, after
        # the batch's spans were stamped (old clock) but before the send and a fresh exchange.
        old = exchange(theta=5_000.0, at=T - 1_000.0)
        _, state = estimate(
            BatchEvidence(T, T - 5_050.0, T - 5_000.0 - 2_000.0, old), None, CFG
        )
        r = T + 10_000.0
        new = exchange(theta=0.0, at=r - 2_000.0)
        spans_end = r - 3_000.0 - 5_000.0  # stamped 3 s before receipt, on the old clock
        est, new_state = estimate(BatchEvidence(r, r - 50.0, spans_end, new), state, CFG)
        assert est.jump and "straddles_step" in est.flags
        assert est.interval.contains(5_000.0) and est.interval.contains(0.0)
        assert not est.applied
        # The session moves on with the clock as it is now, not bounded by the old spans.
        assert new_state.segment == 1 and new_state.interval.contains(0.0)
        assert new_state.upper_ms is not None and new_state.upper_ms < 100.0
        r2 = r + 5_000.0
        nxt, _ = estimate(BatchEvidence(r2, r2 - 45.0, r2 - 1_000.0, new), new_state, CFG)
        assert not nxt.jump and not nxt.applied

    def test_a_step_far_beyond_the_batch_age_is_not_a_straddle(self) -> None:
        old = exchange(theta=0.0, at=T - 1_000.0)
        _, state = estimate(BatchEvidence(T, T - 50.0, T - 2_000.0, old), None, CFG)
        r = T + 10_000.0
        ev = BatchEvidence(r, r - HOUR - 50.0, r - HOUR - 2_000.0)  # set back 1 h before spans
        est, _ = estimate(ev, state, CFG)
        assert est.jump and "straddles_step" not in est.flags and est.applied


def test_an_echo_claiming_a_clock_decades_away_is_implausible() -> None:
    sync = ClockSync.parse("t0=1;t1=1795651409000;t2=1795651409001;t3=1e200")
    assert sync is not None
    assert sync.implausibility(1_795_651_410_000.0, 3_600_000.0, None) == (
        "client times decades away"
    )
