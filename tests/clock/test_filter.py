"""The point estimate's math (``skewgate.clock.filter``): clock filter, spikes, ceiling."""

from __future__ import annotations

import math

import msgspec
import pytest

from skewgate.clock import ClockSync
from skewgate.clock.filter import (
    WINDOW,
    SyncSample,
    add_sample,
    clock_filter,
    raise_ceiling,
)

PHI = 15e-6
MAX_DRIFT = 200e-6
MIN = 60_000.0


def sample(at: float, offset: float, delay: float, segment: int = 0) -> SyncSample:
    return SyncSample(at, offset, delay, segment)


def fill(*samples: SyncSample) -> tuple[SyncSample, ...]:
    window: tuple[SyncSample, ...] = ()
    for s in samples:
        window, _ = add_sample(window, s, PHI, MAX_DRIFT)
    return window


class TestClockFilter:
    def test_least_dispersion_wins_and_jitter_is_the_spread_around_it(self) -> None:
        window = fill(sample(0.0, 100.0, 40.0), sample(5 * MIN, 104.0, 200.0),
                      sample(10 * MIN, 97.0, 60.0))
        best, jitter = clock_filter(window, 0, 10 * MIN, PHI)
        # 20 + 9 ms of age beats 30 ms of delay and 100 + 4.5 of the queued one.
        assert best is not None and best.offset_ms == 100.0
        assert jitter == pytest.approx(math.sqrt((4.0**2 + 3.0**2) / 2))

    def test_age_hands_over_to_a_fresher_exchange(self) -> None:
        window = fill(sample(0.0, 100.0, 40.0), sample(60 * MIN, 110.0, 50.0))
        best, _ = clock_filter(window, 0, 60 * MIN, PHI)  # 20 + 54 > 25
        assert best is not None and best.offset_ms == 110.0

    def test_one_exchange_has_no_jitter_and_other_segments_do_not_count(self) -> None:
        window = fill(sample(0.0, 100.0, 40.0, segment=0), sample(MIN, -5_000.0, 10.0, 1))
        assert clock_filter(window, 0, MIN, PHI) == (window[0], None)
        assert clock_filter(window, 2, MIN, PHI) == (None, None)

    def test_window_keeps_the_last_eight(self) -> None:
        window = fill(*(sample(i * MIN, 100.0 + i, 40.0) for i in range(WINDOW + 3)))
        assert len(window) == WINDOW and window[0].t2_ms == 3 * MIN


class TestPopcorn:
    def base(self) -> tuple[SyncSample, ...]:
        return fill(sample(0.0, 100.0, 40.0), sample(MIN, 101.0, 42.0), sample(2 * MIN, 99.0, 41.0))

    def test_a_sample_that_jumps_many_jitters_without_a_lower_delay_is_held_back(self) -> None:
        window, spike = add_sample(self.base(), sample(3 * MIN, 130.0, 45.0), PHI, MAX_DRIFT)
        assert spike and window[-1].retired
        best, _ = clock_filter(window, 0, 3 * MIN, PHI)
        assert best is not None and best.offset_ms == 99.0  # not the spike

    def test_the_next_sample_that_agrees_is_taken(self) -> None:
        window, _ = add_sample(self.base(), sample(3 * MIN, 130.0, 45.0), PHI, MAX_DRIFT)
        window, spike = add_sample(window, sample(4 * MIN, 131.0, 44.0), PHI, MAX_DRIFT)
        assert not spike and not window[-1].retired

    def test_a_lower_delay_sample_is_never_a_spike(self) -> None:
        _, spike = add_sample(self.base(), sample(3 * MIN, 115.0, 20.0), PHI, MAX_DRIFT)
        assert not spike

    def test_a_sample_that_proves_the_old_estimate_impossible_is_never_a_spike(self) -> None:
        # Its own hard bounds (offset ± 45/2 + drift since) exclude 100: the old value is wrong.
        _, spike = add_sample(self.base(), sample(3 * MIN, 200.0, 45.0), PHI, MAX_DRIFT)
        assert not spike

    def test_within_a_few_jitters_is_no_spike(self) -> None:
        _, spike = add_sample(self.base(), sample(3 * MIN, 102.0, 45.0), PHI, MAX_DRIFT)
        assert not spike


class TestSyncSample:
    def test_identifies_its_exchange_by_server_and_client_times(self) -> None:
        sync = ClockSync.parse("t0=1000;t1=1300;t2=1302;t3=1100")
        assert sync is not None
        s = SyncSample.of(sync, segment=0)
        assert s.is_exchange(sync)
        other = ClockSync.parse("t0=1001;t1=1300;t2=1302;t3=1100")  # same token, new t0
        assert other is not None and not s.is_exchange(other)

    def test_is_stored_as_a_plain_array(self) -> None:
        s = SyncSample(1.5, -800.0, 40.0, 2, retired=True)
        assert msgspec.to_builtins(s) == [1.5, -800.0, 40.0, 2, True]
        assert msgspec.convert([1.5, -800.0, 40.0, 2, True], SyncSample) == s
        assert msgspec.convert([1.5, -800.0, 40.0, 2], SyncSample).retired is False


class TestCeiling:
    def test_the_least_bound_aged_at_the_typical_drift(self) -> None:
        c, j = raise_ceiling(None, None, None, -700.0, 0.0, PHI)
        assert (c, j) == (-700.0, None)
        c, j = raise_ceiling(c, 0.0, j, -650.0, MIN, PHI)  # 50 ms slower upload
        assert c == pytest.approx(-700.0 + PHI * MIN) and j == pytest.approx(50.0 - PHI * MIN)
        c, j = raise_ceiling(c, MIN, j, -720.0, 2 * MIN, PHI)  # a new least bound
        assert c == -720.0
        assert j is not None and j < 50.0  # EWMA: an excess of 0 pulls the jitter down


def test_a_session_state_stored_before_the_filter_still_decodes() -> None:
    """States are stored as DynamoDB maps of their fields; older ones lack the new fields and
    carry the retired ``best_sync_*`` ones."""
    from skewgate.aws.codec import from_item, to_attributes
    from skewgate.clock import Method, SessionClock, SessionState

    old = {
        "session_id": {"S": "s"}, "version": {"N": "4"}, "day": {"S": "2026-01-01"},
        "day_max_proven_abs_ms": {"N": "0.0"},
        "clock": {"M": {
            "segment": {"N": "1"}, "lower_ms": {"N": "-810.5"}, "upper_ms": {"N": "-790.0"},
            "at_ms": {"N": "1767225600000.0"}, "method": {"S": "ntp"}, "samples": {"N": "3"},
            "best_sync_offset_ms": {"N": "-800.0"}, "best_sync_delay_ms": {"N": "40.0"},
            "best_sync_at_ms": {"N": "1767225599000.0"},
        }},
    }
    state = from_item(SessionState, old)
    assert state.clock.method is Method.NTP and state.clock.syncs == ()
    assert state.clock.estimate_ms is None and state.clock.epoch == 0
    new = SessionClock(0, -1.0, 1.0, 5.0, Method.NTP, syncs=(SyncSample(4.0, 0.5, 9.0, 0),),
                       estimate_method=Method.NTP, estimate_ms=0.5, shift_ms=0.0)
    item = to_attributes(SessionState(session_id="s", clock=new))
    assert from_item(SessionState, item).clock == new
