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

import operator
import re
from collections.abc import Iterator, Sequence
from itertools import chain, repeat
from typing import Any, Final

import msgspec

from skewgate.wire.decode import decode_json
from skewgate.wire.encode import key_value
from skewgate.wire.model import Resource

__all__ = [
    "STREAM_ABOVE",
    "Fact",
    "PatchMismatch",
    "shift_json",
    "shift_protobuf",
    "shifted_json_pieces",
    "time_counts",
]

#: One resource attribute of the adjusted copy: ``(key, value)``.
Fact = tuple[str, str | float | int | bool]

# Every time field of the model ends in "imeUnixNano" (startTime…, endTime…, events' time…):
# a literal the regex engine finds fast. A stray key ending so counts too, and fails the check.
_TIME: Final = re.compile(rb'(imeUnixNano"[ \t\r\n]*:[ \t\r\n]*"?)([0-9]+)')
_WS: Final = rb"[ \t\r\n]*"
# What every OTel SDK writes: the key, then the time as a quoted string of 19 digits (every
# instant from 2001-09-09 to 2286-11-20 in nanoseconds).
_QUOTED_TIME: Final = re.compile(rb'imeUnixNano":"([0-9]{19})(?=")')
_KEY_AND_DIGITS: Final = b'imeUnixNano":"%d'
_LOWEST: Final = 10**18
_HIGHEST: Final = 10**19 - 1
#: Bodies larger than this are patched as a stream of pieces (:func:`shifted_json_pieces`).
STREAM_ABOVE: Final = 1 << 20
_RESOURCE_ATTRIBUTES: Final = re.compile(
    rb'"resource"' + _WS + rb":" + _WS + rb"\{" + _WS + rb'"attributes"' + _WS + rb":" + _WS
    + rb"\[" + _WS + rb"(\]?)"
)
_ENCODER: Final = msgspec.json.Encoder()


def _kv_json(facts: Sequence[Fact]) -> bytes:
    return b",".join(_ENCODER.encode(key_value(key, value)) for key, value in facts)


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
    shift: int | Sequence[int],
    facts: Sequence[Sequence[Fact]],
    *,
    times: tuple[int, int] | None = None,
    counts: Sequence[int] | None = None,
    escaped: bool | None = None,
) -> bytes | bytearray:
    """The adjusted copy of a JSON request (see the module docs).

    ``shift`` is one shift for every span, or one per span of the body in document order (then
    ``counts`` are the spans' non-zero times, as :func:`time_counts` gives them). ``times``
    (how many non-zero times the body holds, and their sum) is what the patch is checked
    against; ``facts[i]`` go first into the attributes of the i-th resource. The body is
    patched in place when every time field and resource is found by its literal key (no
    ``\\u`` escapes, attributes first in each resource, as every OTel SDK writes them);
    otherwise it is decoded and re-encoded with the same content. ``escaped``: whether the
    body holds a ``\\u`` escape, if the caller already knows.
    """
    if isinstance(shift, int):
        shifts = None
    else:
        shifts = shift
        if counts is None:
            counts, total = time_counts(decode_json(body))
            times = (sum(counts), total)
    if times is None:
        found, total = time_counts(decode_json(body))
        times = (sum(found), total)
    patched = None
    if not (b"\\u" in body if escaped is None else escaped):
        uniform = shift if isinstance(shift, int) else 0
        patched = _patch(body, uniform, shifts, counts, facts, times)
    if patched is not None:
        return patched
    if shifts is None:
        assert isinstance(shift, int)
        ordered = [shift] * len(time_counts(decode_json(body))[0])
    else:
        ordered = list(shifts)
    return _reencode(body, ordered, facts)


def _fact_insertions(
    body: bytes, facts: Sequence[Sequence[Fact]]
) -> list[tuple[int, bytes]] | None:
    """Where each resource's facts go (the front of its attributes), and their JSON."""
    resources = []
    pos = body.find(b'"resource"')
    while pos >= 0:  # find the literal, then match there: faster than a search from '"'
        m = _RESOURCE_ATTRIBUTES.match(body, pos)
        if m is not None:
            resources.append(m)
        pos = body.find(b'"resource"', pos + 10)
    if len(resources) != len(facts):
        return None
    return [
        (m.start(1), _kv_json(resource_facts) + (b"" if m.group(1) else b","))
        for resource_facts, m in zip(facts, resources, strict=True)
        if resource_facts
    ]


def _insert_facts(body: bytes, facts: Sequence[Sequence[Fact]]) -> bytes | None:
    if not any(facts):
        return body
    insertions = _fact_insertions(body, facts)
    if insertions is None:
        return None
    view = memoryview(body)  # joined from views: the body is copied once
    out: list[bytes | memoryview] = []
    pos = 0
    for at, text in insertions:
        out.append(view[pos:at])
        out.append(text)
        pos = at
    out.append(view[pos:])
    return b"".join(out)


def _patch(
    body: bytes, shift: int, shifts: Sequence[int] | None, counts: Sequence[int] | None,
    facts: Sequence[Sequence[Fact]], times: tuple[int, int],
) -> bytes | bytearray | None:
    if shifts is None and len(body) > STREAM_ABOVE:
        try:
            return b"".join(shifted_json_pieces(body, shift, facts, times))
        except PatchMismatch:
            pass
    with_facts = _insert_facts(body, facts)
    if with_facts is None:
        return None
    quoted = _patch_quoted(with_facts, shift, shifts, counts, times)
    if quoted is not None:
        return quoted
    parts = _TIME.split(with_facts)  # text, key, digits, text, key, digits, ..., text
    digits = parts[2::3]
    values = list(map(int, digits))
    if len(values) - values.count(0) != times[0] or sum(values) != times[1]:
        return None  # a time field under another spelling, or one outside the model
    if shifts is None:
        moved = list(map(shift.__add__, values))
        if values.count(0) == 0 and min(moved, default=1) > 0:  # every time set, none < 0
            parts[2::3] = map(b"%d".__mod__, moved)
        else:
            parts[2::3] = [
                b"%d" % (m if m > 0 else 0) if v else d
                for v, m, d in zip(values, moved, digits, strict=True)
            ]
        return b"".join(parts)
    assert counts is not None
    nonzero = iter(_per_time(shifts, counts))
    patched = []
    for v, d in zip(values, digits, strict=True):
        if v:
            s = next(nonzero)
            patched.append(b"%d" % (v + s if v + s > 0 else 0) if s else d)
        else:
            patched.append(d)
    parts[2::3] = patched
    return b"".join(parts)


def _per_time(shifts: Sequence[int], counts: Sequence[int]) -> list[int]:
    """Each span's shift, once per non-zero time it holds: the shifts in time order."""
    return list(chain.from_iterable(map(repeat, shifts, counts)))


def _patch_quoted(
    body: bytes, shift: int, shifts: Sequence[int] | None, counts: Sequence[int] | None,
    times: tuple[int, int],
) -> bytes | None:
    """:func:`_patch` for a body whose every time is a quoted 19-digit string right after its
    key, and stays one when shifted (else ``None``: unset times, another spelling, a stray
    key). One group per match and the key printed with the digits: a fifth less than the
    general split."""
    parts = _QUOTED_TIME.split(body)  # text, digits, text, digits, ..., text
    values = list(map(int, parts[1::2]))
    if len(values) != times[0] or sum(values) != times[1]:
        return None
    if shifts is None:
        moved = list(map(shift.__add__, values))
    else:
        assert counts is not None
        per_time = _per_time(shifts, counts)
        if len(per_time) != len(values):
            return None
        moved = list(map(operator.add, values, per_time))
    if not moved or min(moved) < _LOWEST or max(moved) > _HIGHEST:
        return None
    parts[1::2] = map(_KEY_AND_DIGITS.__mod__, moved)
    return b"".join(parts)


class PatchMismatch(ValueError):
    """The body's time fields are not the ones the scan counted (another spelling of a key,
    a key outside the model): the caller takes the decoding way instead."""


def shifted_json_pieces(
    body: bytes, shift: int, facts: Sequence[Sequence[Fact]], times: tuple[int, int],
    *, piece_bytes: int = 1 << 16,
) -> Iterator[bytes]:
    """The adjusted copy for one shift of every time, as consecutive pieces of about
    ``piece_bytes``: for large bodies, fed to the compressor as they come, so no whole copy
    is ever held. Raises :class:`PatchMismatch` (possibly after some pieces) when the body's
    times are not ``times``; nothing is then to be kept of what was yielded."""
    insertions = _fact_insertions(body, facts) if any(facts) else []
    if insertions is None:
        raise PatchMismatch("a resource's attributes are not where facts can be inserted")
    insertions.append((len(body), b""))  # a sentinel past every time
    pending = iter(insertions)
    at, text = next(pending)
    out: list[bytes] = []
    size = pos = count = total = 0
    for m in _TIME.finditer(body):
        start, end = m.span(2)
        while at <= start:
            out += (body[pos:at], text)
            pos = at
            at, text = next(pending)
        value = int(body[start:end])
        if not value:
            continue
        count += 1
        total += value
        out += (body[pos:start], b"%d" % (value + shift if value + shift > 0 else 0))
        size += start - pos
        pos = end
        if size >= piece_bytes:
            yield b"".join(out)
            out.clear()
            size = 0
    if (count, total) != tuple(times):
        raise PatchMismatch(f"{count} times summing to {total}, the scan counted {times}")
    while True:
        out += (body[pos:at], text)
        pos = at
        if at >= len(body):
            break
        at, text = next(pending)
    yield b"".join(out)


def _reencode(body: bytes, shifts: Sequence[int], facts: Sequence[Sequence[Fact]]) -> bytes:
    request = decode_json(body)
    ordinal = 0
    for rs, resource_facts in zip(request.resource_spans, facts, strict=False):
        if resource_facts:
            if rs.resource is None:
                rs.resource = Resource()
            rs.resource.attributes[:0] = [key_value(k, v) for k, v in resource_facts]
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


def shift_protobuf(
    message: Any,
    shifts: Sequence[int],
    facts: Sequence[Sequence[Fact]],
    times: tuple[list[Any], list[int], list[int], list[int]] | None = None,
) -> bytes:
    """The adjusted copy of a parsed protobuf request (modified in place, then serialized).

    ``times`` is what the scan read of the same message: every span (document order), its
    start and end, and which ones hold events; without it they are read here.
    """
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
    if times is None:
        spans = [span for rs in message.resource_spans for ss in rs.scope_spans
                 for span in ss.spans]
        starts = [span.start_time_unix_nano for span in spans]
        ends = [span.end_time_unix_nano for span in spans]
        with_events = [i for i, span in enumerate(spans) if span.events]
    else:
        spans, starts, ends, with_events = times
    for span, start, end, shift in zip(spans, starts, ends, shifts, strict=True):
        if shift:
            if start:
                span.start_time_unix_nano = start + shift if start + shift > 0 else 0
            if end:
                span.end_time_unix_nano = end + shift if end + shift > 0 else 0
    for i in with_events:
        shift = shifts[i]
        if shift:
            for event in spans[i].events:
                t = event.time_unix_nano
                if t:
                    event.time_unix_nano = t + shift if t + shift > 0 else 0
    data: bytes = message.SerializeToString()
    return data
