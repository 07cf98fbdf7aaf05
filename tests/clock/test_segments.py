"""One clock per session segment, end to end through ``plan_batch``: consistent shifts across
batches, sync tokens bound to their session and counted once, the ``future`` limit, the
companion's drift epoch, and the one-way delay floor learned from round trips.

Conventions: θ = server − client; ``T`` is our clock; a client θ behind us reads ``t − θ``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import msgspec
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from skewgate.clock import (
    BatchEvidence,
    ClockSync,
    EstimatorConfig,
    Flag,
    Method,
    PlanConfig,
    RequestFacts,
    SessionClock,
    SessionState,
    SkewEstimate,
    corrected_request,
    estimate,
    plan_batch,
    read_back,
    sign_clock_reading,
)
from skewgate.clock.plan import BatchPlan
from skewgate.wire import (
    JSON,
    AnyValue,
    KeyValue,
    Limits,
    Resource,
    ResourceSpans,
    ScopeSpans,
    Span,
    TracesRequest,
)
from skewgate.wire.blob import unpack
from skewgate.wire.model import Event, Link
from skewgate.wire.scan import ScannedBatch, scan_request

T = 1_767_225_600_000.0
MIN = 60_000.0
HOUR = 60 * MIN
KEY = b"clock key"
TRACE = "5b8efff798038103d269b633813fc60c"
MS = 1_000_000  # ns


def ns(ms: float) -> int:
    return round(ms * MS)


def batch(session: str, *spans: Span) -> ScannedBatch:
    """The request an exporter would send with these spans, as the ingest checks it."""
    resource = Resource(attributes=[KeyValue("session.id", AnyValue(string_value=session))])
    request = TracesRequest([ResourceSpans(resource, [ScopeSpans(None, list(spans))])])
    return scan_request(msgspec.json.encode(request), JSON, Limits())


@dataclass
class Browser:
    """A client θ behind us, with the companion: exchanges and exports, all exact."""

    theta: float
    session: str = "s1"
    key: bytes | None = KEY
    config: PlanConfig = field(
        default_factory=lambda: PlanConfig(EstimatorConfig(clock_sync_key=KEY))
    )
    state: SessionState | None = None
    sync: str | None = None

    def client(self, t: float) -> float:
        return t - self.theta

    def exchange(self, at: float, up: float = 20.0, down: float = 20.0) -> str:
        """GET /v1/clock at our time ``at``; the companion holds the answer as its header."""
        t0, t1 = self.client(at), at + up
        t2 = t1 + 1.0
        t3 = self.client(t2 + down)
        header = f"t0={t0!r};t1={t1!r};t2={t2!r};t3={t3!r}"
        if self.key is not None:
            header += ";token=" + sign_clock_reading(self.key, repr(t1), repr(t2), self.session)
        self.sync = header
        return header

    def export(self, recv: float, *spans: Span, upload: float = 30.0, **extra: str) -> BatchPlan:
        facts = RequestFacts(
            received_at_ms=recv,
            sent_at=repr(self.client(recv - upload)),
            clock_sync=extra.get("clock_sync", self.sync),
        )
        states = {self.session: self.state} if self.state is not None else {}
        plan = plan_batch(batch(self.session, *spans), facts, states, self.config)
        self.state = plan.sessions[0].next_state
        return plan

    def span(self, span_id: str, start: float, end: float, **kw: object) -> Span:
        """A span that ran from our time ``start`` to ``end``, stamped on the client clock."""
        return Span(trace_id=TRACE, span_id=span_id, start_time_unix_nano=ns(self.client(start)),
                    end_time_unix_nano=ns(self.client(end)), **kw)  # type: ignore[arg-type]


def sent(plan: BatchPlan, *, shifted: bool = True) -> list:  # type: ignore[type-arg]
    """A plan's spans as the gateway sends them on (``shifted=False``: as stored raw), read
    back from what the commit stores and decoded as an OTLP collector would."""
    record = plan.record
    assert record.body is not None
    raw, _adjusted = unpack(b"".join(plan.chunks), record.body)
    shifts = record.shifts() if shifted else {}
    if shifted:
        assert any(s.applied for s in record.sessions), "not shifted"
    spans = read_back(raw, record.kind, record.grouping, record.limits, shifts)
    request = ExportTraceServiceRequest.FromString(corrected_request(spans))
    return [sp for rs in request.resource_spans for ss in rs.scope_spans for sp in ss.spans]


def corrected(plan: BatchPlan) -> list:  # type: ignore[type-arg]
    """The corrected copies of a plan's spans, decoded as an OTLP collector would."""
    return sent(plan)


def est(plan: BatchPlan) -> SkewEstimate:
    return plan.sessions[0].estimate


# --- one shift per segment ------------------------------------------------------------------


class TestOneShiftPerSegment:
    def test_a_trace_split_over_batches_keeps_its_exact_gaps(self) -> None:
        # SimpleSpanProcessor: every span is its own export, the child before its parent.
        b = Browser(theta=-666.0)
        b.exchange(T - 2_000.0)
        child = b.span("c0000000000000c1", T + 50.0, T + 120.0)
        grandchild = b.span("c0000000000000c2", T + 60.0, T + 80.0,
                            parent_span_id="c0000000000000c1")
        parent = b.span("a0000000000000a1", T, T + 300.0, events=[Event(ns(b.client(T + 200.0)))])
        plans = [b.export(T + 85.0, grandchild, upload=3.0), b.export(T + 150.0, child)]
        # A new burst between the exports: a slower round trip (its midpoint 9 ms off), which
        # tells nothing better than what the session has.
        b.exchange(T + 200.0, up=70.0, down=40.0)
        plans.append(b.export(T + 340.0, parent))
        shifts = {est(p).shift_ms for p in plans}
        assert len(shifts) == 1 and all(est(p).applied for p in plans)
        assert not any(Flag.SHIFT_MOVED in est(p).flags for p in plans)
        (g,), (c,), (p,) = (corrected(x) for x in plans)
        raw = {s.span_id: s for s in (grandchild, child, parent)}
        for a, z in ((p, c), (c, g), (p, g)):
            first, then = raw[a.span_id.hex()], raw[z.span_id.hex()]
            raw_gap = then.start_time_unix_nano - first.start_time_unix_nano
            assert z.start_time_unix_nano - a.start_time_unix_nano == raw_gap
        event = parent.events[0].time_unix_nano - parent.start_time_unix_nano
        assert p.events[0].time_unix_nano - p.start_time_unix_nano == event
        assert abs(est(plans[0]).offset_ms + 666.0) < 2.0

    def test_evidence_that_moves_beyond_the_jitter_moves_the_shift_and_says_so(self) -> None:
        b = Browser(theta=-666.0)
        first = []
        for i, off in enumerate((6.0, 5.0, 7.0)):  # three bursts, all on a path 6 ms skewed
            b.exchange(T + i * 5 * MIN, up=20.0 + 2 * off, down=20.0)
            at = T + i * 5 * MIN
            first.append(b.export(at + 1_000.0, b.span(f"{i + 1:016x}", at, at + 1.0)))
        assert len({est(p).shift_ms for p in first}) == 1
        # A much better round trip (5 ms) whose midpoint is 8 ms away: beyond the jitter.
        b.exchange(T + 15 * MIN, up=2.0, down=2.0)
        at = T + 15 * MIN
        moved = b.export(at + 1_000.0, b.span("00000000000000ff", at, at + 1.0))
        assert Flag.SHIFT_MOVED in est(moved).flags
        assert est(moved).previous_shift_ms == est(first[-1]).shift_ms
        assert est(moved).offset_ms == pytest.approx(-666.0, abs=0.5)
        sample = moved.sessions[0].sample
        assert sample is not None and sample.previous_shift_ms == est(first[-1]).shift_ms

    def test_a_batch_the_evidence_no_longer_proves_wrong_says_its_shift_moved(self) -> None:
        # 30 ms ahead: a fresh round trip proves it, a send time alone does not.
        b = Browser(theta=-40.0)
        b.exchange(T - 1_000.0, up=5.0, down=5.0)
        proven = b.export(T, b.span("0000000000000001", T - 10.0, T - 5.0), upload=60.0)
        assert est(proven).applied
        b.sync = None  # the companion dropped its exchange
        alone = b.export(T + 5_000.0, b.span("0000000000000002", T, T + 1.0), upload=60.0)
        assert not est(alone).applied and Flag.SHIFT_MOVED in est(alone).flags
        assert est(alone).previous_shift_ms == est(proven).shift_ms


# --- sync tokens ---------------------------------------------------------------------------


class TestSyncTokens:
    CFG = EstimatorConfig(clock_sync_key=KEY)

    def sync(self, at: float, theta: float = -666.0, session: str = "s1", *, key: bytes = KEY,
             t0_shift: float = 0.0) -> ClockSync:
        t1 = at + 20.0
        t2 = t1 + 1.0
        header = (f"t0={at - theta + t0_shift!r};t1={t1!r};t2={t2!r};t3={t2 + 20.0 - theta!r};"
                  f"token={sign_clock_reading(key, repr(t1), repr(t2), session)}")
        parsed = ClockSync.parse(header)
        assert parsed is not None
        return parsed

    def run(self, *batches: tuple[float, ClockSync | None], session: str = "s1",
            config: EstimatorConfig = CFG) -> tuple[list[SkewEstimate], SessionClock]:
        state = None
        out = []
        for recv, sync in batches:
            ev = BatchEvidence(recv, recv + 666.0 - 30.0, recv + 666.0 - 40.0, sync,
                               session_id=session)
            e, state = estimate(ev, state, config)
            out.append(e)
        assert state is not None
        return out, state

    def test_a_token_of_another_session_is_not_counted(self) -> None:
        (e,), state = self.run((T, self.sync(T - 1_000.0, session="someone-else")))
        assert Flag.IMPLAUSIBLE_SYNC in e.flags and e.method is Method.SEND_TIME
        assert state.syncs == ()

    def test_a_token_for_no_session_counts_only_without_one(self) -> None:
        sync = self.sync(T - 1_000.0, session="")
        (e,), _ = self.run((T, sync), session="s1")
        assert Flag.IMPLAUSIBLE_SYNC in e.flags
        ev = BatchEvidence(T, T + 636.0, T + 626.0, sync, session_id=None)
        e, _ = estimate(ev, None, self.CFG)
        assert e.method is Method.NTP

    def test_the_same_exchange_echoed_again_is_known_not_counted_again(self) -> None:
        sync = self.sync(T - 1_000.0)
        (a, b), state = self.run((T, sync), (T + 5_000.0, sync))
        assert len(state.syncs) == 1  # counted once
        # The companion echoes what it holds: "no step since". It still bounds this batch.
        assert b.method is Method.NTP and b.applied and Flag.REPLAYED_SYNC not in b.flags
        assert b.shift_ms == a.shift_ms

    def test_known_server_times_with_other_client_times_are_a_replay(self) -> None:
        sync = self.sync(T - 1_000.0)
        forged = self.sync(T - 1_000.0, t0_shift=-400.0)  # same token, claims another clock
        (a, b), state = self.run((T, sync), (T + 5_000.0, forged))
        assert Flag.REPLAYED_SYNC in b.flags and len(state.syncs) == 1
        assert b.offset_ms == a.offset_ms  # the forged round trip (~200 ms off) moved nothing

    def test_an_exchange_older_than_one_counted_is_not_counted(self) -> None:
        old, new = self.sync(T - 60_000.0), self.sync(T - 1_000.0)
        (_, _, c), state = self.run((T, new), (T + 5_000.0, self.sync(T + 2_000.0)),
                                    (T + 10_000.0, old))
        assert Flag.REPLAYED_SYNC in c.flags
        assert [s.t2_ms for s in state.syncs] == [new.t2, T + 2_021.0]

    def test_validity_is_minutes_not_hours(self) -> None:
        assert self.CFG.max_sync_age_ms == 10 * MIN
        (fresh,), _ = self.run((T + 9 * MIN, self.sync(T)))
        (stale,), _ = self.run((T + 11 * MIN, self.sync(T)))
        assert fresh.method is Method.NTP
        assert Flag.IMPLAUSIBLE_SYNC in stale.flags and stale.method is Method.SEND_TIME

    def test_a_previous_key_still_verifies_an_unknown_one_does_not(self) -> None:
        rotated = EstimatorConfig(clock_sync_key=b"new key", clock_sync_previous_keys=(KEY,))
        (e,), _ = self.run((T, self.sync(T - 1_000.0)), config=rotated)
        assert e.method is Method.NTP
        (e,), _ = self.run((T, self.sync(T - 1_000.0, key=b"stranger")), config=rotated)
        assert Flag.IMPLAUSIBLE_SYNC in e.flags


# --- the future limit ----------------------------------------------------------------------


class TestFuture:
    def test_an_unproven_clock_whose_spans_end_after_receipt_is_moved_back_to_it(self) -> None:
        b = Browser(theta=-15.0, key=None)  # 15 ms ahead: no evidence can prove it
        span = b.span("0000000000000001", T - 100.0, T - 8.0,
                      events=[Event(ns(b.client(T - 50.0)))])
        plan = b.export(T, span, upload=4.0)
        e = est(plan)
        assert Flag.FUTURE in e.flags and e.applied
        assert e.offset_ms == pytest.approx(-7.0, abs=3e-3)  # 8 ms before receipt − 15 ahead
        (fixed,) = corrected(plan)
        assert 0 < ns(T) - fixed.end_time_unix_nano < 3_000  # at receipt, to the µs
        # Durations and order kept, to the nanosecond.
        assert (fixed.end_time_unix_nano - fixed.start_time_unix_nano
                == span.end_time_unix_nano - span.start_time_unix_nano)
        assert (fixed.end_time_unix_nano - fixed.events[0].time_unix_nano
                == span.end_time_unix_nano - span.events[0].time_unix_nano)
        (kept,) = sent(plan, shifted=False)
        assert kept.end_time_unix_nano == span.end_time_unix_nano  # raw kept

    def test_over_the_cap_spans_from_the_future_end_at_receipt(self) -> None:
        b = Browser(theta=-2 * HOUR, key=None,
                    config=PlanConfig(EstimatorConfig(max_correction_ms=HOUR)))
        plan = b.export(T, b.span("0000000000000001", T - 500.0, T - 200.0))
        e = est(plan)
        assert {Flag.OVER_CAP, Flag.FUTURE} <= set(e.flags) and e.applied
        (fixed,) = corrected(plan)
        assert 0 < ns(T) - fixed.end_time_unix_nano < 3_000
        (raw,) = sent(plan, shifted=False)
        assert (fixed.end_time_unix_nano - fixed.start_time_unix_nano
                == raw.end_time_unix_nano - raw.start_time_unix_nano)

    def test_a_corrected_batch_never_needs_it(self) -> None:
        b = Browser(theta=-800.0)
        b.exchange(T - 1_000.0)
        e = est(b.export(T, b.span("0000000000000001", T - 60.0, T - 31.0)))
        assert e.applied and Flag.FUTURE not in e.flags


def test_start_end_event_times_move_together_and_links_carry_none() -> None:
    b = Browser(theta=3 * HOUR)  # 3 h behind
    b.exchange(T - 1_000.0)
    link = Link(trace_id="ab" * 16, span_id="cd" * 8)
    span = b.span("0000000000000001", T - 900.0, T - 100.0, links=[link],
                  events=[Event(ns(b.client(T - 800.0)), "a"), Event(ns(b.client(T - 200.0)), "b")])
    plan = b.export(T, span)
    (fixed,) = corrected(plan)
    shift = fixed.start_time_unix_nano - span.start_time_unix_nano
    assert shift == ns(est(plan).shift_ms) and abs(shift - ns(3 * HOUR)) < 2 * MS
    assert fixed.end_time_unix_nano - span.end_time_unix_nano == shift
    assert [e.time_unix_nano - o.time_unix_nano for e, o in zip(fixed.events, span.events,
                                                                 strict=True)] == [shift, shift]
    assert (fixed.links[0].trace_id.hex(), fixed.links[0].span_id.hex()) == ("ab" * 16, "cd" * 8)


# --- the companion's drift epoch -----------------------------------------------------------


class TestDriftEpoch:
    def run(self, *epochs: int | None) -> list[SkewEstimate]:
        b = Browser(theta=-300.0)
        out = []
        for i, epoch in enumerate(epochs):
            b.exchange(T + i * MIN - 1_000.0)
            header = b.sync if epoch is None else f"{b.sync};epoch={epoch}"
            out.append(est(b.export(T + i * MIN, b.span(f"{i + 1:016x}", T + i * MIN - 50.0,
                                                         T + i * MIN - 40.0), clock_sync=header)))
            assert b.state is not None
        return out

    def test_a_new_epoch_flags_the_batch_and_starts_a_segment(self) -> None:
        b = Browser(theta=-300.0)
        b.exchange(T - 1_000.0)
        b.export(T, b.span("0000000000000001", T - 50.0, T - 40.0))
        assert b.state is not None and b.state.clock.segment == 0
        b.exchange(T + MIN - 1_000.0)
        e = est(b.export(T + MIN, b.span("0000000000000002", T, T + 1.0),
                         clock_sync=f"{b.sync};epoch=1"))
        assert Flag.CLOCK_DRIFT in e.flags and not e.jump
        assert b.state.clock.segment == 1 and b.state.clock.samples == 1
        assert Flag.SHIFT_MOVED not in e.flags  # a new segment says so itself

    def test_only_a_rise_counts_and_a_reload_starts_over(self) -> None:
        flags = [Flag.CLOCK_DRIFT in e.flags for e in self.run(None, 1, 1, 0, 1, 2)]
        assert flags == [False, True, False, False, True, True]

    def test_an_epoch_alone_is_no_malformed_header(self) -> None:
        b = Browser(theta=-300.0, key=None)
        e = est(b.export(T, b.span("0000000000000001", T - 50.0, T - 40.0), clock_sync="epoch=3"))
        assert e.flags == (Flag.CLOCK_DRIFT,) and e.method is Method.SEND_TIME


# --- the delay floor -------------------------------------------------------------------------


def test_the_delay_floor_learned_from_round_trips_places_one_way_estimates() -> None:
    b = Browser(theta=400.0)
    for i in range(3):
        b.exchange(T + i * MIN - 1_000.0)
        b.export(T + i * MIN, b.span(f"{i + 1:016x}", T + i * MIN - 160.0, T + i * MIN - 150.0),
                 upload=70.0)
    assert b.state is not None and b.state.clock.delay_floor_ms == pytest.approx(70.0, abs=1.0)
    # The clock is set an hour ahead; the companion has no exchange of the new clock yet.
    b.theta -= HOUR
    b.sync = None
    e = est(b.export(T + 10 * MIN, b.span("00000000000000aa", T + 10 * MIN - 160.0,
                                          T + 10 * MIN - 150.0), upload=70.0))
    assert e.jump and e.method is Method.SEND_TIME
    assert e.offset_ms == pytest.approx(b.theta, abs=1.0)  # not upper − 20 ms: 50 ms closer
    # Without round trips, the stated default.
    plain = Browser(theta=400.0 - HOUR, key=None)
    e = est(plain.export(T, plain.span("0000000000000001", T - 160.0, T - 150.0), upload=70.0))
    assert e.offset_ms == pytest.approx(plain.theta + 70.0 - 20.0)
    assert math.isfinite(e.offset_ms)
