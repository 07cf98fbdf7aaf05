"""End to end through `make run`'s server process: real HTTP, real exporters, DynamoDB Local."""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from support import get_json, local_runner, runner_env

from skewgate_tools.demo import browser_request
from skewgate_tools.local.dynamodb import free_port


@pytest.fixture(scope="module")
def gateway(dynamodb_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    env = runner_env(dynamodb_endpoint, port, "e2e")
    log = tmp_path_factory.mktemp("runner") / "runner.log"
    with local_runner(env, port, log) as url:
        yield url


def test_otel_python_sdk_protobuf_exporter(gateway: str) -> None:
    session = f"py-{secrets.token_hex(4)}"
    provider = TracerProvider(
        resource=Resource.create({"service.name": "py", "session.id": session})
    )
    exporter = OTLPSpanExporter(endpoint=f"{gateway}/v1/traces", timeout=10)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("e2e")
    with tracer.start_as_current_span("checkout") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
        with tracer.start_as_current_span("db"):
            pass
    provider.shutdown()
    status, doc = get_json(f"{gateway}/v1/sessions/{session}/skew")
    assert status == 200, doc
    assert sum(s["span_count"] for s in doc["samples"]) == 2
    for sample in doc["samples"]:
        assert sample["method"] == "causality"
        assert sample["applied"] is False  # a server clock in sync is left alone
        assert sample["lower_ms"] <= 0 <= sample["upper_ms"]
    status, trace = get_json(f"{gateway}/v1/traces/{trace_id}")
    assert status == 200 and len(trace["spans"]) == 2


def otel_js_batch(session: str, client_now_ms: float) -> tuple[bytes, str]:
    """An OTel-JS-shaped JSON batch: hex ids, string int64, int kind, flags 257."""
    trace_id = secrets.token_hex(16)
    parent = secrets.token_hex(8)
    spans = []
    for i, (span_id, parent_id) in enumerate(((parent, None), (secrets.token_hex(8), parent))):
        start = int((client_now_ms - 300 + i * 10) * 1e6)
        span: dict[str, Any] = {
            "traceId": trace_id,
            "spanId": span_id,
            "name": f"op-{i}",
            "kind": 1,
            "startTimeUnixNano": str(start),
            "endTimeUnixNano": str(start + 150_000_000),
            "attributes": [{"key": "app.depth", "value": {"intValue": i}}],
            "droppedAttributesCount": 0,
            "events": [],
            "links": [],
            "status": {"code": 0},
            "flags": 257,
        }
        if parent_id:
            span["parentSpanId"] = parent_id
        spans.append(span)
    body = browser_request(session, spans)
    return json.dumps(body).encode(), trace_id


def test_client_800ms_ahead_is_corrected(gateway: str) -> None:
    session = f"js-{secrets.token_hex(4)}"
    client_now = time.time() * 1000 + 800  # the browser's clock reads 800 ms ahead
    body, trace_id = otel_js_batch(session, client_now)
    request = urllib.request.Request(
        f"{gateway}/v1/traces",
        data=body,
        headers={
            "content-type": "application/json",
            "x-sent-at": str(int(time.time() * 1000 + 800)),
            "origin": "http://127.0.0.1:5173",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert json.loads(response.read()) == {}
        assert response.headers["access-control-allow-origin"] == "http://127.0.0.1:5173"
    status, doc = get_json(f"{gateway}/v1/sessions/{session}/skew")
    assert status == 200
    (sample,) = doc["samples"]
    assert sample["lower_ms"] <= -800 <= sample["upper_ms"]
    assert sample["applied"] is True and sample["method"] == "send_time"
    assert sample["trace_ids"] == [trace_id]
    status, trace = get_json(f"{gateway}/v1/traces/{trace_id}")
    assert status == 200
    for span in trace["spans"]:
        shift = int(span["start_time_unix_nano"]) - int(span["raw_start_time_unix_nano"])
        assert shift == round(sample["offset_ms"] * 1e6)
        assert -900e6 < shift < -790e6


def test_unknown_session_over_http_is_404(gateway: str) -> None:
    status, body = get_json(f"{gateway}/v1/sessions/nobody/skew")
    assert status == 404 and "nobody" in body["message"]
