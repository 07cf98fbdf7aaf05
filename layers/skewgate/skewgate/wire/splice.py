"""Joining, merging and splitting serialized ``ExportTraceServiceRequest`` messages. Pure.

The forwarder never decodes a span: the stored items are already protobuf requests, and
requests concatenate (``resource_spans`` is a repeated field). Walking the outer three levels
of the wire format (request → ``ResourceSpans`` → ``ScopeSpans``) is enough to

- merge: put the spans of every item that shares a resource and a scope under one
  ``ResourceSpans``/``ScopeSpans`` (browser batches all carry the same resource, so a stream
  batch of 100 items becomes one resource, not 100 copies of it);
- split: cut a request that a receiver refused as too large into two halves, at the highest
  level that has more than one entry (resources, then scopes, then spans);
- count the spans of a request.

Spans are copied as opaque byte ranges. Field numbers are those of
``opentelemetry/proto/collector/trace/v1/trace_service.proto`` and ``trace/v1/trace.proto``.

Example:
    >>> from skewgate.wire.encode import encode_request
    >>> from skewgate.wire.model import ResourceSpans, ScopeSpans, Span, TracesRequest, Resource
    >>> def one(i):
    ...     span = Span(trace_id="ab" * 16, span_id=f"{i:016x}", name="s")
    ...     rs = ResourceSpans(Resource(), [ScopeSpans(None, [span])])
    ...     return encode_request(TracesRequest([rs]))
    >>> merged = merge_requests([one(1), one(2), one(3)])
    >>> count_spans(merged), len(list(iter_fields(merged)))  # 3 spans under one ResourceSpans
    (3, 1)
    >>> [count_spans(half) for half in split_request(merged)]
    [2, 1]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from skewgate.wire.protobuf import (
    WIRE_LEN,
    WireError,
    iter_fields,
    len_field,
    tag,
)
from skewgate.wire.protobuf import read_varint as _read_varint

__all__ = [
    "WireError",
    "count_spans",
    "halves",
    "iter_fields",
    "merge_requests",
    "split_request",
]

# ExportTraceServiceRequest.resource_spans, ResourceSpans.{resource,scope_spans,schema_url},
# ScopeSpans.{scope,spans,schema_url}: all length-delimited.
_RESOURCE_SPANS: Final = 1
_RS_RESOURCE, _RS_SCOPE_SPANS, _RS_SCHEMA = 1, 2, 3
_SS_SCOPE, _SS_SPANS, _SS_SCHEMA = 1, 2, 3


def _len_field(number: int, payload: bytes) -> bytes:
    return len_field(tag(number, WIRE_LEN), payload)


def _resource_spans(payload: bytes) -> list[tuple[int, int]]:
    """The (start, end) payload ranges of the request's ``resource_spans`` entries."""
    entries = []
    for number, _fs, vs, ve in iter_fields(payload):
        if number != _RESOURCE_SPANS:
            raise WireError(f"unexpected request field {number}")
        entries.append((vs, ve))
    return entries


def _parts(buf: bytes, start: int, end: int, head: int, items: int, tail: int) -> tuple[
    bytes, list[bytes], bytes
]:
    """Split a message into its ``head`` field, its repeated ``items`` fields (raw) and its
    ``tail`` field; any other field is an error (the caller then falls back to joining)."""
    head_raw = b""
    tail_raw = b""
    entries: list[bytes] = []
    for number, fs, _vs, ve in iter_fields(buf, start, end):
        if number == items:
            entries.append(buf[fs:ve])
        elif number == head:
            head_raw += buf[fs:ve]
        elif number == tail:
            tail_raw += buf[fs:ve]
        else:
            raise WireError(f"unexpected field {number}")
    return head_raw, entries, tail_raw


def merge_requests(payloads: Iterable[bytes]) -> bytes:
    """One request holding every span of ``payloads``, one ``ResourceSpans`` per distinct
    (resource, schema_url) and one ``ScopeSpans`` per distinct (scope, schema_url) in it,
    in first-seen order. Spans keep their order. A payload that does not parse as expected
    is appended unmerged (concatenation is always valid)."""
    # (resource field, schema field) -> (scope field, schema field) -> raw span fields
    resources: dict[tuple[bytes, bytes], dict[tuple[bytes, bytes], list[bytes]]] = {}
    unmerged: list[bytes] = []
    for payload in payloads:
        try:
            parsed = []
            for vs, ve in _resource_spans(payload):
                resource, scope_spans, schema = _parts(
                    payload, vs, ve, _RS_RESOURCE, _RS_SCOPE_SPANS, _RS_SCHEMA
                )
                scopes = []
                for raw in scope_spans:
                    # raw is a whole field: skip its key and length to reach the message.
                    _, pos = _read_varint(raw, 0, len(raw))
                    _, pos = _read_varint(raw, pos, len(raw))
                    scopes.append(_parts(raw, pos, len(raw), _SS_SCOPE, _SS_SPANS, _SS_SCHEMA))
                parsed.append(((resource, schema), scopes))
        except WireError:
            unmerged.append(payload)
            continue
        for resource_key, scopes in parsed:
            by_scope = resources.setdefault(resource_key, {})
            for scope, spans, scope_schema in scopes:
                by_scope.setdefault((scope, scope_schema), []).extend(spans)
    out = []
    for (resource, schema), by_scope in resources.items():
        inner = [resource]
        for (scope, scope_schema), spans in by_scope.items():
            inner.append(_len_field(_RS_SCOPE_SPANS, b"".join([scope, *spans, scope_schema])))
        inner.append(schema)
        out.append(_len_field(_RESOURCE_SPANS, b"".join(inner)))
    return b"".join(out + unmerged)


def halves(sizes: Sequence[int]) -> int:
    """Index that splits ≥ 2 entries of these sizes into two runs of about equal bytes, both
    non-empty.

    >>> halves([10, 1, 1, 10]), halves([1, 100])
    (2, 1)
    """
    total = sum(sizes)
    running = 0
    for index in range(1, len(sizes)):
        running += sizes[index - 1]
        if running * 2 >= total:
            return index
    return len(sizes) - 1


def _halves(entries: Sequence[bytes]) -> int:
    return halves([len(e) for e in entries])


def split_request(payload: bytes) -> tuple[bytes, bytes] | None:
    """Two requests that together hold exactly the spans of ``payload``, or ``None`` when it
    holds a single span (nothing left to split).

    Splits the list of resources when there are several; else the scopes of the only
    resource (each half keeps the resource); else the spans of the only scope.
    """
    entries = _resource_spans(payload)
    if len(entries) >= 2:
        raws = [_len_field(_RESOURCE_SPANS, payload[vs:ve]) for vs, ve in entries]
        cut = _halves(raws)
        return b"".join(raws[:cut]), b"".join(raws[cut:])
    if not entries:
        return None
    vs, ve = entries[0]
    resource, scope_spans, schema = _parts(
        payload, vs, ve, _RS_RESOURCE, _RS_SCOPE_SPANS, _RS_SCHEMA
    )

    def wrap(scopes: Sequence[bytes]) -> bytes:
        return _len_field(_RESOURCE_SPANS, b"".join([resource, *scopes, schema]))

    if len(scope_spans) >= 2:
        cut = _halves(scope_spans)
        return wrap(scope_spans[:cut]), wrap(scope_spans[cut:])
    if not scope_spans:
        return None
    raw = scope_spans[0]
    _, pos = _read_varint(raw, 0, len(raw))
    _, pos = _read_varint(raw, pos, len(raw))
    scope, spans, scope_schema = _parts(raw, pos, len(raw), _SS_SCOPE, _SS_SPANS, _SS_SCHEMA)
    if len(spans) < 2:
        return None
    cut = _halves(spans)

    def wrap_spans(part: Sequence[bytes]) -> bytes:
        return wrap([_len_field(_RS_SCOPE_SPANS, b"".join([scope, *part, scope_schema]))])

    return wrap_spans(spans[:cut]), wrap_spans(spans[cut:])


def count_spans(payload: bytes) -> int:
    """Number of spans in a serialized request."""
    count = 0
    for vs, ve in _resource_spans(payload):
        for number, _fs, svs, sve in iter_fields(payload, vs, ve):
            if number == _RS_SCOPE_SPANS:
                count += sum(
                    1 for n, *_ in iter_fields(payload, svs, sve) if n == _SS_SPANS
                )
    return count
