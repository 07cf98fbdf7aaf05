"""Decoding, limits and the protobuf encoder, checked against the official OTLP definitions."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import msgspec
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource as SdkResource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link as SdkLink
from support import FIXTURES

from skewgate.wire import (
    DecodeError,
    Limits,
    TooLarge,
    UnsupportedMediaType,
    decode_request,
    inflate,
)
from skewgate.wire.encode import encode_request


def fixture_files() -> list[Path]:
    files = sorted(FIXTURES.glob("export-*.json"))
    assert files, f"no OTel JS fixtures under {FIXTURES}"
    return files


def span_json(**overrides: object) -> dict[str, object]:
    span: dict[str, object] = {
        "traceId": "0af7651916cd43dd8448eb211c80319c",
        "spanId": "b7ad6b7169203331",
        "name": "op",
        "kind": 1,
        "startTimeUnixNano": "1000000000",
        "endTimeUnixNano": "2000000000",
    }
    span.update(overrides)
    return span


def body_of(*spans: dict[str, object], resource_attrs: list[object] | None = None) -> bytes:
    return json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {"attributes": resource_attrs or []},
                    "scopeSpans": [{"scope": {"name": "s"}, "spans": list(spans)}],
                }
            ]
        }
    ).encode()


@pytest.mark.parametrize("path", fixture_files(), ids=lambda p: p.name)
def test_real_otel_js_exports_decode(path: Path) -> None:
    fixture = json.loads(path.read_text())
    body = json.dumps(fixture["body"]).encode()
    batch = decode_request(body, fixture["headers"]["content-type"], None, Limits())
    spans = [s for _, _, s in batch.spans()]
    assert batch.rejected_spans == 0
    assert batch.span_count == len(spans) > 0
    raw = fixture["body"]["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert [s.span_id for s in spans] == [s["spanId"] for s in raw]
    assert spans[0].start_time_unix_nano == int(raw[0]["startTimeUnixNano"])
    assert spans[0].flags == 257
    assert spans[0].attributes[0].value is not None
    assert spans[0].attributes[0].value.int_value == raw[0]["attributes"][0]["value"]["intValue"]


@pytest.mark.parametrize("path", fixture_files(), ids=lambda p: p.name)
def test_protobuf_encoding_round_trips_through_official_definitions(path: Path) -> None:
    fixture = json.loads(path.read_text())
    batch = decode_request(json.dumps(fixture["body"]).encode(), "application/json", None, Limits())
    encoded = encode_request(batch.request)
    message = ExportTraceServiceRequest.FromString(encoded)
    first = fixture["body"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    pb_span = message.resource_spans[0].scope_spans[0].spans[0]
    assert pb_span.trace_id.hex() == first["traceId"]
    assert pb_span.start_time_unix_nano == int(first["startTimeUnixNano"])
    assert pb_span.flags == 257
    again = decode_request(encoded, "application/x-protobuf", None, Limits())
    assert msgspec.json.encode(again.request) == msgspec.json.encode(batch.request)


def _sdk_spans() -> tuple[ExportTraceServiceRequest, list[object]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=SdkResource.create({"service.name": "svc", "n": 3}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test-scope", "1.2.3")
    with tracer.start_as_current_span("parent", attributes={"f": 1.5, "b": True, "l": [1, 2]}) as p:
        p.add_event("evt", {"s": "x"})
        with tracer.start_as_current_span(
            "child", links=[SdkLink(p.get_span_context(), {"k": "v"})]
        ):
            pass
    spans = list(exporter.get_finished_spans())
    return encode_spans(spans), spans


def test_encoder_matches_the_official_python_encoder() -> None:
    official, _ = _sdk_spans()
    ours = decode_request(official.SerializeToString(), "application/x-protobuf", None, Limits())
    reencoded = ExportTraceServiceRequest.FromString(encode_request(ours.request))
    assert reencoded == official


def test_shift_moves_every_span_and_event_time() -> None:
    official, _ = _sdk_spans()
    ours = decode_request(official.SerializeToString(), "application/x-protobuf", None, Limits())
    shifted = ExportTraceServiceRequest.FromString(encode_request(ours.request, shift_ns=-5_000))
    for a_ss, b_ss in zip(
        official.resource_spans[0].scope_spans, shifted.resource_spans[0].scope_spans, strict=True
    ):
        for a, b in zip(a_ss.spans, b_ss.spans, strict=True):
            assert b.start_time_unix_nano == a.start_time_unix_nano - 5_000
            assert b.end_time_unix_nano == a.end_time_unix_nano - 5_000
            for ea, eb in zip(a.events, b.events, strict=True):
                assert eb.time_unix_nano == ea.time_unix_nano - 5_000


def test_bad_spans_are_rejected_alone() -> None:
    body = body_of(
        span_json(),
        span_json(spanId="b7ad6b7169203332", traceId="0" * 32),
        span_json(spanId="0000000000000000"),
        span_json(spanId="zz"),
        span_json(spanId="b7ad6b7169203334", startTimeUnixNano="5", endTimeUnixNano="4"),
        span_json(spanId="b7ad6b7169203335", parentSpanId="123"),
    )
    batch = decode_request(body, "application/json", None, Limits())
    assert batch.span_count == 1
    assert batch.rejected_spans == 5
    assert "all-zero traceId" in batch.error_message
    assert "endTimeUnixNano before startTimeUnixNano" in batch.error_message


def test_attribute_limits_truncate_and_count() -> None:
    attrs = [{"key": f"a{i}", "value": {"intValue": i}} for i in range(130)]
    attrs[0] = {"key": "long", "value": {"stringValue": "é" * 10_000}}
    batch = decode_request(body_of(span_json(attributes=attrs)), "application/json", None, Limits())
    span = next(batch.spans())[2]
    assert len(span.attributes) == 128
    assert span.dropped_attributes_count == 2
    long_value = span.attributes[0].value
    assert long_value is not None and long_value.string_value is not None
    assert len(long_value.string_value.encode()) <= 16 * 1024
    assert long_value.string_value.startswith("é")


def test_span_count_limit_is_413() -> None:
    spans = [span_json(spanId=f"{i + 1:016x}") for i in range(11)]
    with pytest.raises(TooLarge):
        decode_request(body_of(*spans), "application/json", None, Limits(max_spans=10))


def test_gzip_is_inflated_and_a_bomb_stops_at_the_limit() -> None:
    body = body_of(span_json())
    batch = decode_request(gzip.compress(body), "application/json", "gzip", Limits())
    assert batch.span_count == 1
    bomb = gzip.compress(b"\0" * (3 * 1024 * 1024))
    with pytest.raises(TooLarge):
        inflate(bomb, "gzip", 1024 * 1024)
    with pytest.raises(DecodeError):
        inflate(b"not gzip at all", "gzip", 1024)
    with pytest.raises(DecodeError):
        inflate(gzip.compress(body)[:-12], "gzip", 1024 * 1024)


@pytest.mark.parametrize(
    ("body", "content_type", "error"),
    [
        (b"{not json", "application/json", DecodeError),
        (b'{"resourceSpans": 5}', "application/json", DecodeError),
        (b"\xff\xff\xff", "application/x-protobuf", DecodeError),
        (b"{}", "text/plain", UnsupportedMediaType),
        (b"{}", None, UnsupportedMediaType),
    ],
)
def test_undecodable_bodies(body: bytes, content_type: str | None, error: type[Exception]) -> None:
    with pytest.raises(error):
        decode_request(body, content_type, None, Limits())


def test_json_content_type_with_charset_and_numeric_int64() -> None:
    body = body_of(span_json(startTimeUnixNano=1000, endTimeUnixNano=2000))
    batch = decode_request(body, "application/json; charset=utf-8", None, Limits())
    assert next(batch.spans())[2].end_time_unix_nano == 2000


def test_a_body_too_short_to_hold_too_many_messages_is_not_counted() -> None:
    from skewgate.wire import PROTOBUF, Limits
    from skewgate.wire.scan import scan_request

    limits = Limits(max_messages=10)
    # Empty ResourceSpans: 2 bytes each, the least a message costs its parent.
    scan = scan_request(b"\x0a\x00" * 10, PROTOBUF, limits)  # 20 bytes: at most 10 messages
    assert scan.span_count == 0 and scan.resource_sessions == [None] * 10
    with pytest.raises(TooLarge, match="more than 10 messages"):
        scan_request(b"\x0a\x00" * 11, PROTOBUF, limits)
