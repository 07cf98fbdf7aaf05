"""Hostile bodies: the ingest's scan, the stored copies and the outgoing copy either reject
cleanly or agree exactly with the full decoder, as valid OTLP.

Anything else (a ValueError from ``bytes.fromhex``, a base64 error, an overflow) would reach
the handler as a 500; the contract says bad input gets a 4xx or a per-span rejection.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from skewgate.clock import PlanConfig, RequestFacts, corrected_request, plan_batch, read_back
from skewgate.wire import (
    JSON,
    PROTOBUF,
    DecodeError,
    Limits,
    TooLarge,
    UnsupportedMediaType,
    decode_request,
)
from skewgate.wire.blob import unpack
from skewgate.wire.encode import encode_request
from skewgate.wire.scan import scan_request

hexish = st.one_of(
    st.text(alphabet="0123456789abcdefABCDEF", min_size=0, max_size=34),
    st.text(max_size=20),
    st.sampled_from(["0" * 32, "0" * 16, "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"]),
)
big_ints = st.one_of(
    st.integers(min_value=-(1 << 70), max_value=1 << 70),
    st.integers(min_value=0, max_value=1 << 63).map(str),
    st.text(max_size=5),
)
any_value: st.SearchStrategy[Any] = st.recursive(
    st.one_of(
        st.builds(lambda s: {"stringValue": s}, st.text(max_size=40)),
        st.builds(lambda i: {"intValue": i}, big_ints),
        st.builds(lambda b: {"boolValue": b}, st.booleans()),
        st.builds(lambda d: {"doubleValue": d}, st.floats(allow_nan=False) | st.just("NaN")),
        st.builds(lambda b: {"bytesValue": b}, st.text(max_size=12)),
        st.just({}),
        st.none(),
    ),
    lambda inner: st.one_of(
        st.builds(lambda vs: {"arrayValue": {"values": vs}}, st.lists(inner, max_size=3)),
        st.builds(
            lambda kvs: {"kvlistValue": {"values": [{"key": "k", "value": v} for v in kvs]}},
            st.lists(inner, max_size=3),
        ),
    ),
    max_leaves=6,
)
attributes = st.lists(
    st.fixed_dictionaries({"key": st.text(max_size=8), "value": any_value}), max_size=4
)
span = st.fixed_dictionaries(
    {
        "traceId": hexish,
        "spanId": hexish,
        "startTimeUnixNano": big_ints,
        "endTimeUnixNano": big_ints,
    },
    optional={
        "parentSpanId": hexish,
        "name": st.text(max_size=10),
        "kind": st.integers(min_value=-5, max_value=1 << 40),
        "flags": st.integers(min_value=-5, max_value=1 << 40),
        "attributes": attributes,
        "droppedAttributesCount": st.integers(min_value=-5, max_value=1 << 40),
        "events": st.lists(
            st.fixed_dictionaries({"timeUnixNano": big_ints}, optional={"attributes": attributes}),
            max_size=2,
        ),
        "links": st.lists(
            st.fixed_dictionaries(
                {"traceId": hexish, "spanId": hexish}, optional={"attributes": attributes}
            ),
            max_size=2,
        ),
        "status": st.fixed_dictionaries(
            {}, optional={"code": st.integers(-3, 5), "message": st.text(max_size=5)}
        ),
    },
)
body = st.fixed_dictionaries(
    {
        "resourceSpans": st.lists(
            st.fixed_dictionaries(
                {
                    "scopeSpans": st.lists(
                        st.fixed_dictionaries({"spans": st.lists(span, max_size=3)}), max_size=2
                    )
                },
                optional={"resource": st.fixed_dictionaries({"attributes": attributes})},
            ),
            max_size=2,
        )
    }
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=body, applied=st.booleans(), spaced=st.booleans(), chunked=st.booleans())
def test_hostile_json_is_rejected_cleanly_or_read_back_exactly(
    document: dict[str, Any], applied: bool, spaced: bool, chunked: bool
) -> None:
    """The ingest's scan and the full decoder agree on every span; both stored copies and
    the outgoing copy are valid OTLP; the adjusted copy holds exactly the shifted times."""
    raw = json.dumps(document, separators=None if spaced else (",", ":")).encode()
    limits = Limits(max_attributes=3)
    try:
        # chunked: the path of large bodies (values checked a chunk at a time), forced.
        scan = scan_request(raw, JSON, limits, typed_up_to=0 if chunked else 1 << 30)
    except (DecodeError, TooLarge, UnsupportedMediaType):
        with pytest.raises((DecodeError, TooLarge, msgspec.ValidationError)):
            decode_request(raw, "application/json", None, limits)
        return
    full = decode_request(raw, "application/json", None, limits)
    assert sorted(scan.span_ids) == sorted(
        span.span_id for _, _, span in full.spans()
    )
    assert scan.rejected_spans == full.rejected_spans
    # A send time far ahead proves the clock wrong: every session is shifted.
    facts = RequestFacts(received_at_ms=1e12, sent_at="2e12" if applied else None,
                         session_header="fuzz")
    config = PlanConfig(limits=limits)
    plan = plan_batch(scan, facts, {}, config)
    record = plan.record
    assert record.body is not None
    stored, adjusted = unpack(b"".join(plan.chunks), record.body)
    assert stored == raw
    shifts = record.shifts()
    spans = read_back(stored, JSON, record.grouping, limits, shifts)
    assert sorted(c.span.span_id for c in spans) == sorted(scan.span_ids)
    ExportTraceServiceRequest.FromString(corrected_request(spans))
    if adjusted is None:
        assert not any(s.applied and s.shift_ns for s in record.sessions)
        return
    moved = read_back(adjusted, JSON, record.grouping, limits, shifts)
    assert [c.span.span_id for c in moved] == [c.span.span_id for c in spans]
    for before, after in zip(spans, moved, strict=True):
        shift = before.shift.shift_ns if before.shift is not None else 0
        for t0, t1 in (
            (before.span.start_time_unix_nano, after.span.start_time_unix_nano),
            (before.span.end_time_unix_nano, after.span.end_time_unix_nano),
            *zip([e.time_unix_nano for e in before.span.events],
                 [e.time_unix_nano for e in after.span.events], strict=True),
        ):
            assert t1 == (max(t0 + shift, 0) if t0 else 0)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=body)
def test_hostile_protobuf_scan_agrees_with_the_full_decoder(document: dict[str, Any]) -> None:
    try:
        decoded = decode_request(json.dumps(document).encode(), "application/json", None,
                                 Limits())
    except (DecodeError, TooLarge):
        return
    try:
        data = encode_request(decoded.request)
    except (ValueError, OverflowError):
        return
    try:
        scan = scan_request(data, PROTOBUF, Limits())
    except DecodeError:
        with pytest.raises(DecodeError):
            decode_request(data, "application/x-protobuf", None, Limits())
        return
    full = decode_request(data, "application/x-protobuf", None, Limits())
    assert scan.span_ids == [span.span_id for _, _, span in full.spans()]
