"""A small OTLP protobuf encoder for the msgspec model. Pure: no I/O.

Building upb messages field by field from Python costs several times the decode; writing the
wire format directly is cheaper and needs no mutable copies to emit shifted times: a
``shift_ns`` is added to every span, event time as they are written, and ``extra`` attributes
(the ``clock_skew.*`` ones) are appended. Field numbers are those of
``opentelemetry/proto/trace/v1/trace.proto``; tests check the output against the official
definitions.

Example:
    >>> from skewgate.wire.model import Span
    >>> len(encode_span(Span(trace_id="01" * 16, span_id="02" * 8, name="x"))) > 0
    True
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterable
from typing import Final

from skewgate.wire.model import (
    AnyValue,
    Event,
    KeyValue,
    Link,
    Resource,
    ResourceSpans,
    Scope,
    Span,
    TracesRequest,
)
from skewgate.wire.protobuf import len_field, tag, varint

__all__ = [
    "encode_any_value",
    "encode_attributes",
    "encode_request",
    "encode_resource_spans",
    "encode_span",
    "encode_span_pair",
    "key_value",
    "span_attribute_fields",
    "span_int_attribute_field",
]

_pack_fixed64: Final = struct.Struct("<Q").pack
_pack_fixed32: Final = struct.Struct("<I").pack
_pack_double: Final = struct.Struct("<d").pack
_MASK64: Final = (1 << 64) - 1


def _str_field(field_tag: bytes, text: str) -> bytes:
    if not text:
        return b""
    return len_field(field_tag, text.encode())


_T_KV_KEY, _T_KV_VALUE = tag(1, 2), tag(2, 2)
_T_AV_STR, _T_AV_BOOL, _T_AV_INT = tag(1, 2), tag(2, 0), tag(3, 0)
_T_AV_DOUBLE, _T_AV_ARRAY, _T_AV_KVLIST, _T_AV_BYTES = (
    tag(4, 1),
    tag(5, 2),
    tag(6, 2),
    tag(7, 2),
)
_T_LIST_VALUES = tag(1, 2)


def encode_any_value(value: AnyValue) -> bytes:
    if value.string_value is not None:
        return len_field(_T_AV_STR, value.string_value.encode())
    if value.int_value is not None:
        return _T_AV_INT + varint(value.int_value)
    if value.bool_value is not None:
        return _T_AV_BOOL + (b"\x01" if value.bool_value else b"\x00")
    if value.double_value is not None:
        return _T_AV_DOUBLE + _pack_double(value.double_value)
    if value.array_value is not None:
        inner = b"".join(
            len_field(_T_LIST_VALUES, encode_any_value(v)) for v in value.array_value.values
        )
        return len_field(_T_AV_ARRAY, inner)
    if value.kvlist_value is not None:
        inner = b"".join(len_field(_T_LIST_VALUES, _kv(kv)) for kv in value.kvlist_value.values)
        return len_field(_T_AV_KVLIST, inner)
    if value.bytes_value is not None:
        return len_field(_T_AV_BYTES, base64.b64decode(value.bytes_value + "=="))
    return b""


def _kv(kv: KeyValue) -> bytes:
    out = _str_field(_T_KV_KEY, kv.key)
    if kv.value is not None:
        out += len_field(_T_KV_VALUE, encode_any_value(kv.value))
    return out


# Browser batches repeat most attributes (http.method=GET, component=fetch, service.name):
# scalar ones are encoded once and looked up after. Bounded, and cleared when full.
_KV_CACHE: dict[tuple[str, str | None, int | None, bool | None, float | None], bytes] = {}
_KV_CACHE_MAX: Final = 8192


def _kv_cached(kv: KeyValue) -> bytes:
    v = kv.value
    if (
        v is None
        or v.array_value is not None
        or v.kvlist_value is not None
        or (v.bytes_value is not None)
    ):
        return _kv(kv)
    sv = v.string_value
    if sv is not None and len(sv) > 256:
        return _kv(kv)
    key = (kv.key, sv, v.int_value, v.bool_value, v.double_value)
    hit = _KV_CACHE.get(key)
    if hit is None:
        if len(_KV_CACHE) >= _KV_CACHE_MAX:
            _KV_CACHE.clear()
        hit = _KV_CACHE[key] = _kv(kv)
    return hit


def encode_attributes(field_tag: bytes, attributes: Iterable[KeyValue]) -> bytes:
    return b"".join([len_field(field_tag, _kv_cached(kv)) for kv in attributes])


def key_value(key: str, value: str | int | float | bool) -> KeyValue:
    """A typed attribute (``bool`` before ``int``: bool is an int subclass)."""
    if isinstance(value, bool):
        return KeyValue(key, AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key, AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key, AnyValue(double_value=value))
    return KeyValue(key, AnyValue(string_value=value))


def _uint_field(field_tag: bytes, value: int) -> bytes:
    return field_tag + varint(value) if value else b""


# Span fields.
_T_SPAN_TRACE_ID, _T_SPAN_SPAN_ID, _T_SPAN_STATE, _T_SPAN_PARENT = (
    tag(1, 2),
    tag(2, 2),
    tag(3, 2),
    tag(4, 2),
)
_T_SPAN_NAME, _T_SPAN_KIND, _T_SPAN_START, _T_SPAN_END = (
    tag(5, 2),
    tag(6, 0),
    tag(7, 1),
    tag(8, 1),
)
_T_SPAN_ATTRS, _T_SPAN_DROPPED_ATTRS, _T_SPAN_EVENTS, _T_SPAN_DROPPED_EVENTS = (
    tag(9, 2),
    tag(10, 0),
    tag(11, 2),
    tag(12, 0),
)
_T_SPAN_LINKS, _T_SPAN_DROPPED_LINKS, _T_SPAN_STATUS, _T_SPAN_FLAGS = (
    tag(13, 2),
    tag(14, 0),
    tag(15, 2),
    tag(16, 5),
)
_T_EVENT_TIME, _T_EVENT_NAME, _T_EVENT_ATTRS, _T_EVENT_DROPPED = (
    tag(1, 1),
    tag(2, 2),
    tag(3, 2),
    tag(4, 0),
)
_T_LINK_TRACE, _T_LINK_SPAN, _T_LINK_STATE, _T_LINK_ATTRS, _T_LINK_DROPPED, _T_LINK_FLAGS = (
    tag(1, 2),
    tag(2, 2),
    tag(3, 2),
    tag(4, 2),
    tag(5, 0),
    tag(6, 5),
)
_T_STATUS_MESSAGE, _T_STATUS_CODE = tag(2, 2), tag(3, 0)


def _time(field_tag: bytes, value: int) -> bytes:
    return field_tag + _pack_fixed64(value & _MASK64) if value else b""


def _event(event: Event, shift_ns: int) -> bytes:
    return (
        _time(_T_EVENT_TIME, event.time_unix_nano + shift_ns if event.time_unix_nano else 0)
        + _str_field(_T_EVENT_NAME, event.name)
        + encode_attributes(_T_EVENT_ATTRS, event.attributes)
        + _uint_field(_T_EVENT_DROPPED, event.dropped_attributes_count)
    )


def _link(link: Link) -> bytes:
    out = (
        len_field(_T_LINK_TRACE, bytes.fromhex(link.trace_id))
        + len_field(_T_LINK_SPAN, bytes.fromhex(link.span_id))
        + _str_field(_T_LINK_STATE, link.trace_state)
        + encode_attributes(_T_LINK_ATTRS, link.attributes)
        + _uint_field(_T_LINK_DROPPED, link.dropped_attributes_count)
    )
    if link.flags:
        out += _T_LINK_FLAGS + _pack_fixed32(link.flags & 0xFFFFFFFF)
    return out


def _span_parts(span: Span) -> tuple[bytes, bytes, bytes]:
    """The time-independent parts of a span: before the times, attributes, after events."""
    head = len_field(_T_SPAN_TRACE_ID, bytes.fromhex(span.trace_id)) + len_field(
        _T_SPAN_SPAN_ID, bytes.fromhex(span.span_id)
    )
    if span.trace_state:
        head += _str_field(_T_SPAN_STATE, span.trace_state)
    if span.parent_span_id:
        head += len_field(_T_SPAN_PARENT, bytes.fromhex(span.parent_span_id))
    head += _str_field(_T_SPAN_NAME, span.name) + _uint_field(_T_SPAN_KIND, span.kind)
    attrs = encode_attributes(_T_SPAN_ATTRS, span.attributes) + _uint_field(
        _T_SPAN_DROPPED_ATTRS, span.dropped_attributes_count
    )
    tail = _uint_field(_T_SPAN_DROPPED_EVENTS, span.dropped_events_count)
    for link in span.links:
        tail += len_field(_T_SPAN_LINKS, _link(link))
    tail += _uint_field(_T_SPAN_DROPPED_LINKS, span.dropped_links_count)
    if span.status is not None:
        status = _str_field(_T_STATUS_MESSAGE, span.status.message) + _uint_field(
            _T_STATUS_CODE, span.status.code
        )
        tail += len_field(_T_SPAN_STATUS, status)
    if span.flags:
        tail += _T_SPAN_FLAGS + _pack_fixed32(span.flags & 0xFFFFFFFF)
    return head, attrs, tail


def _times(span: Span, shift_ns: int) -> bytes:
    return _time(_T_SPAN_START, span.start_time_unix_nano + shift_ns) + _time(
        _T_SPAN_END, span.end_time_unix_nano + shift_ns
    )


def _events(span: Span, shift_ns: int) -> bytes:
    if not span.events:
        return b""
    return b"".join([len_field(_T_SPAN_EVENTS, _event(e, shift_ns)) for e in span.events])


def encode_span(span: Span, shift_ns: int = 0, extra: Iterable[KeyValue] = ()) -> bytes:
    """One ``Span`` message, every time shifted by ``shift_ns``, ``extra`` attributes appended."""
    head, attrs, tail = _span_parts(span)
    return (
        head
        + _times(span, shift_ns)
        + attrs
        + encode_attributes(_T_SPAN_ATTRS, extra)
        + _events(span, shift_ns)
        + tail
    )


def encode_span_pair(span: Span, shift_ns: int, extra_fields: bytes) -> tuple[bytes, bytes]:
    """The raw span and its shifted copy, sharing the encoding of everything but the times.

    ``extra_fields`` are already encoded span attribute fields (see ``span_attribute_fields``).
    """
    head, attrs, tail = _span_parts(span)
    raw = head + _times(span, 0) + attrs + _events(span, 0) + tail
    fixed = head + _times(span, shift_ns) + attrs + extra_fields + _events(span, shift_ns) + tail
    return raw, fixed


def span_attribute_fields(attributes: Iterable[KeyValue]) -> bytes:
    """Span ``attributes`` fields, to splice into ``encode_span_pair``."""
    return encode_attributes(_T_SPAN_ATTRS, attributes)


def span_int_attribute_field(key: str, value: int) -> bytes:
    """One int span attribute, uncached: per-span values would only evict useful entries."""
    kv = _str_field(_T_KV_KEY, key) + len_field(_T_KV_VALUE, _T_AV_INT + varint(value))
    return len_field(_T_SPAN_ATTRS, kv)


_T_RS_RESOURCE, _T_RS_SCOPE_SPANS, _T_RS_SCHEMA = tag(1, 2), tag(2, 2), tag(3, 2)
_T_RES_ATTRS, _T_RES_DROPPED = tag(1, 2), tag(2, 0)
_T_SS_SCOPE, _T_SS_SPANS, _T_SS_SCHEMA = tag(1, 2), tag(2, 2), tag(3, 2)
_T_SCOPE_NAME, _T_SCOPE_VERSION, _T_SCOPE_ATTRS, _T_SCOPE_DROPPED = (
    tag(1, 2),
    tag(2, 2),
    tag(3, 2),
    tag(4, 0),
)
_T_REQ_RESOURCE_SPANS = tag(1, 2)


def encode_resource(resource: Resource) -> bytes:
    return encode_attributes(_T_RES_ATTRS, resource.attributes) + _uint_field(
        _T_RES_DROPPED, resource.dropped_attributes_count
    )


def encode_scope(scope: Scope) -> bytes:
    return (
        _str_field(_T_SCOPE_NAME, scope.name)
        + _str_field(_T_SCOPE_VERSION, scope.version)
        + encode_attributes(_T_SCOPE_ATTRS, scope.attributes)
        + _uint_field(_T_SCOPE_DROPPED, scope.dropped_attributes_count)
    )


def encode_scope_spans(
    scope: Scope | None, span_messages: Iterable[bytes], schema_url: str
) -> bytes:
    """A ``ScopeSpans`` from already encoded ``Span`` messages."""
    out = b"" if scope is None else len_field(_T_SS_SCOPE, encode_scope(scope))
    out += b"".join(len_field(_T_SS_SPANS, s) for s in span_messages)
    return out + _str_field(_T_SS_SCHEMA, schema_url)


def encode_resource_spans_parts(
    resource: Resource | None, scope_spans_messages: Iterable[bytes], schema_url: str
) -> bytes:
    """One ``ExportTraceServiceRequest.resource_spans`` entry (tag included).

    Serialized requests concatenate: ``b"".join`` of such entries is a valid request.
    """
    inner = b"" if resource is None else len_field(_T_RS_RESOURCE, encode_resource(resource))
    inner += b"".join(len_field(_T_RS_SCOPE_SPANS, s) for s in scope_spans_messages)
    inner += _str_field(_T_RS_SCHEMA, schema_url)
    return len_field(_T_REQ_RESOURCE_SPANS, inner)


def encode_resource_spans(rs: ResourceSpans, shift_ns: int = 0) -> bytes:
    return encode_resource_spans_parts(
        rs.resource,
        (
            encode_scope_spans(
                ss.scope, (encode_span(s, shift_ns) for s in ss.spans), ss.schema_url
            )
            for ss in rs.scope_spans
        ),
        rs.schema_url,
    )


def encode_request(request: TracesRequest, shift_ns: int = 0) -> bytes:
    """A whole ``ExportTraceServiceRequest``."""
    return b"".join(encode_resource_spans(rs, shift_ns) for rs in request.resource_spans)
