"""Hostile bodies: decoding and encoding either reject cleanly or produce valid OTLP.

Anything else (a ValueError from ``bytes.fromhex``, a base64 error, an overflow) would reach
the handler as a 500; the contract says bad input gets a 4xx or a per-span rejection.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from skewgate.clock import BatchEvidence, EstimatorConfig, estimate
from skewgate.clock.correction import encode_group, group_by_session
from skewgate.wire import DecodeError, Limits, TooLarge, UnsupportedMediaType, decode_request
from skewgate.wire.encode import encode_request

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
@given(document=body, applied=st.booleans())
def test_hostile_json_is_rejected_cleanly_or_encoded_validly(
    document: dict[str, Any], applied: bool
) -> None:
    raw = json.dumps(document).encode()
    try:
        batch = decode_request(raw, "application/json", None, Limits(max_attributes=3))
    except (DecodeError, TooLarge, UnsupportedMediaType):
        return
    for group in group_by_session(batch, "fuzz"):
        sent = 2e12 if applied else None  # a send time far ahead proves the clock wrong
        est, _ = estimate(
            BatchEvidence(1e12, sent, group.max_client_time_ms), None, EstimatorConfig()
        )
        chunks, _oversized = encode_group(group, est)
        for chunk in chunks:
            for blob in (chunk.raw, chunk.corrected):
                if blob is not None:
                    ExportTraceServiceRequest.FromString(blob)
    ExportTraceServiceRequest.FromString(encode_request(batch.request))
