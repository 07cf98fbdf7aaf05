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
    >>> [(s.trace_id[:4], s.latest_ns) for s in scan.spans], scan.resource_sessions
    ([('abab', 9)], ['s1'])
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, Generic, TypeVar

import msgspec

from skewgate.wire.decode import (
    JSON,
    PROTOBUF,
    DecodeError,
    Limits,
    TooLarge,
    decode_json,
    validate,
)
from skewgate.wire.protobuf import WIRE_LEN, WireError, read_varint

__all__ = ["SESSION_ATTRIBUTE", "ScannedBatch", "ScannedSpan", "scan_request"]

SESSION_ATTRIBUTE: Final = "session.id"
_HEX: Final = frozenset("0123456789abcdef")
_UINT64: Final = 1 << 64
_INT64 = Annotated[int, msgspec.Meta(ge=-(1 << 63), le=(1 << 63) - 1)]


class ScannedSpan:
    """One accepted span: its identity, its newest client time and its own ``session.id``."""

    __slots__ = ("latest_ns", "ordinal", "resource", "session", "span_id", "trace_id")

    def __init__(
        self, ordinal: int, resource: int, trace_id: str, span_id: str, latest_ns: int,
        session: str | None,
    ) -> None:
        self.ordinal = ordinal  # position among all spans of the request, rejected included
        self.resource = resource  # index of its ResourceSpans
        self.trace_id = trace_id
        self.span_id = span_id
        self.latest_ns = latest_ns  # max of start, end and event times
        self.session = session  # the span's own session.id attribute, if any

    def __repr__(self) -> str:
        return f"ScannedSpan({self.ordinal}, {self.trace_id[:8]}…, {self.span_id})"


@dataclass(slots=True)
class ScannedBatch:
    """A checked request: accepted spans in document order, and what was rejected."""

    kind: str  # JSON or PROTOBUF
    body: bytes  # as decoded: the inflated request body
    spans: list[ScannedSpan]
    resource_sessions: list[str | None]  # each ResourceSpans' session.id attribute
    rejected_spans: int = 0
    errors: list[str] = field(default_factory=list)
    total_spans: int = 0  # accepted and rejected
    message: Any = None  # protobuf: the parsed upb message (for the adjusted copy)
    #: JSON decided span by span by the full decoder: ``ordinal``s are not positions in the
    #: body, so the adjusted copy is re-encoded rather than patched.
    decoded_in_full: bool = False
    #: JSON: per span of the body (rejected included), its non-zero times; and their sum
    #: (what :func:`skewgate.wire.shift.shift_json` checks its patch against).
    times: tuple[list[int], int] | None = None

    @property
    def span_count(self) -> int:
        return len(self.spans)

    @property
    def error_message(self) -> str:
        shown = "; ".join(self.errors[:5])
        more = len(self.errors) - 5
        return shown + (f"; and {more} more" if more > 0 else "")


def scan_request(data: bytes, kind: str, limits: Limits) -> ScannedBatch:
    """Check one inflated request body of media type ``kind`` (see the module docs)."""
    if kind == JSON:
        return _scan_json(data, limits)
    return _scan_protobuf(data, limits)


# --- JSON ---------------------------------------------------------------------------------


class _Value(msgspec.Struct, rename="camel", gc=False):
    string_value: str | None = None
    bool_value: bool | None = None
    int_value: _INT64 | None = None
    double_value: float | None = None
    # msgspec.Raw cannot be optional: an empty Raw is "absent".
    array_value: msgspec.Raw = msgspec.Raw()
    kvlist_value: msgspec.Raw = msgspec.Raw()
    bytes_value: str | None = None  # base64: checked by the full decoder (see _NESTED_HINTS)


class _LenientValue(msgspec.Struct, rename="camel", gc=False):
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
# Values the typed decoder does not check the way validate() does are named by these keys:
# nested ones, and bytes (base64 rules differ); "\u" is how a key could hide from a search.
_NESTED_HINTS: Final = (b"arrayValue", b"kvlistValue", b"bytesValue", b"\\u")


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


def _scan_json(data: bytes, limits: Limits) -> ScannedBatch:
    full = False
    try:
        request = _decode_json_with(_STRICT, data)
    except msgspec.ValidationError:
        # A value the typed decoder refuses (an int beyond int64, bytes that are not
        # base64) rejects its span only: the full decoder decides which.
        try:
            request = _decode_json_with(_LENIENT, data)
        except msgspec.ValidationError as exc:
            raise DecodeError(f"invalid OTLP/JSON: {exc}") from exc
        full = True
    if any(hint in data for hint in _NESTED_HINTS):
        nested = _nested_bytes(request)
        if nested > limits.max_nested_bytes:
            raise TooLarge(
                f"nested attribute values of {nested} bytes exceed {limits.max_nested_bytes}"
            )
        full = True
    total = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    if total > limits.max_spans:
        raise TooLarge(f"{total} spans in one request exceed the limit of {limits.max_spans}")
    if full:
        # Bounded now: the full decoder and validate() decide span by span.
        decoded = validate(decode_json(data), limits)
        scan = _scan_decoded(decoded.request.resource_spans, data, check=False)
        scan.rejected_spans = decoded.rejected_spans
        scan.errors = decoded.errors
        scan.total_spans = total
        scan.decoded_in_full = True
        return scan
    return _scan_decoded(request.resource_spans, data, check=True)


def _session(attributes: Iterable[Any]) -> str | None:
    for kv in attributes:
        if kv.key == SESSION_ATTRIBUTE and kv.value is not None and kv.value.string_value:
            return str(kv.value.string_value)
    return None


def _id_error(value: str, length: int, what: str) -> str | None:
    if len(value) != length or not _HEX.issuperset(value):
        return f"malformed {what} {value[:40]!r}"
    if value.count("0") == length:
        return f"all-zero {what}"
    return None


def _scan_decoded(resource_spans: list[Any], data: bytes, *, check: bool) -> ScannedBatch:
    """Facts of every span; with ``check``, the checks of ``validate()`` that can fail on a
    request the typed decoder accepted: ids, times, event times."""
    spans: list[ScannedSpan] = []
    resource_sessions: list[str | None] = []
    errors: list[str] = []
    counts: list[int] = []
    total = 0
    ordinal = 0
    for index, rs in enumerate(resource_spans):
        resource_sessions.append(_session(rs.resource.attributes) if rs.resource else None)
        for ss in rs.scope_spans:
            for span in ss.spans:
                ordinal += 1
                trace_id = span.trace_id.lower()
                span_id = span.span_id.lower()
                start, end = span.start_time_unix_nano, span.end_time_unix_nano
                latest = end if end > start else start
                n = (start != 0) + (end != 0)
                total += start + end
                bad_event = False
                for event in span.events:
                    t = event.time_unix_nano
                    if t:
                        n += 1
                        total += t
                    if t > latest:
                        latest = t
                    bad_event = bad_event or not 0 <= t < _UINT64
                counts.append(n)
                if check:
                    parent = span.parent_span_id.lower()
                    problem = (
                        _id_error(trace_id, 32, "traceId")
                        or _id_error(span_id, 16, "spanId")
                        or (parent and _id_error(parent, 16, "parentSpanId"))
                        or (
                            not (0 <= start < _UINT64 and 0 <= end < _UINT64)
                            and "time out of uint64 range"
                        )
                        or (end < start and "endTimeUnixNano before startTimeUnixNano")
                        or (bad_event and "event time out of uint64 range")
                        or None
                    )
                    if problem:
                        errors.append(f"span {span_id[:16]!r}: {problem}")
                        continue
                spans.append(
                    ScannedSpan(
                        ordinal - 1, index, trace_id, span_id, latest, _session(span.attributes)
                    )
                )
    return ScannedBatch(
        JSON, data, spans, resource_sessions, len(errors), errors, total_spans=ordinal,
        times=(counts, total),
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
    """The exact number of messages in a request, or ``budget + 1`` as soon as it is passed."""
    count = 0
    stack = [(_REQUEST, 0, len(data))]
    while stack:
        kind, pos, end = stack.pop()
        children = _CHILDREN[kind]
        while pos < end:
            key, pos = read_varint(data, pos, end)
            number, wire = key >> 3, key & 7
            if wire == WIRE_LEN:
                length, pos = read_varint(data, pos, end)
                child = children.get(number)
                if child is not None:
                    count += 1
                    if count > budget:
                        return count
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

    if message_bound(data) > limits.max_messages:
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
    spans: list[ScannedSpan] = []
    errors: list[str] = []
    ordinal = 0
    for index, rs in enumerate(message.resource_spans):
        for ss in rs.scope_spans:
            for span in ss.spans:
                ordinal += 1
                trace_id, span_id = span.trace_id, span.span_id
                start, end = span.start_time_unix_nano, span.end_time_unix_nano
                parent = span.parent_span_id
                problem = None
                if len(trace_id) != 16 or trace_id == _ZERO_TRACE:
                    problem = ("malformed" if len(trace_id) != 16 else "all-zero") + " traceId"
                elif len(span_id) != 8 or span_id == _ZERO_SPAN:
                    problem = ("malformed" if len(span_id) != 8 else "all-zero") + " spanId"
                elif parent and (len(parent) != 8 or parent == _ZERO_SPAN):
                    problem = ("malformed" if len(parent) != 8 else "all-zero") + " parentSpanId"
                elif end < start:
                    problem = "endTimeUnixNano before startTimeUnixNano"
                hex_span = span_id.hex()
                if problem:
                    errors.append(f"span {hex_span!r}: {problem}")
                    continue
                latest = end if end > start else start
                events = span.events
                if events:
                    for event in events:
                        if event.time_unix_nano > latest:
                            latest = event.time_unix_nano
                own = _pb_session(span.attributes) if span_sessions else None
                spans.append(ScannedSpan(ordinal - 1, index, trace_id.hex(), hex_span, latest, own))
    return ScannedBatch(
        PROTOBUF, data, spans, resource_sessions, len(errors), errors, ordinal, message
    )
