"""The ingest core: a decoded batch + the sessions' states → exactly what to write. Pure.

:func:`plan_batch` gathers each session's evidence from the request, estimates its clock,
shifts and encodes its spans, and returns the records that commit the batch. The ingest
handler is routes plus a commit loop over it; the benchmarks call it as is. When a commit
loses a race on a session's state, the handler re-plans with ``previous=``: sessions whose
state did not move are reused as they are, so only what changed is estimated and encoded again.

Example:
    >>> from skewgate.wire.decode import Limits, decode_request
    >>> body = (b'{"resourceSpans":[{"resource":{"attributes":[{"key":"session.id","value":'
    ...         b'{"stringValue":"s1"}}]},"scopeSpans":[{"spans":[{"traceId":"' + b"ab" * 16 +
    ...         b'","spanId":"' + b"cd" * 8 + b'","startTimeUnixNano":"10700000000",'
    ...         b'"endTimeUnixNano":"10700000000"}]}]}]}')
    >>> batch = decode_request(body, "application/json", None, Limits())
    >>> facts = RequestFacts(received_at_ms=10_000.0, sent_at="10800")
    >>> plan = plan_batch(batch, facts, {}, PlanConfig())
    >>> [(s.session_id, s.estimate.upper_ms, s.estimate.applied) for s in plan.sessions]
    [('s1', -800.0, True)]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from skewgate.clock.correction import (
    MAX_STORED_SPAN_BYTES,
    SessionGroup,
    TraceChunk,
    batch_id,
    encode_group,
    group_by_session,
)
from skewgate.clock.estimate import EstimatorConfig, Flag, SessionClock, SkewEstimate, estimate
from skewgate.clock.evidence import (
    MAX_PLAUSIBLE_OFFSET_MS,
    BatchEvidence,
    ClockSync,
    ClockSyncHeader,
)
from skewgate.clock.records import (
    BatchRecord,
    SessionState,
    SkewSample,
    ceil_ms,
    day_of,
    floor_ms,
    round_ms,
)
from skewgate.wire.decode import DecodedBatch

__all__ = [
    "BatchPlan",
    "PlanConfig",
    "PreparedBatch",
    "RequestFacts",
    "SessionPlan",
    "parse_sent_at",
    "plan_batch",
    "prepare_batch",
]

# DynamoDB keys hold at most 2,048 bytes; a session id is an identifier, not a payload.
MAX_SESSION_ID_BYTES = 256


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
    max_session_id_bytes: int = MAX_SESSION_ID_BYTES


@dataclass(slots=True)
class SessionPlan:
    """One session's part of a batch: its verdict, its new state and its encoded spans."""

    session_id: str | None
    estimate: SkewEstimate
    state: SessionClock
    basis: SessionState | None  # the stored state it was estimated from (None: new/no session)
    sample: SkewSample | None  # None for spans without session
    next_state: SessionState | None  # what the commit writes, conditional on ``basis``
    chunks: list[TraceChunk]
    oversized: list[str]  # span ids too large for any item (rejected)
    group: SessionGroup

    @property
    def stored_spans(self) -> int:
        return len(self.group.spans) - len(self.oversized)


@dataclass(slots=True)
class BatchPlan:
    """Everything one commit writes, and what the response says."""

    batch_id: str
    received_at_ms: int
    span_count: int
    rejected_spans: int
    sessions: list[SessionPlan]
    decode_message: str = ""

    @property
    def errors(self) -> list[str]:
        return [
            f"span {span_id!r}: too large to store (over {MAX_STORED_SPAN_BYTES} bytes)"
            for s in self.sessions
            for span_id in s.oversized
        ]

    @property
    def message(self) -> str:
        return "; ".join(([self.decode_message] if self.decode_message else []) + self.errors)

    @property
    def record(self) -> BatchRecord:
        return BatchRecord(
            batch_id=self.batch_id,
            received_at_ms=self.received_at_ms,
            span_count=self.span_count,
            rejected_spans=self.rejected_spans,
            error_message=self.message,
        )

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
    chunks, oversized = encode_group(group, result)
    sample = next_state = None
    if group.session_id is not None:
        sample = SkewSample.from_estimate(
            result,
            session_id=group.session_id,
            batch_id=bid,
            received_at_ms=int(facts.received_at_ms),
            span_count=len(group.spans) - len(oversized),
            trace_ids=group.trace_ids,
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
    return SessionPlan(
        group.session_id, result, state, basis, sample, next_state, chunks, oversized, group
    )


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """A decoded batch with its identity and its spans grouped by session."""

    batch: DecodedBatch
    batch_id: str
    groups: list[SessionGroup]

    @property
    def session_ids(self) -> list[str]:
        """The sessions whose stored state the plan needs."""
        return [g.session_id for g in self.groups if g.session_id is not None]


def prepare_batch(batch: DecodedBatch, facts: RequestFacts, config: PlanConfig) -> PreparedBatch:
    """Identify ``batch`` (by its span ids) and group its spans by session."""
    groups = group_by_session(
        batch, facts.session_header, max_session_bytes=config.max_session_id_bytes
    )
    return PreparedBatch(batch, batch_id(batch), groups)


def plan_batch(
    batch: DecodedBatch | PreparedBatch,
    facts: RequestFacts,
    states: Mapping[str, SessionState],
    config: PlanConfig,
    *,
    previous: BatchPlan | None = None,
) -> BatchPlan:
    """Plan the commit of ``batch`` against the sessions' current ``states``.

    ``previous`` is the plan whose commit lost a race: every session plan of it whose state is
    unchanged (same version) is reused as it is.
    """
    prepared = batch if isinstance(batch, PreparedBatch) else prepare_batch(batch, facts, config)
    bid = prepared.batch_id
    reusable = {s.session_id: s for s in previous.sessions} if previous is not None else {}
    sessions: list[SessionPlan] = []
    for group in prepared.groups:
        sid = group.session_id
        basis = states.get(sid) if sid is not None else None
        old = reusable.get(sid)
        if old is not None and (
            sid is None or _version(old.basis) == _version(basis)
        ):
            sessions.append(old)
            continue
        sessions.append(_plan_session(group, facts, basis, bid, config))
    oversized = sum(len(s.oversized) for s in sessions)
    decoded = prepared.batch
    return BatchPlan(
        batch_id=bid,
        received_at_ms=int(facts.received_at_ms),
        span_count=decoded.span_count - oversized,
        rejected_spans=decoded.rejected_spans + oversized,
        sessions=sessions,
        decode_message=decoded.error_message,
    )


def _version(state: SessionState | None) -> int | None:
    return None if state is None else state.version
