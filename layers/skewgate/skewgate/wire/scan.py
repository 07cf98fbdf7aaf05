"""What the clock needs from a trace request, decoded and checked with bounds. Pure: no I/O.

The ingest does not need a span's attributes, only its ids, times, event times and
``session.id``; the received body is stored as it came. :func:`scan_request` therefore decodes
that much, checks every span the way :func:`skewgate.wire.decode.validate` would (so the spans
it accepts are exactly the ones the full decoder accepts when the body is read back), and
bounds the work before any of it is done:

* JSON: one msgspec decoder whose attribute values are typed (strings, int64-ranged ints,
  base64 bytes) but whose nested ``arrayValue``/``kvlistValue`` stay ``msgspec.Raw`` — skipped
  in C, never materialised. Their total size is bounded (``max_nested_bytes``); a request that
  has any (or a value the typed decoder refuses) goes through the full decoder, which decides
  span by span, now that its cost is bounded.
* protobuf: upb parses, but a request whose possible message count (every byte that could be
  a message field's tag, counted in C) is over ``max_messages`` is first walked exactly and
  refused (413) beyond it: a 17 KB gzip bomb of 9 M empty key-values costs upb a second and
  half a gigabyte.

Example:
    >>> body = (b'{"resourceSpans":[{"resource":{"attributes":[{"key":"session.id","value":'
    ...         b'{"stringValue":"s1"}}]},"scopeSpans":[{"spans":[{"traceId":"' + b"AB" * 16 +
    ...         b'","spanId":"' + b"cd" * 8 + b'","startTimeUnixNano":"5",'
    ...         b'"endTimeUnixNano":"9"}]}]}]}')
    >>> scan = scan_request(body, JSON, Limits())
    >>> [t[:4] for t in scan.trace_ids], scan.latest, scan.resource_sessions
    (['abab'], [9], ['s1'])
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain, repeat
from typing import Annotated, Any, Final, Generic, TypeVar

import msgspec

from skewgate.wire.decode import (
    JSON,
    PROTOBUF,
    DecodeError,
    Limits,
    TooLarge,
    decode_json,
    id_error,
    joined_errors,
    validate,
)
from skewgate.wire.protobuf import WIRE_LEN, WireError, read_varint

__all__ = [
    "SESSION_ATTRIBUTE",
    "TYPED_UP_TO",
    "ScannedBatch",
    "count_messages",
    "message_bound",
    "scan_request",
]

SESSION_ATTRIBUTE: Final = "session.id"
_SESSION_JSON: Final = b'"session.id"'
_HEX_DIGITS: Final = b"0123456789abcdef"
_ZERO_TRACE_HEX: Final = "0" * 32
_ZERO_SPAN_HEX: Final = "0" * 16
#: Bodies up to this size decode their values with the rest (fastest); larger ones check their
#: values a chunk at a time (their peak memory stays near the body's size).
TYPED_UP_TO: Final = 1 << 20
_UINT64: Final = 1 << 64
_INT64 = Annotated[int, msgspec.Meta(ge=-(1 << 63), le=(1 << 63) - 1)]


@dataclass(slots=True)
class ScannedBatch:
    """A checked request: its accepted spans in document order, as columns, and what was
    rejected.

    Column ``i`` of ``trace_ids``, ``span_ids``, ``resources`` (the index of the span's
    ResourceSpans), ``latest`` (the max of its start, end and event times) and ``sessions``
    (its own ``session.id`` attribute) describe the i-th accepted span; ``sessions`` is
    ``None`` when no span carries one (the common case: the resource does).
    """

    kind: str  # JSON or PROTOBUF
    body: bytes  # as decoded: the inflated request body
    trace_ids: list[str]
    span_ids: list[str]
    resources: list[int]
    latest: list[int]
    sessions: list[str | None] | None
    resource_sessions: list[str | None]  # each ResourceSpans' session.id attribute
    rejected_spans: int = 0
    errors: list[str] = field(default_factory=list)
    total_spans: int = 0  # accepted and rejected
    #: Each accepted span's position among all spans of the body (``None``: no span was
    #: rejected, positions are 0..n-1).
    ordinals: list[int] | None = None
    message: Any = None  # protobuf: the parsed upb message (for the adjusted copy)
    #: JSON decided span by span by the full decoder: ordinals are not known, so the
    #: adjusted copy is re-encoded rather than patched.
    decoded_in_full: bool = False
    #: JSON: how many non-zero times the whole body holds, and their sum (what the adjusted
    #: copy's patch is checked against).
    times: tuple[int, int] | None = None
    #: JSON: the body holds a ``\\u`` escape (a key could be spelled with one).
    escaped: bool = False
    #: JSON: per span of the body (rejected included), how many non-zero times it holds.
    time_counts: list[int] | None = None
    #: protobuf: every span of ``message`` (rejected included), its start and end times, and
    #: the positions of those with events (what the adjusted copy sets).
    pb_times: tuple[list[Any], list[int], list[int], list[int]] | None = None

    @property
    def span_count(self) -> int:
        return len(self.trace_ids)

    @property
    def error_message(self) -> str:
        return joined_errors(self.errors)


def scan_request(
    data: bytes, kind: str, limits: Limits, *, typed_up_to: int = TYPED_UP_TO
) -> ScannedBatch:
    """Check one inflated request body of media type ``kind`` (see the module docs).

    JSON bodies over ``typed_up_to`` bytes check their attribute values a chunk at a time (a
    test can force either way; both accept and reject exactly the same spans).
    """
    if kind == JSON:
        return _scan_json(data, limits, typed_up_to)
    return _scan_protobuf(data, limits)


# --- JSON ---------------------------------------------------------------------------------


class _Value(msgspec.Struct, rename="camel", gc=False, forbid_unknown_fields=True):
    """A scalar value, typed as the full decoder types it. Anything else — a nested
    ``arrayValue``/``kvlistValue``, ``bytesValue`` (whose base64 rules differ), an unknown
    key, however its name is escaped — fails here, and the request goes the lenient way."""

    string_value: str | None = None
    bool_value: bool | None = None
    int_value: _INT64 | None = None
    double_value: float | None = None


class _LenientValue(msgspec.Struct, rename="camel", gc=False):
    # msgspec.Raw cannot be optional: an empty Raw is "absent".
    string_value: str | None = None
    bool_value: bool | None = None
    int_value: int | None = None
    double_value: float | None = None
    array_value: msgspec.Raw = msgspec.Raw()
    kvlist_value: msgspec.Raw = msgspec.Raw()
    bytes_value: str | None = None


V = TypeVar("V", _Value, _LenientValue)


# The request model of skewgate.wire.model, generic in what an AnyValue decodes to.
class _KeyValue(msgspec.Struct, Generic[V], gc=False):
    key: str = ""
    value: V | None = None


class _Event(msgspec.Struct, Generic[V], rename="camel", gc=False):
    time_unix_nano: int = 0
    name: str = ""
    attributes: list[_KeyValue[V]] = []
    dropped_attributes_count: int = 0


class _Link(msgspec.Struct, Generic[V], rename="camel", gc=False):
    trace_id: str = ""
    span_id: str = ""
    trace_state: str = ""
    attributes: list[_KeyValue[V]] = []
    dropped_attributes_count: int = 0
    flags: int = 0


class _Status(msgspec.Struct, gc=False):
    message: str = ""
    code: int = 0


class _Span(msgspec.Struct, Generic[V], rename="camel", gc=False):
    trace_id: str = ""
    span_id: str = ""
    trace_state: str = ""
    parent_span_id: str = ""
    flags: int = 0
    name: str = ""
    kind: int = 0
    start_time_unix_nano: int = 0
    end_time_unix_nano: int = 0
    attributes: list[_KeyValue[V]] = []
    dropped_attributes_count: int = 0
    events: list[_Event[V]] = []
    dropped_events_count: int = 0
    links: list[_Link[V]] = []
    dropped_links_count: int = 0
    status: _Status | None = None


class _Scope(msgspec.Struct, Generic[V], rename="camel", gc=False):
    name: str = ""
    version: str = ""
    attributes: list[_KeyValue[V]] = []
    dropped_attributes_count: int = 0


class _ScopeSpans(msgspec.Struct, Generic[V], rename="camel", gc=False):
    scope: _Scope[V] | None = None
    spans: list[_Span[V]] = []
    schema_url: str = ""


class _Resource(msgspec.Struct, Generic[V], rename="camel", gc=False):
    attributes: list[_KeyValue[V]] = []
    dropped_attributes_count: int = 0


class _ResourceSpans(msgspec.Struct, Generic[V], rename="camel", gc=False):
    resource: _Resource[V] | None = None
    scope_spans: list[_ScopeSpans[V]] = []
    schema_url: str = ""


class _TracesRequest(msgspec.Struct, Generic[V], rename="camel", gc=False):
    resource_spans: list[_ResourceSpans[V]] = []


# strict=False: OTLP/JSON allows int64 as a decimal string ("1795651409407000000").
_STRICT: Final = msgspec.json.Decoder(_TracesRequest[_Value], strict=False)
_LENIENT: Final = msgspec.json.Decoder(_TracesRequest[_LenientValue], strict=False)
# The same request with every attribute list left as raw JSON (skipped in C): a large body's
# values are then checked a megabyte at a time instead of all held at once.
class _LiteEvent(msgspec.Struct, rename="camel", gc=False):
    time_unix_nano: int = 0
    name: str = ""
    attributes: msgspec.Raw = msgspec.Raw(b"[]")
    dropped_attributes_count: int = 0


class _LiteLink(msgspec.Struct, rename="camel", gc=False):
    trace_id: str = ""
    span_id: str = ""
    trace_state: str = ""
    attributes: msgspec.Raw = msgspec.Raw(b"[]")
    dropped_attributes_count: int = 0
    flags: int = 0


class _LiteSpan(msgspec.Struct, rename="camel", gc=False):
    trace_id: str = ""
    span_id: str = ""
    trace_state: str = ""
    parent_span_id: str = ""
    flags: int = 0
    name: str = ""
    kind: int = 0
    start_time_unix_nano: int = 0
    end_time_unix_nano: int = 0
    attributes: msgspec.Raw = msgspec.Raw(b"[]")
    dropped_attributes_count: int = 0
    events: list[_LiteEvent] = []
    dropped_events_count: int = 0
    links: list[_LiteLink] = []
    dropped_links_count: int = 0
    status: _Status | None = None


class _LiteScope(msgspec.Struct, rename="camel", gc=False):
    name: str = ""
    version: str = ""
    attributes: msgspec.Raw = msgspec.Raw(b"[]")
    dropped_attributes_count: int = 0


class _LiteScopeSpans(msgspec.Struct, rename="camel", gc=False):
    scope: _LiteScope | None = None
    spans: list[_LiteSpan] = []
    schema_url: str = ""


class _LiteResource(msgspec.Struct, rename="camel", gc=False):
    attributes: msgspec.Raw = msgspec.Raw(b"[]")
    dropped_attributes_count: int = 0


class _LiteResourceSpans(msgspec.Struct, rename="camel", gc=False):
    resource: _LiteResource | None = None
    scope_spans: list[_LiteScopeSpans] = []
    schema_url: str = ""


class _LiteRequest(msgspec.Struct, rename="camel", gc=False):
    resource_spans: list[_LiteResourceSpans] = []


_LITE: Final = msgspec.json.Decoder(_LiteRequest, strict=False)
_ATTRIBUTES_STRICT: Final = msgspec.json.Decoder(list[list[_KeyValue[_Value]]], strict=False)
_ATTRIBUTES_LENIENT: Final = msgspec.json.Decoder(
    list[list[_KeyValue[_LenientValue]]], strict=False
)
_ONE_LIST: Final = msgspec.json.Decoder(list[_KeyValue[_LenientValue]], strict=False)
_ALL_LISTS: Final = msgspec.json.Decoder(list[list[_KeyValue[_LenientValue]]], strict=False)
_VALUE_CHUNK: Final = 256 << 10




def _escaped(data: bytes) -> bool:
    """Whether the body holds a ``\\u`` escape (a key could be spelled with one): a memchr
    for the backslash first, as OTel JSON rarely has any."""
    return b"\\" in data and b"\\u" in data


def _all_attributes(request: Any) -> Iterator[Any]:
    for rs in request.resource_spans:
        if rs.resource is not None:
            yield from rs.resource.attributes
        for ss in rs.scope_spans:
            if ss.scope is not None:
                yield from ss.scope.attributes
            for span in ss.spans:
                yield from span.attributes
                for event in span.events:
                    yield from event.attributes
                for link in span.links:
                    yield from link.attributes


def _nested_bytes(request: Any) -> int:
    total = 0
    for kv in _all_attributes(request):
        value = kv.value
        if value is not None:
            total += len(value.array_value) + len(value.kvlist_value)
    return total


def _decode_json_with(decoder: msgspec.json.Decoder[Any], data: bytes) -> Any:
    try:
        return decoder.decode(data)
    except RecursionError:
        raise DecodeError("invalid OTLP/JSON: nested too deeply") from None
    except msgspec.ValidationError:
        raise
    except msgspec.DecodeError as exc:
        raise DecodeError(f"invalid OTLP/JSON: {exc}") from exc


def _raw_attribute_lists(request: Any) -> Iterator[bytes]:
    for rs in request.resource_spans:
        if rs.resource is not None:
            yield rs.resource.attributes
        for ss in rs.scope_spans:
            if ss.scope is not None:
                yield ss.scope.attributes
            for span in ss.spans:
                yield span.attributes
                for event in span.events:
                    yield event.attributes
                for link in span.links:
                    yield link.attributes


def _check_values(request: Any) -> tuple[bool, int]:
    """Decode every attribute list of a lite request a chunk at a time: whether the typed
    decoder accepts them all, and if not, how many bytes of nesting they hold."""
    chunk: list[bytes] = []
    size = 0
    ok = True
    nested_bytes = 0

    def flush() -> None:
        nonlocal ok, nested_bytes
        joined = b"[" + b",".join(chunk) + b"]"
        try:
            lists = _decode_json_with(_ATTRIBUTES_STRICT if ok else _ATTRIBUTES_LENIENT, joined)
        except msgspec.ValidationError:
            ok = False
            try:
                lists = _decode_json_with(_ATTRIBUTES_LENIENT, joined)
            except msgspec.ValidationError as exc:
                raise DecodeError(f"invalid OTLP/JSON: {exc}") from exc
        if not ok:  # the typed decoder admits no nesting: only lenient chunks can hold any
            for attributes in lists:
                for kv in attributes:
                    if kv.value is not None:
                        nested_bytes += len(kv.value.array_value) + len(kv.value.kvlist_value)

    for raw in _raw_attribute_lists(request):
        if raw != b"[]":
            chunk.append(raw)
            size += len(raw)
            if size >= _VALUE_CHUNK:
                flush()
                chunk, size = [], 0
    if chunk:
        flush()
    return ok, nested_bytes


def _scan_json(data: bytes, limits: Limits, typed_up_to: int = TYPED_UP_TO) -> ScannedBatch:
    if len(data) > typed_up_to:
        return _scan_large_json(data, limits)
    full = False
    try:
        request = _decode_json_with(_STRICT, data)
    except msgspec.ValidationError:
        full = True
    if full:
        # A value the typed decoder refuses (nested, bytes, an int beyond int64) is decided
        # span by span by the full decoder, once the cost of its nesting is known bounded.
        try:
            request = _decode_json_with(_LENIENT, data)
        except msgspec.ValidationError as exc:
            raise DecodeError(f"invalid OTLP/JSON: {exc}") from exc
        nested = _nested_bytes(request)
        if nested > limits.max_nested_bytes:
            raise TooLarge(
                f"nested attribute values of {nested} bytes exceed {limits.max_nested_bytes}"
            )
    escaped = _escaped(data)
    total = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    if total > limits.max_spans:
        raise TooLarge(f"{total} spans in one request exceed the limit of {limits.max_spans}")
    if full:
        # Bounded now: the full decoder and validate() decide span by span.
        decoded = validate(decode_json(data), limits)
        scan = _scan_decoded(decoded.request, data, check=False, escaped=escaped)
        scan.rejected_spans = decoded.rejected_spans
        scan.errors = decoded.errors
        scan.total_spans = total
        scan.decoded_in_full = True
        scan.escaped = escaped
        return scan
    scan = _scan_decoded(request, data, check=True, escaped=escaped)
    return scan


def _scan_large_json(data: bytes, limits: Limits) -> ScannedBatch:
    """:func:`_scan_json` for large bodies: attribute values checked a chunk at a time."""
    try:
        request = _decode_json_with(_LITE, data)
    except msgspec.ValidationError as exc:
        raise DecodeError(f"invalid OTLP/JSON: {exc}") from exc
    escaped = _escaped(data)
    typed, nested = _check_values(request)
    if nested > limits.max_nested_bytes:
        raise TooLarge(
            f"nested attribute values of {nested} bytes exceed {limits.max_nested_bytes}"
        )
    total = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    if total > limits.max_spans:
        raise TooLarge(f"{total} spans in one request exceed the limit of {limits.max_spans}")
    if not typed:
        del request
        decoded = validate(decode_json(data), limits)
        scan = _scan_decoded(decoded.request, data, check=False, escaped=escaped)
        scan.rejected_spans = decoded.rejected_spans
        scan.errors = decoded.errors
        scan.total_spans = total
        scan.decoded_in_full = True
        return scan
    return _scan_decoded(request, data, check=True, escaped=escaped, raw_attributes=True)


def _session(attributes: Iterable[Any]) -> str | None:
    for kv in attributes:
        if kv.key == SESSION_ATTRIBUTE and kv.value is not None and kv.value.string_value:
            return str(kv.value.string_value)
    return None


def _flatten(request: Any) -> tuple[list[Any], list[int]]:
    """Every span of a request in document order, and the index of its ResourceSpans."""
    spans: list[Any] = []
    resources: list[int] = []
    for index, rs in enumerate(request.resource_spans):
        for ss in rs.scope_spans:
            if ss.spans:
                spans.extend(ss.spans)
                resources.extend([index] * len(ss.spans))
    return spans, resources


def _non_hex(text: str) -> bytes:
    """The characters of ``text`` that are not lowercase hex digits (UTF-8, one ``?`` per
    unencodable one): deleted in C, where a regex would walk them one by one."""
    return text.encode("utf-8", "replace").translate(None, _HEX_DIGITS)


def _span_latest(starts: list[int], ends: list[int]) -> list[int]:
    """Each span's later time of start and end."""
    # A span that ends before it starts is rejected; every other one is latest at its end.
    return list(ends) if not any(map(operator.lt, ends, starts)) else list(map(max, starts, ends))


def _event_columns(
    spans: list[Any], starts: list[int], ends: list[int]
) -> tuple[list[int], list[int], list[int]]:
    """Per span its latest time (start, end or event) and its count of non-zero times; and
    every event time in document order. Whole columns at a time: only
    a span with an event after its end, or an unset event time, is looked at alone."""
    latest = _span_latest(starts, ends)
    counts = list(map(operator.add, map(bool, starts), map(bool, ends)))
    per_span = [span.events for span in spans]
    sizes = list(map(len, per_span))
    event_times = [event.time_unix_nano for event in chain.from_iterable(per_span)]
    if not event_times:
        return latest, counts, event_times
    def owners() -> Iterator[int]:  # the span of each event time
        return chain.from_iterable(map(repeat, range(len(spans)), sizes))

    if 0 in event_times:
        for owner, time in zip(owners(), event_times, strict=True):
            counts[owner] += time != 0
    else:
        counts = list(map(operator.add, counts, sizes))
    if any(map(operator.gt, event_times, chain.from_iterable(map(repeat, latest, sizes)))):
        for owner, time in zip(owners(), event_times, strict=True):
            if time > latest[owner]:
                latest[owner] = time
    return latest, counts, event_times


def _columns(spans: list[Any], resources: list[int], check: bool, out: _Columns) -> None:
    """Append the accepted spans (all of the request's, in document order, with their
    ResourceSpans indices); bulk checks first, span by span only when one fails."""
    n = len(spans)
    trace_ids = [span.trace_id for span in spans]
    span_ids = [span.span_id for span in spans]
    starts = [span.start_time_unix_nano for span in spans]
    ends = [span.end_time_unix_nano for span in spans]
    latest, counts, event_times = _event_columns(spans, starts, ends)
    out.time_counts.extend(counts)
    out.times_count += 2 * n - starts.count(0) - ends.count(0) + len(event_times)
    out.times_count -= event_times.count(0)
    out.times_sum += sum(starts) + sum(ends) + sum(event_times)
    good = True
    if check:
        joined_trace, joined_span = "".join(trace_ids), "".join(span_ids)
        parents = [span.parent_span_id for span in spans]
        joined_parents = "".join(parents)
        good = (
            len(joined_trace) == 32 * n
            and len(joined_span) == 16 * n
            and len(joined_parents) == 16 * (n - parents.count(""))
            and not _non_hex(joined_trace + joined_span + joined_parents)
            and _ZERO_TRACE_HEX not in trace_ids
            and _ZERO_SPAN_HEX not in span_ids
            and _ZERO_SPAN_HEX not in parents
            and (not n or (min(starts) >= 0 and min(ends) >= 0 and max(ends) < _UINT64
                           and max(starts) < _UINT64))
            and not any(map(operator.lt, ends, starts))
            and (not event_times or (min(event_times) >= 0 and max(event_times) < _UINT64))
        )
    session_of = (
        [_session(out.attributes_of(span.attributes)) for span in spans]
        if out.span_sessions
        else None
    )
    if good:
        base = out.ordinal
        if out.ordinals is not None:
            out.ordinals.extend(range(base, base + n))
        out.trace_ids.extend(trace_ids)  # the check proved them lowercase hex already
        out.span_ids.extend(span_ids)
        out.resources.extend(resources)
        out.latest.extend(latest)
        if session_of is not None:
            out.sessions.extend(session_of)
        out.ordinal += n
        return
    for i, span in enumerate(spans):  # a check failed: find which spans, reject them alone
        trace_id, span_id = trace_ids[i].lower(), span_ids[i].lower()
        parent = span.parent_span_id.lower()
        start, end = starts[i], ends[i]
        problem = (
            id_error(trace_id, 32, "traceId")
            or id_error(span_id, 16, "spanId")
            or (parent and id_error(parent, 16, "parentSpanId"))
            or (not (0 <= start < _UINT64 and 0 <= end < _UINT64) and "time out of uint64 range")
            or (end < start and "endTimeUnixNano before startTimeUnixNano")
            or (
                any(not 0 <= e.time_unix_nano < _UINT64 for e in span.events)
                and "event time out of uint64 range"
            )
            or None
        )
        out.ordinal += 1
        if problem:
            out.errors.append(f"span {span_id[:16]!r}: {problem}")
            if out.ordinals is None:
                out.ordinals = list(range(len(out.trace_ids)))
            continue
        if out.ordinals is not None:
            out.ordinals.append(out.ordinal - 1)
        out.trace_ids.append(trace_id)
        out.span_ids.append(span_id)
        out.resources.append(resources[i])
        out.latest.append(latest[i])
        if session_of is not None:
            out.sessions.append(session_of[i])


def _typed_attributes(attributes: Any) -> Any:
    return attributes


def _decoded_attributes(attributes: bytes) -> Any:
    return _ONE_LIST.decode(attributes)


@dataclass(slots=True)
class _Columns:
    span_sessions: bool
    attributes_of: Any = _typed_attributes
    trace_ids: list[str] = field(default_factory=list)
    span_ids: list[str] = field(default_factory=list)
    resources: list[int] = field(default_factory=list)
    latest: list[int] = field(default_factory=list)
    sessions: list[str | None] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    ordinals: list[int] | None = None
    ordinal: int = 0
    times_count: int = 0
    times_sum: int = 0
    time_counts: list[int] = field(default_factory=list)
    pb_times: Any = None


def _scan_decoded(
    request: Any, data: bytes, *, check: bool, escaped: bool = True,
    raw_attributes: bool = False,
) -> ScannedBatch:
    """Facts of every span; with ``check``, the checks of ``validate()`` that can fail on a
    request the typed decoder accepted: ids, times, event times. ``raw_attributes``: the
    request's attribute lists are raw JSON (the lite model), decoded where a session is read."""
    attributes_of = _decoded_attributes if raw_attributes else _typed_attributes
    if raw_attributes:  # every resource's attributes in one decode
        lists = _ALL_LISTS.decode(
            b"[" + b",".join(
                rs.resource.attributes if rs.resource else b"[]" for rs in request.resource_spans
            ) + b"]"
        )
        resource_sessions = [_session(attributes) for attributes in lists]
    else:
        resource_sessions = [
            _session(rs.resource.attributes) if rs.resource else None
            for rs in request.resource_spans
        ]
    # A span's own session.id only needs looking for if the key occurs beyond the resources
    # ("\u" could spell it otherwise).
    span_sessions = escaped or data.count(_SESSION_JSON) > sum(
        s is not None for s in resource_sessions
    )
    out = _Columns(span_sessions, attributes_of)
    spans, resources = _flatten(request)
    if spans:
        _columns(spans, resources, check, out)
    return ScannedBatch(
        JSON, data, out.trace_ids, out.span_ids, out.resources, out.latest,
        out.sessions if span_sessions else None, resource_sessions, len(out.errors),
        out.errors, out.ordinal, out.ordinals,
        times=(out.times_count, out.times_sum), escaped=escaped, time_counts=out.time_counts,
    )


# --- protobuf -----------------------------------------------------------------------------

# Tags (one byte each) of every length-delimited field that holds a message in
# ExportTraceServiceRequest and below: each message upb allocates starts with one of them.
_MESSAGE_TAGS: Final = bytes([0x0A, 0x12, 0x1A, 0x22, 0x2A, 0x32, 0x4A, 0x5A, 0x6A, 0x7A])

# (message, field number) -> the message type a LEN field holds.
_REQUEST, _RESOURCE_SPANS, _RESOURCE, _SCOPE_SPANS, _SCOPE, _SPAN = range(6)
_EVENT, _LINK, _STATUS, _KEY_VALUE, _ANY_VALUE, _ARRAY, _KVLIST = range(6, 13)
_CHILDREN: Final[dict[int, dict[int, int]]] = {
    _REQUEST: {1: _RESOURCE_SPANS},
    _RESOURCE_SPANS: {1: _RESOURCE, 2: _SCOPE_SPANS},
    _RESOURCE: {1: _KEY_VALUE},
    _SCOPE_SPANS: {1: _SCOPE, 2: _SPAN},
    _SCOPE: {3: _KEY_VALUE},
    _SPAN: {9: _KEY_VALUE, 11: _EVENT, 13: _LINK, 15: _STATUS},
    _EVENT: {3: _KEY_VALUE},
    _LINK: {4: _KEY_VALUE},
    _STATUS: {},
    _KEY_VALUE: {2: _ANY_VALUE},
    _ANY_VALUE: {5: _ARRAY, 6: _KVLIST},
    _ARRAY: {1: _ANY_VALUE},
    _KVLIST: {1: _KEY_VALUE},
}


def message_bound(data: bytes) -> int:
    """An upper bound on the messages a protobuf request holds, counted in C.

    >>> message_bound(bytes([0x0A, 0x02, 0x12, 0x00]))
    2
    """
    return len(data) - len(data.translate(None, _MESSAGE_TAGS))


def count_messages(data: bytes, budget: int) -> int:
    """The exact number of messages in a request, or ``budget + 1`` as soon as it is passed.

    Only called when :func:`message_bound` is over budget: its cost is bounded by the budget
    (about a third of a second for a million messages), never by what the body claims.
    """
    count = 0
    stack = [(_REQUEST, 0, len(data))]
    while stack:
        kind, pos, end = stack.pop()
        children = _CHILDREN[kind]
        while pos < end:
            key = data[pos]
            if key < 0x80:  # one-byte keys: every field of the OTLP trace schema
                pos += 1
            else:
                key, pos = read_varint(data, pos, end)
            wire = key & 7
            if wire == WIRE_LEN:
                length = data[pos] if pos < end else 0x80
                if length < 0x80:
                    pos += 1
                else:
                    length, pos = read_varint(data, pos, end)
                child = children.get(key >> 3)
                if child is not None:
                    count += 1
                    if count > budget:
                        return count
                    if length:  # an empty message holds nothing to walk
                        stack.append((child, pos, pos + length))
                pos += length
            elif wire == 0:
                _, pos = read_varint(data, pos, end)
            elif wire == 1:
                pos += 8
            elif wire == 5:
                pos += 4
            else:
                raise WireError(f"unsupported wire type {wire}")
            if pos > end:
                raise WireError("field runs past the end of its message")
    return count


_ZERO_TRACE: Final = bytes(16)
_ZERO_SPAN: Final = bytes(8)
_SESSION_KEY: Final = SESSION_ATTRIBUTE.encode()


def _pb_session(attributes: Any) -> str | None:
    for kv in attributes:
        if kv.key == SESSION_ATTRIBUTE and kv.value.WhichOneof("value") == "string_value":
            text: str = kv.value.string_value
            if text:
                return text
    return None


def _scan_protobuf(data: bytes, limits: Limits) -> ScannedBatch:
    from google.protobuf.message import DecodeError as PbDecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    # Every message costs its parent a tag and a length byte at least: a body of up to twice
    # the budget cannot exceed it, and is not counted at all.
    if len(data) > 2 * limits.max_messages and message_bound(data) > limits.max_messages:
        try:
            count = count_messages(data, limits.max_messages)
        except WireError as exc:
            raise DecodeError(f"invalid OTLP/protobuf: {exc}") from exc
        if count > limits.max_messages:
            raise TooLarge(f"the request holds more than {limits.max_messages} messages")
    try:
        message = ExportTraceServiceRequest.FromString(data)
    except (PbDecodeError, RuntimeError, ValueError, RecursionError) as exc:
        raise DecodeError(f"invalid OTLP/protobuf: {exc}") from exc
    total = sum(len(ss.spans) for rs in message.resource_spans for ss in rs.scope_spans)
    if total > limits.max_spans:
        raise TooLarge(f"{total} spans in one request exceed the limit of {limits.max_spans}")
    resource_sessions = [
        _pb_session(rs.resource.attributes) if rs.HasField("resource") else None
        for rs in message.resource_spans
    ]
    # A span's own session.id only needs looking for if the key occurs beyond the resources.
    span_sessions = data.count(_SESSION_KEY) > sum(s is not None for s in resource_sessions)
    out = _Columns(span_sessions)
    spans, resources = _flatten(message)
    if spans:
        _pb_columns(spans, resources, out)
    return ScannedBatch(
        PROTOBUF, data, out.trace_ids, out.span_ids, out.resources, out.latest,
        out.sessions if span_sessions else None, resource_sessions, len(out.errors),
        out.errors, out.ordinal, out.ordinals, message, pb_times=out.pb_times,
    )


def _pb_columns(spans: list[Any], resources: list[int], out: _Columns) -> None:
    """The protobuf twin of :func:`_columns` (upb guarantees the uint64 ranges)."""
    n = len(spans)
    trace_ids = [span.trace_id for span in spans]
    span_ids = [span.span_id for span in spans]
    parents = [span.parent_span_id for span in spans]
    starts = [span.start_time_unix_nano for span in spans]
    ends = [span.end_time_unix_nano for span in spans]
    latest = _span_latest(starts, ends)
    with_events = []
    for i, span in enumerate(spans):  # upb wraps each event it hands out: one pass, no list
        events = span.events
        if events:
            with_events.append(i)
            top = max(event.time_unix_nano for event in events)
            if top > latest[i]:
                latest[i] = top
    # What the adjusted copy shifts, per span of the body, without reading it all again.
    out.pb_times = (spans, starts, ends, with_events)
    joined_parents = b"".join(parents)
    good = (
        len(b"".join(trace_ids)) == 16 * n
        and len(b"".join(span_ids)) == 8 * n
        and len(joined_parents) == 8 * (n - parents.count(b""))
        and _ZERO_TRACE not in trace_ids
        and _ZERO_SPAN not in span_ids
        and _ZERO_SPAN not in parents
        and not any(map(operator.lt, ends, starts))
    )
    session_of = [_pb_session(span.attributes) for span in spans] if out.span_sessions else None
    for i in range(n) if not good else ():
        trace_id, span_id, parent = trace_ids[i], span_ids[i], parents[i]
        problem = None
        if len(trace_id) != 16 or trace_id == _ZERO_TRACE:
            problem = ("malformed" if len(trace_id) != 16 else "all-zero") + " traceId"
        elif len(span_id) != 8 or span_id == _ZERO_SPAN:
            problem = ("malformed" if len(span_id) != 8 else "all-zero") + " spanId"
        elif parent and (len(parent) != 8 or parent == _ZERO_SPAN):
            problem = ("malformed" if len(parent) != 8 else "all-zero") + " parentSpanId"
        elif ends[i] < starts[i]:
            problem = "endTimeUnixNano before startTimeUnixNano"
        out.ordinal += 1
        if problem:
            out.errors.append(f"span {span_id.hex()!r}: {problem}")
            if out.ordinals is None:
                out.ordinals = list(range(len(out.trace_ids)))
            continue
        if out.ordinals is not None:
            out.ordinals.append(out.ordinal - 1)
        out.trace_ids.append(trace_id.hex())
        out.span_ids.append(span_id.hex())
        out.resources.append(resources[i])
        out.latest.append(latest[i])
        if session_of is not None:
            out.sessions.append(session_of[i])
    if good:
        if out.ordinals is not None:
            out.ordinals.extend(range(out.ordinal, out.ordinal + n))
        out.ordinal += n
        out.trace_ids.extend(map(bytes.hex, trace_ids))
        out.span_ids.extend(map(bytes.hex, span_ids))
        out.resources.extend(resources)
        out.latest.extend(latest)
        if session_of is not None:
            out.sessions.extend(session_of)
