"""The adjusted copy of a request: its times shifted in the encoding it was received in. Pure.

Nothing else of the body changes: in JSON only the digits of ``startTimeUnixNano``,
``endTimeUnixNano`` and events' ``timeUnixNano`` are rewritten (strings stay strings, numbers
numbers); in protobuf the same fixed64 fields are set on the parsed message and it is
serialized once. Each resource whose spans all moved by one verdict gets that verdict's facts
once, as resource attributes (``facts``); a span's own originals stay in the raw copy.

A zero time (unset) stays zero. Each span's times move by ``shifts[ordinal]`` (nanoseconds,
by the span's position in the request).

Example:
    >>> body = (b'{"resourceSpans":[{"resource":{"attributes":[]},"scopeSpans":[{"spans":'
    ...         b'[{"startTimeUnixNano":"1000","endTimeUnixNano":2000}]}]}]}')
    >>> adjusted = shift_json(body, [5], [[("clock_skew.method", "ntp")]])
    >>> adjusted[:100]
    b'{"resourceSpans":[{"resource":{"attributes":[{"key":"clock_skew.method","value":{"stringValue":"ntp"'
    >>> adjusted[100:]
    b'}}]},"scopeSpans":[{"spans":[{"startTimeUnixNano":"1005","endTimeUnixNano":2005}]}]}]}'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final

import msgspec

from skewgate.wire.decode import decode_json
from skewgate.wire.model import AnyValue, KeyValue, Resource

__all__ = ["Fact", "shift_json", "shift_protobuf", "time_counts"]

#: One resource attribute of the adjusted copy: ``(key, value)``.
Fact = tuple[str, str | float | int | bool]

_TIME: Final = re.compile(
    rb'"(?:startTimeUnixNano|endTimeUnixNano|timeUnixNano)"[ \t\r\n]*:[ \t\r\n]*"?([0-9]+)'
)
_WS: Final = rb"[ \t\r\n]*"
_RESOURCE_ATTRIBUTES: Final = re.compile(
    rb'"resource"' + _WS + rb":" + _WS + rb"\{" + _WS + rb'"attributes"' + _WS + rb":" + _WS
    + rb"\[" + _WS + rb"(\]?)"
)
_ENCODER: Final = msgspec.json.Encoder()


def _kv_json(facts: Sequence[Fact]) -> bytes:
    return b",".join(_ENCODER.encode(_key_value(key, value)) for key, value in facts)


def _key_value(key: str, value: str | float | int | bool) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key, AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key, AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key, AnyValue(double_value=value))
    return KeyValue(key, AnyValue(string_value=value))


def time_counts(request: Any) -> tuple[list[int], int]:
    """Per span in document order, how many non-zero times it holds; and their sum."""
    counts = []
    total = 0
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                n = 0
                for t in (span.start_time_unix_nano, span.end_time_unix_nano):
                    if t:
                        n += 1
                        total += t
                for event in span.events:
                    if event.time_unix_nano:
                        n += 1
                        total += event.time_unix_nano
                counts.append(n)
    return counts, total


def shift_json(
    body: bytes,
    shifts: Sequence[int],
    facts: Sequence[Sequence[Fact]],
    *,
    times: tuple[Sequence[int], int] | None = None,
) -> bytes:
    """The adjusted copy of a JSON request (see the module docs).

    ``facts[i]`` go first into the attributes of the i-th resource. The body is patched in
    place when every time field and resource can be found by its literal key (no ``\\u``
    escapes, attributes first in each resource, as every OTel SDK writes them); otherwise it
    is decoded and re-encoded with the same content.
    """
    if times is None:
        times = time_counts(decode_json(body))
    patched = _patch(body, shifts, facts, *times) if b"\\u" not in body else None
    return patched if patched is not None else _reencode(body, shifts, facts)


def _patch(
    body: bytes, shifts: Sequence[int], facts: Sequence[Sequence[Fact]],
    counts: Sequence[int], total: int,
) -> bytes | None:
    matches = [(m, int(m.group(1))) for m in _TIME.finditer(body)]
    matches = [(m, value) for m, value in matches if value]
    if len(matches) != sum(counts) or sum(value for _, value in matches) != total:
        return None  # a time field under another spelling, or one outside the model
    edits: list[tuple[int, int, bytes]] = []
    index = 0
    for ordinal, count in enumerate(counts):
        shift = shifts[ordinal]
        if shift:
            for m, value in matches[index : index + count]:
                start, end = m.span(1)
                edits.append((start, end, b"%d" % max(value + shift, 0)))
        index += count
    resources = list(_RESOURCE_ATTRIBUTES.finditer(body))
    if any(facts) and len(resources) != len(facts):
        return None
    for resource_facts, m in zip(facts, resources, strict=False):
        if resource_facts:
            inserted = _kv_json(resource_facts) + (b"" if m.group(1) else b",")
            edits.append((m.start(1), m.start(1), inserted))
    edits.sort(key=lambda e: e[0])
    out = []
    pos = 0
    for start, end, text in edits:
        out.append(body[pos:start])
        out.append(text)
        pos = end
    out.append(body[pos:])
    return b"".join(out)


def _reencode(body: bytes, shifts: Sequence[int], facts: Sequence[Sequence[Fact]]) -> bytes:
    request = decode_json(body)
    ordinal = 0
    for rs, resource_facts in zip(request.resource_spans, facts, strict=False):
        if resource_facts:
            if rs.resource is None:
                rs.resource = Resource()
            rs.resource.attributes[:0] = [_key_value(k, v) for k, v in resource_facts]
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                shift = shifts[ordinal]
                ordinal += 1
                if not shift:
                    continue
                if span.start_time_unix_nano:
                    span.start_time_unix_nano = max(span.start_time_unix_nano + shift, 0)
                if span.end_time_unix_nano:
                    span.end_time_unix_nano = max(span.end_time_unix_nano + shift, 0)
                for event in span.events:
                    if event.time_unix_nano:
                        event.time_unix_nano = max(event.time_unix_nano + shift, 0)
    return _ENCODER.encode(request)


def shift_protobuf(message: Any, shifts: Sequence[int], facts: Sequence[Sequence[Fact]]) -> bytes:
    """The adjusted copy of a parsed protobuf request (modified in place, then serialized)."""
    ordinal = 0
    for rs, resource_facts in zip(message.resource_spans, facts, strict=False):
        for key, value in resource_facts:
            kv = rs.resource.attributes.add()
            kv.key = key
            if isinstance(value, bool):
                kv.value.bool_value = value
            elif isinstance(value, int):
                kv.value.int_value = value
            elif isinstance(value, float):
                kv.value.double_value = value
            else:
                kv.value.string_value = value
    for rs in message.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                shift = shifts[ordinal]
                ordinal += 1
                if not shift:
                    continue
                if span.start_time_unix_nano:
                    span.start_time_unix_nano = max(span.start_time_unix_nano + shift, 0)
                if span.end_time_unix_nano:
                    span.end_time_unix_nano = max(span.end_time_unix_nano + shift, 0)
                for event in span.events:
                    if event.time_unix_nano:
                        event.time_unix_nano = max(event.time_unix_nano + shift, 0)
    data: bytes = message.SerializeToString()
    return data
