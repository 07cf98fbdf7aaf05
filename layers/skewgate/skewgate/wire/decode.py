"""OTLP/HTTP trace requests: content negotiation, inflation, decoding and validation. Pure.

One reused msgspec decoder turns a JSON body into :mod:`skewgate.wire.model` Structs without a
dict in between. Protobuf bodies are parsed by opentelemetry-proto (upb) and converted into
the same Structs, so everything after decoding sees one representation.

Example:
    >>> span = (b'{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331",'
    ...         b'"name":"GET","startTimeUnixNano":"1","endTimeUnixNano":"2"}')
    >>> body = b'{"resourceSpans":[{"scopeSpans":[{"spans":[' + span + b']}]}]}'
    >>> batch = decode_request(body, "application/json", None, Limits())
    >>> batch.span_count, batch.rejected_spans
    (1, 0)
"""

from __future__ import annotations

import base64
import gzip
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from skewgate.wire.model import (
    AnyValue,
    ArrayValue,
    Event,
    KeyValue,
    KeyValueList,
    Link,
    Resource,
    ResourceSpans,
    Scope,
    ScopeSpans,
    Span,
    Status,
    TracesRequest,
)

__all__ = [
    "JSON",
    "PROTOBUF",
    "DecodeError",
    "DecodedBatch",
    "Limits",
    "TooLarge",
    "UnsupportedMediaType",
    "decode_json",
    "decode_protobuf",
    "decode_request",
    "gzip_bytes",
    "inflate",
    "media_type",
    "validate",
]


# strict=False: OTLP/JSON allows int64 as a decimal string ("1795651409407000000").
_JSON_DECODER: Final = msgspec.json.Decoder(TracesRequest, strict=False)


class DecodeError(ValueError):
    """The body cannot be decoded at all: HTTP 400."""


class TooLarge(ValueError):
    """A size limit was exceeded: HTTP 413."""


class UnsupportedMediaType(ValueError):
    """Neither OTLP/JSON nor OTLP/protobuf: HTTP 415."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Request limits (docs/design.md §2); the defaults fit Lambda's 6 MB invoke payload."""

    max_body_bytes: int = 5 * 1024 * 1024
    max_inflated_bytes: int = 20 * 1024 * 1024
    max_spans: int = 10_000
    max_attributes: int = 128
    max_value_bytes: int = 16 * 1024
    #: A nested value (``arrayValue``/``kvlistValue``) with more elements than this, or
    #: nested deeper, is dropped like an attribute over the count limit.
    max_nested_values: int = 1_024
    max_nested_depth: int = 8
    #: What a request may spend on nesting and messages before it is refused (413): bounds
    #: the cost of decoding it, at ingest and wherever it is read back.
    max_nested_bytes: int = 1024 * 1024
    max_messages: int = 500_000


JSON: Final = "application/json"
PROTOBUF: Final = "application/x-protobuf"


def media_type(content_type: str | None) -> str:
    """``application/json; charset=utf-8`` → ``application/json``; raises on anything else."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind in (JSON, PROTOBUF):
        return kind
    if kind == "application/protobuf":
        return PROTOBUF
    raise UnsupportedMediaType(
        f"unsupported content type {content_type!r}: use {JSON} or {PROTOBUF}"
    )


def inflate(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """Undo ``Content-Encoding`` and stop inflating as soon as ``limit`` is passed."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        if len(body) > limit:
            raise TooLarge(f"body of {len(body)} bytes exceeds {limit}")
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise UnsupportedMediaType(f"unsupported content encoding {content_encoding!r}")
    wbits = 47 if encoding != "deflate" else 15  # 47: gzip or zlib header, auto-detected
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise DecodeError(f"body is not valid {encoding}: {exc}") from exc
    if len(out) > limit or inflater.unconsumed_tail:
        raise TooLarge(f"body inflates beyond {limit} bytes")
    if not inflater.eof:
        raise DecodeError(f"truncated {encoding} body")
    return out


@dataclass(slots=True)
class DecodedBatch:
    """A decoded request: accepted spans in their resource/scope groups, plus rejections."""

    request: TracesRequest
    span_count: int = 0
    rejected_spans: int = 0
    errors: list[str] = field(default_factory=list)

    def spans(self) -> Iterator[tuple[ResourceSpans, ScopeSpans, Span]]:
        for rs in self.request.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    yield rs, ss, span

    @property
    def error_message(self) -> str:
        return joined_errors(self.errors)


def joined_errors(errors: Sequence[str], shown: int = 5) -> str:
    """The first ``shown`` errors of a request, and how many more: one line for a client."""
    more = len(errors) - shown
    return "; ".join(errors[:shown]) + (f"; and {more} more" if more > 0 else "")


def decode_request(
    body: bytes, content_type: str | None, content_encoding: str | None, limits: Limits
) -> DecodedBatch:
    """Decode, enforce limits and validate one OTLP/HTTP trace request body."""
    kind = media_type(content_type)
    data = inflate(body, content_encoding, limits.max_inflated_bytes)
    request = decode_json(data) if kind == JSON else decode_protobuf(data)
    return validate(request, limits)


def decode_json(data: bytes) -> TracesRequest:
    try:
        return _JSON_DECODER.decode(data)
    except msgspec.DecodeError as exc:
        raise DecodeError(f"invalid OTLP/JSON: {exc}") from exc


_HEX = frozenset("0123456789abcdef")
_UINT64 = 1 << 64
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


class _Malformed(ValueError):
    """A value inside a span that cannot be stored as OTLP: the span is rejected alone."""


def id_error(value: str, length: int, what: str) -> str | None:
    """Why a lowercase hex id of ``length`` characters is not one, or ``None``."""
    if len(value) != length or not _HEX.issuperset(value):
        return f"malformed {what} {value[:40]!r}"
    if value.count("0") == length:
        return f"all-zero {what}"
    return None


def _span_problem(span: Span) -> str | None:
    span.trace_id = span.trace_id.lower()
    span.span_id = span.span_id.lower()
    span.parent_span_id = span.parent_span_id.lower()
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    return (
        id_error(span.trace_id, 32, "traceId")
        or id_error(span.span_id, 16, "spanId")
        or (span.parent_span_id and id_error(span.parent_span_id, 16, "parentSpanId"))
        or (not (0 <= start < _UINT64 and 0 <= end < _UINT64) and "time out of uint64 range")
        or (end < start and "endTimeUnixNano before startTimeUnixNano")
        or None
    )


def validate(request: TracesRequest, limits: Limits) -> DecodedBatch:
    """Reject bad spans alone, truncate oversized attributes, and count what is left.

    Rejected: malformed or all-zero ids, end before start, times outside uint64, an
    ``intValue`` outside int64 or a ``bytesValue`` that is not base64 anywhere in the span.
    A link with malformed ids is dropped and counted in ``droppedLinksCount``.
    """
    batch = DecodedBatch(request)
    total = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    if total > limits.max_spans:
        raise TooLarge(f"{total} spans in one request exceed the limit of {limits.max_spans}")
    for rs in request.resource_spans:
        _limit_shared(rs.resource, "resource", limits)
        for ss in rs.scope_spans:
            _limit_shared(ss.scope, "scope", limits)
            kept: list[Span] = []
            for span in ss.spans:
                problem = _span_problem(span)
                if problem is None:
                    try:
                        _limit_span(span, limits)
                    except _Malformed as exc:
                        problem = str(exc)
                if problem:
                    batch.rejected_spans += 1
                    batch.errors.append(f"span {span.span_id[:16]!r}: {problem}")
                    continue
                kept.append(span)
            ss.spans = kept
            batch.span_count += len(kept)
    return batch


def _limit_shared(owner: Resource | Scope | None, what: str, limits: Limits) -> None:
    """A resource's or scope's attributes: a malformed one fails the whole request."""
    if owner is None:
        return
    try:
        owner.dropped_attributes_count += _limit_attributes(owner.attributes, limits)
    except _Malformed as exc:
        raise DecodeError(f"{what} attribute: {exc}") from None


def _limit_span(span: Span, limits: Limits) -> None:
    span.dropped_attributes_count += _limit_attributes(span.attributes, limits)
    for event in span.events:
        if not 0 <= event.time_unix_nano < _UINT64:
            raise _Malformed("event time out of uint64 range")
        event.dropped_attributes_count += _limit_attributes(event.attributes, limits)
    if span.links:
        links = []
        for link in span.links:
            link.trace_id = link.trace_id.lower()
            link.span_id = link.span_id.lower()
            if id_error(link.trace_id, 32, "") or id_error(link.span_id, 16, ""):
                span.dropped_links_count += 1
                continue
            link.dropped_attributes_count += _limit_attributes(link.attributes, limits)
            links.append(link)
        span.links = links


def _limit_attributes(attributes: list[KeyValue], limits: Limits) -> int:
    """Truncate values over the byte limit in place; drop attributes over the count limit."""
    dropped = 0
    if len(attributes) > limits.max_attributes:
        dropped = len(attributes) - limits.max_attributes
        del attributes[limits.max_attributes :]
    quarter = limits.max_value_bytes // 4
    nested = False
    for kv in attributes:
        value = kv.value
        if value is None:
            continue
        text = value.string_value
        if text is not None:  # the common case, kept cheap
            if len(text) > quarter:
                _limit_value(value, limits.max_value_bytes)
        elif value.int_value is None or not _INT64_MIN <= value.int_value <= _INT64_MAX:
            _limit_value(value, limits.max_value_bytes)
            nested = nested or value.array_value is not None or value.kvlist_value is not None
    if nested:
        kept = [kv for kv in attributes if kv.value is None or _nesting_fits(kv.value, limits)]
        dropped += len(attributes) - len(kept)
        attributes[:] = kept
    return dropped


def _nesting_fits(value: AnyValue, limits: Limits) -> bool:
    """Whether a value holds at most ``max_nested_values`` elements, ``max_nested_depth`` deep."""
    budget = limits.max_nested_values
    stack = [(value, 0)]
    while stack:
        current, depth = stack.pop()
        if current.array_value is not None:
            children = current.array_value.values
        elif current.kvlist_value is not None:
            children = [kv.value for kv in current.kvlist_value.values if kv.value is not None]
        else:
            continue
        if depth >= limits.max_nested_depth:
            return False
        budget -= len(children)
        if budget < 0:
            return False
        stack.extend((child, depth + 1) for child in children)
    return True


def _limit_value(value: AnyValue, max_bytes: int) -> None:
    if value.string_value is not None:
        if len(value.string_value) > max_bytes // 4:
            encoded = value.string_value.encode()
            if len(encoded) > max_bytes:
                value.string_value = encoded[:max_bytes].decode(errors="ignore")
    elif value.int_value is not None:
        if not _INT64_MIN <= value.int_value <= _INT64_MAX:
            raise _Malformed(f"intValue {value.int_value} outside int64")
    elif value.bytes_value is not None:
        try:
            raw = base64.b64decode(value.bytes_value, validate=True)
        except ValueError:
            raise _Malformed("bytesValue is not base64") from None
        if len(raw) > max_bytes:
            value.bytes_value = base64.b64encode(raw[:max_bytes]).decode()
    elif value.array_value is not None:
        for item in value.array_value.values:
            _limit_value(item, max_bytes)
    elif value.kvlist_value is not None:
        for kv in value.kvlist_value.values:
            if kv.value is not None:
                _limit_value(kv.value, max_bytes)


# --- protobuf -----------------------------------------------------------------------------


def decode_protobuf(data: bytes) -> TracesRequest:
    from google.protobuf.message import DecodeError as PbDecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    try:
        message = ExportTraceServiceRequest.FromString(data)
    except (PbDecodeError, RuntimeError, ValueError) as exc:
        raise DecodeError(f"invalid OTLP/protobuf: {exc}") from exc
    return TracesRequest(resource_spans=[_pb_resource_spans(rs) for rs in message.resource_spans])


def _pb_value(pb: Any) -> AnyValue:
    # Positional arguments in field order: string, bool, int, double, array, kvlist, bytes.
    which = pb.WhichOneof("value")
    if which == "string_value":
        return AnyValue(pb.string_value)
    if which == "int_value":
        return AnyValue(None, None, pb.int_value)
    if which == "bool_value":
        return AnyValue(None, pb.bool_value)
    if which == "double_value":
        return AnyValue(None, None, None, pb.double_value)
    if which == "array_value":
        return AnyValue(array_value=ArrayValue([_pb_value(v) for v in pb.array_value.values]))
    if which == "kvlist_value":
        return AnyValue(kvlist_value=KeyValueList(_pb_attributes(pb.kvlist_value.values)))
    if which == "bytes_value":
        return AnyValue(bytes_value=base64.b64encode(pb.bytes_value).decode())
    return AnyValue()


def _pb_attributes(pbs: Any) -> list[KeyValue]:
    return [KeyValue(kv.key, _pb_value(kv.value)) for kv in pbs]


def _pb_span(pb: Any) -> Span:
    # Positional, in Span's field order: walking upb objects is the protobuf path's main cost.
    events = pb.events
    links = pb.links
    return Span(
        pb.trace_id.hex(),
        pb.span_id.hex(),
        pb.trace_state,
        pb.parent_span_id.hex(),
        pb.flags,
        pb.name,
        pb.kind,
        pb.start_time_unix_nano,
        pb.end_time_unix_nano,
        _pb_attributes(pb.attributes),
        pb.dropped_attributes_count,
        [
            Event(
                e.time_unix_nano, e.name, _pb_attributes(e.attributes), e.dropped_attributes_count
            )
            for e in events
        ]
        if events
        else [],
        pb.dropped_events_count,
        [
            Link(
                li.trace_id.hex(),
                li.span_id.hex(),
                li.trace_state,
                _pb_attributes(li.attributes),
                li.dropped_attributes_count,
                li.flags,
            )
            for li in links
        ]
        if links
        else [],
        pb.dropped_links_count,
        Status(pb.status.message, pb.status.code) if pb.HasField("status") else None,
    )


def _pb_resource_spans(pb: Any) -> ResourceSpans:
    resource = (
        Resource(_pb_attributes(pb.resource.attributes), pb.resource.dropped_attributes_count)
        if pb.HasField("resource")
        else None
    )
    return ResourceSpans(
        resource=resource,
        scope_spans=[
            ScopeSpans(
                scope=Scope(
                    ss.scope.name,
                    ss.scope.version,
                    _pb_attributes(ss.scope.attributes),
                    ss.scope.dropped_attributes_count,
                )
                if ss.HasField("scope")
                else None,
                spans=[_pb_span(s) for s in ss.spans],
                schema_url=ss.schema_url,
            )
            for ss in pb.scope_spans
        ],
        schema_url=pb.schema_url,
    )


def gzip_bytes(data: bytes, level: int = 6) -> bytes:
    """gzip for outgoing requests (kept here beside ``inflate``)."""
    return gzip.compress(data, compresslevel=level, mtime=0)
