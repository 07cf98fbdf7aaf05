"""Grouping a decoded batch by session and trace, and applying one shift per group. Pure.

One constant shift moves every span, event time of a session's batch, so durations and the
order of client spans stay exact; nothing is ever moved into a parent's window. A corrected
span carries the ``clock_skew.*`` attributes that say by how much, on what evidence, and what
its times were; the raw span is kept unmodified beside it.

Example:
    >>> from skewgate.wire.model import Span
    >>> from skewgate.clock.estimate import SkewEstimate, Method
    >>> est = SkewEstimate(-800.0, -10_800.0, -793.0, Method.SEND_TIME, applied=True)
    >>> span = Span(start_time_unix_nano=5, end_time_unix_nano=9)
    >>> [kv.key for kv in skew_attributes(est, span)][:2]
    ['clock_skew.offset_ms', 'clock_skew.lower_ms']
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from skewgate.clock.estimate import SkewEstimate
from skewgate.wire.decode import DecodedBatch
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

__all__ = [
    "ATTRIBUTE_PREFIX",
    "SessionGroup",
    "TraceChunk",
    "batch_id",
    "encode_group",
    "group_by_session",
    "session_of",
    "skew_attributes",
]

ATTRIBUTE_PREFIX: Final = "clock_skew."
SESSION_ATTRIBUTE: Final = "session.id"
# DynamoDB items are limited to 400 KB; raw and corrected copies of a chunk share an item and
# compress well, so 160 KB of encoded spans per copy keeps an item safely under the limit.
MAX_CHUNK_SPAN_BYTES: Final = 160 * 1024
# One span alone (both copies) must fit an item even if it does not compress at all.
MAX_STORED_SPAN_BYTES: Final = 360 * 1024
_ORIGINAL_START: Final = "clock_skew.original_start_time_unix_nano"
_ORIGINAL_END: Final = "clock_skew.original_end_time_unix_nano"


def session_of(attributes: Iterable[KeyValue]) -> str | None:
    for kv in attributes:
        if kv.key == SESSION_ATTRIBUTE and kv.value is not None and kv.value.string_value:
            return kv.value.string_value
    return None


@dataclass(slots=True)
class SessionGroup:
    """The spans of one session in one batch, keeping their resource and scope."""

    session_id: str | None
    spans: list[tuple[ResourceSpans, ScopeSpans, Span]] = field(default_factory=list)
    max_client_time_ns: int | None = None
    dropped_session_id: bool = False  # it had one, too long to be a key

    @property
    def max_client_time_ms(self) -> float | None:
        return None if self.max_client_time_ns is None else self.max_client_time_ns / 1e6

    @property
    def trace_ids(self) -> list[str]:
        return sorted({span.trace_id for _, _, span in self.spans})


def group_by_session(
    batch: DecodedBatch, fallback_session: str | None, max_session_bytes: int = 256
) -> list[SessionGroup]:
    """Split by ``session.id`` (span attribute, then resource attribute, then the header).

    An id longer than ``max_session_bytes`` is no key: its spans go without session, marked.
    """
    groups: dict[str | None, SessionGroup] = {}

    def usable(sid: str | None) -> str | None:
        if sid is not None and len(sid.encode()) > max_session_bytes:
            return None
        return sid

    for rs in batch.request.resource_spans:
        resource_session = (
            session_of(rs.resource.attributes) if rs.resource is not None else None
        ) or fallback_session or None
        for ss in rs.scope_spans:
            for span in ss.spans:
                claimed = session_of(span.attributes) or resource_session
                sid = usable(claimed)
                group = groups.get(sid)
                if group is None:
                    group = groups[sid] = SessionGroup(sid)
                if claimed is not None and sid is None:
                    group.dropped_session_id = True
                group.spans.append((rs, ss, span))
                latest = max(
                    span.end_time_unix_nano,
                    span.start_time_unix_nano,
                    *(e.time_unix_nano for e in span.events),
                )
                if latest and (
                    group.max_client_time_ns is None or latest > group.max_client_time_ns
                ):
                    group.max_client_time_ns = latest
    return list(groups.values())


def batch_id(batch: DecodedBatch) -> str:
    """A batch is its content: the ids of its spans, whatever headers a retry carries."""
    ids = sorted(span.trace_id + span.span_id for _, _, span in batch.spans())
    return hashlib.sha256("".join(ids).encode()).hexdigest()[:32]


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
class TraceChunk:
    """Spans of one trace from one session's batch, encoded as ``ExportTraceServiceRequest``.

    ``corrected`` is ``None`` when the group was not shifted: the raw copy is then what goes on.
    """

    trace_id: str
    index: int
    span_count: int
    raw: bytes
    corrected: bytes | None


def _request(
    spans: list[tuple[ResourceSpans, ScopeSpans, bytes]],
) -> bytes:
    """Regroup encoded spans under their resource and scope, in first-seen order."""
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


def encode_group(group: SessionGroup, estimate: SkewEstimate) -> tuple[list[TraceChunk], list[str]]:
    """Encode a session group's spans per trace, raw and (when applied) corrected.

    Returns the chunks and the ids of spans too large for any DynamoDB item (rejected).
    """
    shift_ns = round(estimate.shift_ms * 1e6)
    # The batch-wide clock_skew.* attributes are encoded once; only the originals vary.
    constant_fields = span_attribute_fields(skew_attributes(estimate, Span())[:-2])
    by_trace: dict[str, list[tuple[ResourceSpans, ScopeSpans, Span]]] = {}
    for entry in group.spans:
        by_trace.setdefault(entry[2].trace_id, []).append(entry)
    chunks: list[TraceChunk] = []
    oversized: list[str] = []
    for trace_id in sorted(by_trace):
        # Consecutive runs of the trace's spans, each small enough for one item.
        runs: list[list[tuple[ResourceSpans, ScopeSpans, bytes, bytes]]] = [[]]
        size = 0
        for rs, ss, span in by_trace[trace_id]:
            if estimate.applied:
                extra = (
                    constant_fields
                    + span_int_attribute_field(_ORIGINAL_START, span.start_time_unix_nano)
                    + span_int_attribute_field(_ORIGINAL_END, span.end_time_unix_nano)
                )
                raw, fixed = encode_span_pair(span, shift_ns, extra)
            else:
                raw, fixed = encode_span(span), b""
            span_size = len(raw) + len(fixed)
            if span_size > MAX_STORED_SPAN_BYTES:
                oversized.append(span.span_id)
                continue
            if runs[-1] and size + span_size > MAX_CHUNK_SPAN_BYTES:
                runs.append([])
                size = 0
            runs[-1].append((rs, ss, raw, fixed))
            size += span_size
        for index, run in enumerate(r for r in runs if r):
            chunks.append(
                TraceChunk(
                    trace_id,
                    index,
                    len(run),
                    _request([(rs, ss, raw) for rs, ss, raw, _ in run]),
                    _request([(rs, ss, fixed) for rs, ss, _, fixed in run])
                    if estimate.applied
                    else None,
                )
            )
    return chunks, oversized
