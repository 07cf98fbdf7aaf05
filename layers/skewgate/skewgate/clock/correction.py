"""Which spans belong to which session's clock, and the corrected copy of a batch. Pure.

One constant shift moves every span, event time of a session's batch, so durations and the
order of client spans stay exact; nothing is ever moved into a parent's window.

:class:`Grouping` is the rule that splits a request into sessions; the ingest applies it to a
:class:`~skewgate.wire.scan.ScannedBatch` and :func:`corrected_request` applies the very same
rule when the stored body is read back, so both always agree on which spans a session's
verdict covers. :func:`corrected_request` is the one function that turns a stored body and its
verdicts into the copy that leaves the gateway (forwarder, read API, CLI): OTLP protobuf, each
shifted span carrying the ``clock_skew.*`` attributes that say by how much, on what evidence,
and what its times were.

Example:
    >>> from skewgate.wire.scan import scan_request
    >>> from skewgate.wire.decode import JSON, Limits
    >>> span = (b'{"traceId":"' + b"ab" * 16 + b'","spanId":"' + b"cd" * 8 +
    ...         b'","startTimeUnixNano":"5","endTimeUnixNano":"9"}')
    >>> body = b'{"resourceSpans":[{"scopeSpans":[{"spans":[' + span + b']}]}]}'
    >>> [(g.session_id, g.max_client_time_ns) for g in Grouping("s9").groups(
    ...     scan_request(body, JSON, Limits()))]
    [('s9', 9)]
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

import msgspec

from skewgate.clock.estimate import Method, SkewEstimate
from skewgate.wire.decode import JSON, Limits, decode_json, decode_protobuf, validate
from skewgate.wire.encode import (
    encode_resource_spans_parts,
    encode_scope_spans,
    encode_span,
    encode_span_pair,
    key_value,
    span_attribute_fields,
    span_int_attribute_field,
)
from skewgate.wire.model import KeyValue, Resource, ResourceSpans, ScopeSpans, Span
from skewgate.wire.scan import SESSION_ATTRIBUTE, ScannedBatch

__all__ = [
    "ATTRIBUTE_PREFIX",
    "CorrectedSpan",
    "Grouping",
    "SessionGroup",
    "SessionShift",
    "batch_id",
    "corrected_request",
    "read_back",
    "session_of",
    "skew_attributes",
]

ATTRIBUTE_PREFIX: Final = "clock_skew."
_ORIGINAL_START: Final = "clock_skew.original_start_time_unix_nano"
_ORIGINAL_END: Final = "clock_skew.original_end_time_unix_nano"


def session_of(attributes: Iterable[KeyValue]) -> str | None:
    """The semconv ``session.id`` of a span or resource, if it carries a non-empty one."""
    for kv in attributes:
        if kv.key == SESSION_ATTRIBUTE and kv.value is not None and kv.value.string_value:
            return kv.value.string_value
    return None


@dataclass(slots=True)
class SessionGroup:
    """The spans of one session in one batch: indices into a scan's columns."""

    session_id: str | None
    indices: list[int] = field(default_factory=list)
    max_client_time_ns: int | None = None
    dropped_session_id: bool = False  # it had one, too long to be a key
    trace_ids: list[str] = field(default_factory=list)  # distinct, sorted

    @property
    def max_client_time_ms(self) -> float | None:
        return None if self.max_client_time_ns is None else self.max_client_time_ns / 1e6

    @property
    def span_count(self) -> int:
        return len(self.indices)


class Grouping(msgspec.Struct, frozen=True):
    """How a request splits into sessions, and the caps that bound one request's writes.

    Stored with the batch, so the body is always read back under the rule it was written by.

    * ``session_header``: ``X-Session-Id``, for spans whose span and resource carry no
      ``session.id``;
    * ``max_session_bytes``: a longer id is no key (DynamoDB keys hold 2,048 bytes): its
      spans go without session;
    * ``max_sessions``: sessions beyond it (in order of first appearance) get no verdict and
      no history: their spans are stored and forwarded as they came. One batch then commits
      in one DynamoDB transaction (3 writes a session and the marker: ≤ 100);
    * ``max_traces``: spans of traces beyond it are rejected (``partialSuccess``): one index
      item is written per trace, and this is what bounds a request's writes.
    """

    session_header: str | None = None
    max_session_bytes: int = 256
    max_sessions: int = 32
    max_traces: int = 1_000

    def claim(self, span_session: str | None, resource_session: str | None) -> str | None:
        """The session a span claims: its own, its resource's, else the header's."""
        return span_session or resource_session or self.session_header or None

    def usable(self, claimed: str | None) -> str | None:
        if claimed is not None and len(claimed.encode()) > self.max_session_bytes:
            return None
        return claimed

    def admitted_traces(self, trace_ids: Iterable[str]) -> set[str]:
        """The first ``max_traces`` distinct traces, in order of appearance."""
        admitted: dict[str, None] = {}
        for trace_id in trace_ids:
            if trace_id not in admitted:
                if len(admitted) >= self.max_traces:
                    continue
                admitted[trace_id] = None
        return set(admitted)

    def groups(self, scan: ScannedBatch) -> list[SessionGroup]:
        """The accepted spans of ``scan`` by session, in order of first appearance.

        Spans of traces beyond ``max_traces`` are left out (the caller rejects them).
        """
        trace_ids = scan.trace_ids
        distinct = set(trace_ids)
        admitted = distinct if len(distinct) <= self.max_traces else self.admitted_traces(
            trace_ids
        )
        claims = [self.claim(None, rs) for rs in scan.resource_sessions]
        if scan.sessions is None and len(admitted) == len(distinct) and len(set(claims)) <= 1:
            # The common case: one session for the whole request (the resource's).
            claimed = claims[0] if claims else self.claim(None, None)
            sid = self.usable(claimed)
            latest = max(scan.latest, default=0)
            return [
                SessionGroup(
                    sid, list(range(len(trace_ids))), latest or None,
                    claimed is not None and sid is None, sorted(distinct),
                )
            ] if trace_ids else []
        groups: dict[str | None, SessionGroup] = {}
        traces: dict[str | None, set[str]] = {}
        sessions = scan.sessions
        for i, trace_id in enumerate(trace_ids):
            if trace_id not in admitted:
                continue
            own = sessions[i] if sessions is not None else None
            claimed = self.claim(own, scan.resource_sessions[scan.resources[i]])
            sid = self.usable(claimed)
            group = groups.get(sid)
            if group is None:
                group = groups[sid] = SessionGroup(sid)
                traces[sid] = set()
            if claimed is not None and sid is None:
                group.dropped_session_id = True
            group.indices.append(i)
            traces[sid].add(trace_id)
            latest = scan.latest[i]
            if latest and (group.max_client_time_ns is None or latest > group.max_client_time_ns):
                group.max_client_time_ns = latest
        for sid, group in groups.items():
            group.trace_ids = sorted(traces[sid])
        return list(groups.values())


def batch_id(scan: ScannedBatch) -> str:
    """A batch is its content: the ids of its accepted spans, whatever headers a retry carries
    (and whichever of them a cap then turns away)."""
    ids = sorted(map(operator.add, scan.trace_ids, scan.span_ids))
    return hashlib.sha256("".join(ids).encode()).hexdigest()[:32]


class SessionShift(msgspec.Struct, frozen=True, kw_only=True):
    """A session's verdict as the stored batch keeps it: what its spans were shifted by."""

    session_id: str | None
    offset_ms: float
    lower_ms: float | None
    upper_ms: float | None
    method: Method
    applied: bool

    @classmethod
    def of(cls, session_id: str | None, estimate: SkewEstimate) -> SessionShift:
        return cls(
            session_id=session_id,
            offset_ms=estimate.offset_ms,
            lower_ms=estimate.lower_ms,
            upper_ms=estimate.upper_ms,
            method=estimate.method,
            applied=estimate.applied,
        )

    @property
    def estimate(self) -> SkewEstimate:
        return SkewEstimate(self.offset_ms, self.lower_ms, self.upper_ms, self.method, self.applied)

    @property
    def shift_ns(self) -> int:
        return round(self.offset_ms * 1e6) if self.applied else 0


def skew_attributes(estimate: SkewEstimate, span: Span) -> list[KeyValue]:
    """The ``clock_skew.*`` attributes of a corrected span."""
    attrs = [key_value("clock_skew.offset_ms", float(estimate.offset_ms))]
    if estimate.lower_ms is not None:
        attrs.append(key_value("clock_skew.lower_ms", float(estimate.lower_ms)))
    if estimate.upper_ms is not None:
        attrs.append(key_value("clock_skew.upper_ms", float(estimate.upper_ms)))
    attrs.append(key_value("clock_skew.method", estimate.method.value))
    attrs.append(key_value(_ORIGINAL_START, span.start_time_unix_nano))
    attrs.append(key_value(_ORIGINAL_END, span.end_time_unix_nano))
    return attrs


@dataclass(slots=True)
class CorrectedSpan:
    """One accepted span of a stored batch, as it was received and as it leaves."""

    resource: ResourceSpans
    scope: ScopeSpans
    span: Span
    session_id: str | None
    shift: SessionShift | None  # None: no verdict (a session over the cap)


def read_back(
    body: bytes, kind: str, grouping: Grouping, limits: Limits,
    shifts: Mapping[str | None, SessionShift],
) -> list[CorrectedSpan]:
    """The accepted spans of a stored body, each with its session's verdict.

    The body is decoded and validated in full, under the limits it was received with; the
    spans are the ones the ingest accepted, grouped by the same rule.
    """
    request = decode_json(body) if kind == JSON else decode_protobuf(body)
    batch = validate(request, limits)
    admitted = grouping.admitted_traces(span.trace_id for _, _, span in batch.spans())
    out: list[CorrectedSpan] = []
    for rs in batch.request.resource_spans:
        resource_session = session_of(rs.resource.attributes) if rs.resource else None
        for ss in rs.scope_spans:
            for span in ss.spans:
                if span.trace_id not in admitted:
                    continue
                sid = grouping.usable(grouping.claim(session_of(span.attributes),
                                                     resource_session))
                out.append(CorrectedSpan(rs, ss, span, sid, shifts.get(sid)))
    return out


def _regroup(spans: Iterable[tuple[ResourceSpans, ScopeSpans, bytes]]) -> bytes:
    """Encoded spans under their resource and scope, in first-seen order."""
    by_resource: dict[int, tuple[Resource | None, str, dict[int, tuple[ScopeSpans, list[bytes]]]]]
    by_resource = {}
    for rs, ss, message in spans:
        entry = by_resource.setdefault(id(rs), (rs.resource, rs.schema_url, {}))
        entry[2].setdefault(id(ss), (ss, []))[1].append(message)
    return b"".join(
        encode_resource_spans_parts(
            resource,
            (
                encode_scope_spans(ss.scope, messages, ss.schema_url)
                for ss, messages in scopes.values()
            ),
            schema_url,
        )
        for resource, schema_url, scopes in by_resource.values()
    )


def corrected_request(spans: Iterable[CorrectedSpan]) -> bytes:
    """An ``ExportTraceServiceRequest`` of ``spans`` as they leave the gateway.

    A span whose session was shifted moves by its constant (start, end and every event
    time) and carries ``clock_skew.offset_ms``/``lower_ms``/``upper_ms``/``method`` and its
    original times; any other span goes out as it was received.
    """
    constant: dict[int, tuple[int, bytes, SkewEstimate]] = {}
    out: list[tuple[ResourceSpans, ScopeSpans, bytes]] = []
    for entry in spans:
        shift = entry.shift
        span = entry.span
        if shift is None or not shift.applied:
            out.append((entry.resource, entry.scope, encode_span(span)))
            continue
        cached = constant.get(id(shift))
        if cached is None:
            estimate = shift.estimate
            # The batch-wide clock_skew.* attributes are encoded once; only the originals vary.
            fields = span_attribute_fields(skew_attributes(estimate, Span())[:-2])
            cached = constant[id(shift)] = (shift.shift_ns, fields, estimate)
        shift_ns, fields, _ = cached
        extra = (
            fields
            + span_int_attribute_field(_ORIGINAL_START, span.start_time_unix_nano)
            + span_int_attribute_field(_ORIGINAL_END, span.end_time_unix_nano)
        )
        _, fixed = encode_span_pair(span, shift_ns, extra)
        out.append((entry.resource, entry.scope, fixed))
    return _regroup(out)
