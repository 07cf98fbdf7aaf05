"""Joining, merging and splitting serialized OTLP requests, checked against opentelemetry-proto."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from skewgate.wire.splice import WireError, count_spans, merge_requests, split_request

RESOURCES = [
    None,
    Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value="web"))]),
    Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value="api"))]),
]
SCOPES = [None, InstrumentationScope(name="fetch", version="1"), InstrumentationScope(name="xhr")]


def request(entries: list[tuple[int, str, int, str, list[str]]]) -> bytes:
    """entries: (resource index, resource schema, scope index, scope schema, span names)."""
    message = ExportTraceServiceRequest()
    for resource, schema, scope, scope_schema, names in entries:
        rs = ResourceSpans(schema_url=schema)
        if RESOURCES[resource] is not None:
            rs.resource.CopyFrom(RESOURCES[resource])
        ss = ScopeSpans(schema_url=scope_schema)
        if SCOPES[scope] is not None:
            ss.scope.CopyFrom(SCOPES[scope])
        for i, name in enumerate(names):
            ss.spans.append(
                Span(trace_id=b"\x01" * 16, span_id=i.to_bytes(8, "big"), name=name,
                     start_time_unix_nano=1, end_time_unix_nano=2)
            )
        rs.scope_spans.append(ss)
        message.resource_spans.append(rs)
    return bytes(message.SerializeToString())


def triples(payload: bytes) -> Counter[tuple[bytes, str, bytes, str, bytes]]:
    """Every span with the resource and scope it is under."""
    message = ExportTraceServiceRequest.FromString(payload)
    return Counter(
        (rs.resource.SerializeToString(), rs.schema_url, ss.scope.SerializeToString(),
         ss.schema_url, span.SerializeToString())
        for rs in message.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    )


entry = st.tuples(
    st.integers(0, 2), st.sampled_from(["", "https://opentelemetry.io/schemas/1.24.0"]),
    st.integers(0, 2), st.sampled_from(["", "s"]),
    st.lists(st.text(min_size=1, max_size=5), min_size=0, max_size=4),
)
payloads = st.lists(st.lists(entry, min_size=0, max_size=3).map(request), min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(payloads)
def test_merge_keeps_every_span_under_its_resource_and_scope(parts: list[bytes]) -> None:
    joined = b"".join(parts)
    merged = merge_requests(parts)
    assert triples(merged) == triples(joined)
    assert count_spans(merged) == count_spans(joined) == sum(triples(joined).values())
    message = ExportTraceServiceRequest.FromString(merged)
    keys = [(rs.resource.SerializeToString(), rs.schema_url) for rs in message.resource_spans]
    assert len(keys) == len(set(keys))  # one ResourceSpans per distinct resource
    for rs in message.resource_spans:
        scopes = [(ss.scope.SerializeToString(), ss.schema_url) for ss in rs.scope_spans]
        assert len(scopes) == len(set(scopes))


@settings(max_examples=60, deadline=None)
@given(payloads)
def test_split_halves_hold_exactly_the_spans(parts: list[bytes]) -> None:
    payload = merge_requests(parts)
    halves = split_request(payload)
    if halves is None:
        assert count_spans(payload) <= 1 or len(
            ExportTraceServiceRequest.FromString(payload).resource_spans
        ) <= 1
        return
    first, second = halves
    assert triples(first) + triples(second) == triples(payload)
    assert first and second


def test_split_goes_down_to_single_spans() -> None:
    payload = request([(1, "", 1, "", [f"s{i}" for i in range(5)])])
    pieces = [payload]
    singles = []
    while pieces:
        piece = pieces.pop()
        halves = split_request(piece)
        if halves is None:
            singles.append(piece)
        else:
            assert count_spans(halves[0]) >= 1 and count_spans(halves[1]) >= 1
            pieces.extend(halves)
    assert sorted(count_spans(p) for p in singles) == [1] * 5
    assert sum((triples(p) for p in singles), Counter()) == triples(payload)


def test_merge_collapses_a_browser_batch() -> None:
    parts = [request([(1, "", 1, "", [f"s{i}"])]) for i in range(100)]
    merged = merge_requests(parts)
    assert len(ExportTraceServiceRequest.FromString(merged).resource_spans) == 1
    assert len(merged) < len(b"".join(parts))


def test_malformed_input() -> None:
    with pytest.raises(WireError):
        count_spans(b"\x0a\xff")  # length runs past the end
    with pytest.raises(WireError):
        count_spans(b"\x12\x00")  # not field 1 of a request
    good = request([(1, "", 1, "", ["a"])])
    # A part that does not parse is passed through unmerged rather than lost.
    assert merge_requests([good, b"\x12\x00"]).endswith(b"\x12\x00")
