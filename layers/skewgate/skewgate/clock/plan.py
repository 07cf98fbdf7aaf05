"""The ingest core: a checked batch + the sessions' states → exactly what to write. Pure.

:func:`plan_batch` gathers each session's evidence from the request, estimates its clock, and
returns everything one commit writes: the body as received and its adjusted copy (times
shifted in the received encoding), compressed into one blob and cut at the item limit; the
trace ids to index; each session's sample and next state; the batch's marker. Nothing is
encoded per span. The ingest handler is routes plus a commit loop over it; the benchmarks call
it as is. When a commit loses a race on a session's state, the handler re-plans with
``previous=``: sessions whose state did not move are reused, and the blob is rebuilt only if
a shift changed.

Example:
    >>> from skewgate.wire.decode import JSON, Limits
    >>> from skewgate.wire.scan import scan_request
    >>> body = (b'{"resourceSpans":[{"resource":{"attributes":[{"key":"session.id","value":'
    ...         b'{"stringValue":"s1"}}]},"scopeSpans":[{"spans":[{"traceId":"' + b"ab" * 16 +
    ...         b'","spanId":"' + b"cd" * 8 + b'","startTimeUnixNano":"10700000000",'
    ...         b'"endTimeUnixNano":"10700000000"}]}]}]}')
    >>> scan = scan_request(body, JSON, Limits())
    >>> facts = RequestFacts(received_at_ms=10_000.0, sent_at="10800")
    >>> plan = plan_batch(scan, facts, {}, PlanConfig())
    >>> [(s.session_id, s.estimate.upper_ms, s.estimate.applied) for s in plan.sessions]
    [('s1', -800.0, True)]
    >>> plan.record.sessions[0].offset_ms, len(plan.chunks), plan.trace_ids == ["ab" * 16]
    (-820.0, 1, True)
"""

from __future__ import annotations

import math
import secrets
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Final

from skewgate.clock.correction import Grouping, SessionGroup, SessionShift, batch_id
from skewgate.clock.estimate import EstimatorConfig, Flag, SessionClock, SkewEstimate, estimate
from skewgate.clock.evidence import (
    MAX_PLAUSIBLE_OFFSET_MS,
    BatchEvidence,
    ClockSync,
    ClockSyncHeader,
)
from skewgate.clock.records import (
    FORMAT,
    BatchRecord,
    SessionState,
    SkewSample,
    ceil_ms,
    day_of,
    floor_ms,
    round_ms,
)
from skewgate.wire.blob import pack
from skewgate.wire.decode import JSON, Limits, decode_json, joined_errors
from skewgate.wire.scan import ScannedBatch
from skewgate.wire.shift import (
    STREAM_ABOVE,
    Fact,
    PatchMismatch,
    shift_json,
    shift_protobuf,
    shifted_json_pieces,
    time_counts,
)

__all__ = [
    "CHUNK_BYTES",
    "MAX_SAMPLE_TRACE_IDS",
    "BatchPlan",
    "PlanConfig",
    "PreparedBatch",
    "RequestFacts",
    "SessionPlan",
    "parse_sent_at",
    "plan_batch",
    "prepare_batch",
]

#: Bytes of blob per item: DynamoDB items hold 400 KB, keys and attribute names included.
CHUNK_BYTES: Final = 380_000
#: Trace ids listed in one sample; the rest are counted (``more_traces``), so a sample fits
#: one item whatever the batch.
MAX_SAMPLE_TRACE_IDS: Final = 256


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What the request says besides its body, and when our clock received it."""

    received_at_ms: float
    sent_at: str | None = None  # X-Sent-At (or the sent_at query parameter)
    clock_sync: str | None = None  # X-Clock-Sync
    session_header: str | None = None  # X-Session-Id


@dataclass(frozen=True, slots=True)
class PlanConfig:
    estimator: EstimatorConfig = field(default_factory=EstimatorConfig)
    limits: Limits = field(default_factory=Limits)
    max_session_id_bytes: int = 256
    max_sessions: int = 32
    max_traces: int = 1_000
    #: Store a shifted batch's adjusted copy beside the raw body. Without it the copy is
    #: derived where it is read (raw times + each session's shift): the same spans, about a
    #: quarter fewer body bytes and no rewrite of every time at ingest.
    adjusted_copy: bool = True


@dataclass(slots=True)
class SessionPlan:
    """One session's part of a batch: its verdict and its new state."""

    session_id: str | None
    estimate: SkewEstimate
    state: SessionClock
    basis: SessionState | None  # the stored state it was estimated from (None: new/no session)
    sample: SkewSample | None  # None for spans without session
    next_state: SessionState | None  # what the commit writes, conditional on ``basis``
    group: SessionGroup

    @property
    def stored_spans(self) -> int:
        return self.group.span_count


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """A checked batch with its identity and its spans grouped by session."""

    scan: ScannedBatch
    batch_id: str
    grouping: Grouping
    groups: list[SessionGroup]  # the first ``max_sessions``: each gets a verdict
    unestimated: list[SessionGroup]  # sessions beyond the cap: stored as received
    rejected: int  # spans of traces beyond the cap
    trace_ids: list[str]

    @property
    def session_ids(self) -> list[str]:
        """The sessions whose stored state the plan needs."""
        return [g.session_id for g in self.groups if g.session_id is not None]


@dataclass(slots=True)
class BatchPlan:
    """Everything one commit writes, and what the response says."""

    batch_id: str
    received_at_ms: int
    span_count: int
    rejected_spans: int
    sessions: list[SessionPlan]
    trace_ids: list[str]
    chunks: list[bytes]
    attempt: str
    record: BatchRecord
    message: str = ""

    @property
    def session_ids(self) -> list[str]:
        return [s.session_id for s in self.sessions if s.session_id is not None]


def parse_sent_at(text: str | None, received_at_ms: float) -> float | None:
    """``X-Sent-At`` in epoch ms, or ``None`` when absent, malformed or decades away."""
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    if not math.isfinite(value) or abs(received_at_ms - value) > MAX_PLAUSIBLE_OFFSET_MS:
        return None
    return value


def _sync_delay(sync: ClockSync | None) -> float | None:
    """The echoed round trip's delay, for the record, when it is a plausible number at all."""
    if sync is None or not abs(sync.delay_ms) <= MAX_PLAUSIBLE_OFFSET_MS:
        return None
    return sync.delay_ms


def _evidence(facts: RequestFacts, group: SessionGroup) -> tuple[BatchEvidence, list[Flag]]:
    notes: list[Flag] = []
    sent = parse_sent_at(facts.sent_at, facts.received_at_ms)
    if facts.sent_at is not None and sent is None:
        notes.append(Flag.BAD_SENT_AT)
    header = ClockSyncHeader.parse(facts.clock_sync)
    if header.malformed:
        notes.append(Flag.IMPLAUSIBLE_SYNC)
    if group.session_id is None:
        notes.append(Flag.BAD_SESSION_ID if group.dropped_session_id else Flag.NO_SESSION)
    evidence = BatchEvidence(
        received_at_ms=facts.received_at_ms,
        sent_at_ms=sent,
        max_client_time_ms=group.max_client_time_ms,
        clock_sync=header.sync,
        session_id=group.session_id,
        drift_epoch=header.epoch,
    )
    return evidence, notes


def prepare_batch(scan: ScannedBatch, facts: RequestFacts, config: PlanConfig) -> PreparedBatch:
    """Identify ``scan`` (by its span ids), group its spans by session, apply the caps."""
    grouping = Grouping(
        session_header=facts.session_header,
        max_session_bytes=config.max_session_id_bytes,
        max_sessions=config.max_sessions,
        max_traces=config.max_traces,
    )
    groups = grouping.groups(scan)
    kept = sum(g.span_count for g in groups)
    trace_ids = sorted({t for g in groups for t in g.trace_ids})
    estimated = [g for g in groups if g.session_id is None][:1]
    estimated += [g for g in groups if g.session_id is not None][: config.max_sessions]
    chosen = {id(g) for g in estimated}
    return PreparedBatch(
        scan=scan,
        batch_id=batch_id(scan),
        grouping=grouping,
        groups=[g for g in groups if id(g) in chosen],
        unestimated=[g for g in groups if id(g) not in chosen],
        rejected=scan.span_count - kept,
        trace_ids=trace_ids,
    )


def _plan_session(
    group: SessionGroup,
    facts: RequestFacts,
    basis: SessionState | None,
    bid: str,
    config: PlanConfig,
) -> SessionPlan:
    evidence, notes = _evidence(facts, group)
    result, state = estimate(
        evidence, basis.clock if basis is not None else None, config.estimator
    )
    # Kept to the microsecond from here on: the shift applied is exactly the offset stored.
    result = replace(
        result,
        offset_ms=round_ms(result.offset_ms),
        lower_ms=floor_ms(result.lower_ms),
        upper_ms=ceil_ms(result.upper_ms),
        flags=(*notes, *result.flags),
    )
    sample = next_state = None
    if group.session_id is not None:
        traces = group.trace_ids
        sample = SkewSample.from_estimate(
            result,
            session_id=group.session_id,
            batch_id=bid,
            received_at_ms=int(facts.received_at_ms),
            span_count=group.span_count,
            trace_ids=traces[:MAX_SAMPLE_TRACE_IDS],
            more_traces=max(len(traces) - MAX_SAMPLE_TRACE_IDS, 0),
            segment=state.segment,
            sent_at_ms=evidence.sent_at_ms,
            max_client_time_ms=evidence.max_client_time_ms,
            sync_delay_ms=_sync_delay(evidence.clock_sync),
        )
        # The day index ranks sessions by what their intervals prove, not by point
        # estimates: with causality only, an estimate carries the batch's queueing delay.
        proven = sample.proven_abs_ms
        next_state = SessionState(
            session_id=group.session_id,
            clock=state,
            version=(basis.version if basis is not None else 0) + 1,
            day=day_of(facts.received_at_ms),
            day_max_proven_abs_ms=(
                basis.day_peak(facts.received_at_ms, proven) if basis is not None else proven
            ),
        )
    return SessionPlan(group.session_id, result, state, basis, sample, next_state, group)


def _resource_facts(scan: ScannedBatch, sessions: list[SessionPlan]) -> list[list[Fact]]:
    """Per resource, the verdict's facts when all its spans moved by one verdict."""
    total = Counter(scan.resources)
    covered: Counter[int] = Counter()
    verdicts: dict[int, set[int]] = {}
    shifted: dict[int, SkewEstimate] = {}
    for session in sessions:
        est = session.estimate
        key = id(est) if est.applied else 0
        shifted[key] = est
        per_resource = Counter(map(scan.resources.__getitem__, session.group.indices))
        covered.update(per_resource)
        for index in per_resource:
            verdicts.setdefault(index, set()).add(key)
    out: list[list[Fact]] = []
    for index in range(len(scan.resource_sessions)):
        keys = verdicts.get(index, set())
        if len(keys) != 1 or covered[index] != total[index] or 0 in keys:
            out.append([])
            continue
        est = shifted[next(iter(keys))]
        facts: list[Fact] = [("clock_skew.offset_ms", float(est.offset_ms))]
        if est.lower_ms is not None:
            facts.append(("clock_skew.lower_ms", float(est.lower_ms)))
        if est.upper_ms is not None:
            facts.append(("clock_skew.upper_ms", float(est.upper_ms)))
        facts.append(("clock_skew.method", est.method.value))
        out.append(facts)
    return out


def _shift_ns(estimate: SkewEstimate) -> int:
    return round(estimate.offset_ms * 1e6) if estimate.applied else 0


def _adjusted(
    scan: ScannedBatch, sessions: list[SessionPlan], *, stream: bool = True
) -> bytes | bytearray | Iterator[bytes] | None:
    """The adjusted copy, or ``None`` when no span moved (adjusted is raw). A large JSON body
    shifted as a whole comes as pieces (``stream``), for the compressor to take one by one."""
    moved = [s for s in sessions if _shift_ns(s.estimate)]
    if not moved:
        return None
    facts = _resource_facts(scan, sessions)
    shifts = {_shift_ns(s.estimate) for s in moved}
    everything = sum(s.group.span_count for s in moved) == scan.span_count
    if scan.kind == JSON and len(shifts) == 1 and everything and not scan.decoded_in_full:
        # One shift for every span: rejected ones (dropped when read back) move too.
        if stream and len(scan.body) > STREAM_ABOVE and not scan.escaped and scan.times:
            return shifted_json_pieces(scan.body, shifts.pop(), facts, scan.times)
        return shift_json(scan.body, shifts.pop(), facts, times=scan.times, escaped=scan.escaped)
    # Shift per span of the body, by its position among all spans.
    per_span = [0] * scan.total_spans
    positions = scan.ordinals
    if scan.kind == JSON and scan.decoded_in_full:
        request = decode_json(scan.body)
        by_id = {
            scan.trace_ids[i] + scan.span_ids[i]: _shift_ns(s.estimate)
            for s in moved
            for i in s.group.indices
        }
        ids = [
            (span.trace_id + span.span_id).lower()
            for rs in request.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        ]
        counts, total = time_counts(request)
        return shift_json(
            scan.body, [by_id.get(i, 0) for i in ids], facts, times=(sum(counts), total),
            counts=counts,
        )
    for session in moved:
        shift = _shift_ns(session.estimate)
        for i in session.group.indices:
            per_span[positions[i] if positions is not None else i] = shift
    if scan.kind == JSON:
        per_span_times = scan.time_counts
        if per_span_times is None:  # rare: several shifts, decided by the full decoder
            per_span_times = time_counts(decode_json(scan.body))[0]
        return shift_json(
            scan.body, per_span, facts, times=scan.times, counts=per_span_times,
            escaped=scan.escaped,
        )
    message, times = scan.message, scan.pb_times
    if message is None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        message, times = ExportTraceServiceRequest.FromString(scan.body), None
    else:
        scan.message = None  # shifted in place below: a re-plan parses a fresh copy
    return shift_protobuf(message, per_span, facts, times)


def _chunks(blob: bytes) -> list[bytes]:
    return [blob[i : i + CHUNK_BYTES] for i in range(0, len(blob), CHUNK_BYTES)] or [b""]


def plan_batch(
    batch: ScannedBatch | PreparedBatch,
    facts: RequestFacts,
    states: Mapping[str, SessionState],
    config: PlanConfig,
    *,
    previous: BatchPlan | None = None,
    attempt: str | None = None,
) -> BatchPlan:
    """Plan the commit of ``batch`` against the sessions' current ``states``.

    ``previous`` is the plan whose commit lost a race: every session plan of it whose state is
    unchanged (same version) is reused, and so is its blob if no shift moved. ``attempt``
    names this attempt's blob items (random by default): a racing retry never overwrites the
    body another attempt committed.
    """
    prepared = batch if isinstance(batch, PreparedBatch) else prepare_batch(batch, facts, config)
    bid = prepared.batch_id
    reusable = {s.session_id: s for s in previous.sessions} if previous is not None else {}
    sessions: list[SessionPlan] = []
    for group in prepared.groups:
        sid = group.session_id
        basis = states.get(sid) if sid is not None else None
        old = reusable.get(sid)
        if old is not None and (sid is None or _version(old.basis) == _version(basis)):
            sessions.append(old)
            continue
        sessions.append(_plan_session(group, facts, basis, bid, config))
    shifts = [SessionShift.of(s.session_id, s.estimate) for s in sessions]
    if previous is not None and previous.record.sessions == shifts:
        chunks, attempt_id, layout = previous.chunks, previous.attempt, previous.record.body
        assert layout is not None
    else:
        scan = prepared.scan
        if not config.adjusted_copy:
            blob, layout = pack(scan.body, None)
        else:
            try:
                blob, layout = pack(scan.body, _adjusted(scan, sessions))
            except PatchMismatch:  # the pieces' patch failed: the decoding way, whole
                blob, layout = pack(scan.body, _adjusted(scan, sessions, stream=False))
        chunks, attempt_id = _chunks(blob), attempt or secrets.token_hex(6)
    scan = prepared.scan
    rejected = scan.rejected_spans + prepared.rejected
    errors = list(scan.errors)
    if prepared.rejected:
        errors.append(
            f"{prepared.rejected} spans rejected: a request may hold at most "
            f"{config.max_traces} traces (each is indexed); send fewer traces per request"
        )
    message = joined_errors(errors)
    if prepared.unestimated:
        message += ("; " if message else "") + (
            f"{len(prepared.unestimated)} sessions beyond the first {config.max_sessions} of "
            "the request stored without clock correction: send one session per request"
        )
    span_count = scan.span_count - prepared.rejected
    limits = config.limits
    record = BatchRecord(
        batch_id=bid,
        received_at_ms=int(facts.received_at_ms),
        span_count=span_count,
        rejected_spans=rejected,
        error_message=message,
        format=FORMAT,
        kind=scan.kind,
        attempt=attempt_id,
        chunks=len(chunks),
        body=layout,
        grouping=prepared.grouping,
        sessions=shifts,
        trace_count=len(prepared.trace_ids),
        max_attributes=limits.max_attributes,
        max_value_bytes=limits.max_value_bytes,
        max_nested_values=limits.max_nested_values,
        max_nested_depth=limits.max_nested_depth,
    )
    return BatchPlan(
        batch_id=bid,
        received_at_ms=int(facts.received_at_ms),
        span_count=span_count,
        rejected_spans=rejected,
        sessions=sessions,
        trace_ids=prepared.trace_ids,
        chunks=chunks,
        attempt=attempt_id,
        record=record,
        message=message,
    )


def _version(state: SessionState | None) -> int | None:
    return None if state is None else state.version

