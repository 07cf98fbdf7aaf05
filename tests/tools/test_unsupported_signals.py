"""What skewgate does not take, said clearly and never retried: OTLP logs, metrics, gRPC.

- ``/v1/logs`` and ``/v1/metrics``: 404 with a ``google.rpc.Status`` naming the signal (JSON or
  protobuf, as asked), CORS preflights answered so a browser exporter sees the message; the
  real OTel Python exporters give up after one request.
- OTLP/gRPC at the local runner: every call gets ``UNIMPLEMENTED`` with a message saying to use
  OTLP/HTTP; the real OTel Python gRPC exporter fails at once instead of retrying.
"""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.rpc.status_pb2 import Status
from support import local_runner, runner_env

from skewgate.aws.ingest import IngestApp
from skewgate.aws.settings import IngestSettings
from skewgate_tools.local.dynamodb import free_port
from skewgate_tools.local.server import build_event


@pytest.fixture(scope="module")
def runner(
    dynamodb_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int, Path]]:
    port = free_port()
    log = tmp_path_factory.mktemp("signals") / "runner.log"
    env = runner_env(dynamodb_endpoint, port, "signals", ALLOWED_ORIGINS="https://app.example")
    with local_runner(env, port, log) as url:
        yield url, port, log


def ingest_app() -> IngestApp:
    settings = IngestSettings.from_env(
        {"TABLE_NAME": "unused", "ALLOWED_ORIGINS": "https://app.example"}
    )
    return IngestApp(settings, store=None)  # type: ignore[arg-type]  # never reached


@pytest.mark.parametrize("signal", ["logs", "metrics"])
def test_unsupported_signal_is_a_clear_404(signal: str) -> None:
    app = ingest_app()
    origin = [("origin", "https://app.example")]
    response = app.handle(build_event(
        "POST", f"/v1/{signal}", [*origin, ("content-type", "application/json")], b"{}", 1
    ))
    assert response["statusCode"] == 404
    assert response["headers"]["access-control-allow-origin"] == "https://app.example"
    status = json.loads(response["body"])
    assert status["code"] == 5  # NOT_FOUND
    assert status["message"].startswith("skewgate accepts OTLP traces only (POST /v1/traces)")
    assert f"OTLP {signal} are not supported" in status["message"]

    response = app.handle(build_event(
        "POST", f"/v1/{signal}", [("content-type", "application/x-protobuf")], b"", 1
    ))
    assert response["statusCode"] == 404
    assert response["headers"]["content-type"] == "application/x-protobuf"
    message = Status.FromString(base64.b64decode(response["body"])).message
    assert f"OTLP {signal} are not supported" in message

    preflight = app.handle(build_event("OPTIONS", f"/v1/{signal}", origin, b"", 1))
    assert preflight["statusCode"] == 204
    denied = build_event("OPTIONS", f"/v1/{signal}", [("origin", "https://evil.example")], b"", 1)
    assert app.handle(denied)["statusCode"] == 403


def requests_in_log(log: Path, line: str) -> int:
    return log.read_text().count(line)


def test_otel_python_log_and_metric_exporters_give_up_at_once(
    runner: tuple[str, int, Path],
) -> None:
    from opentelemetry._logs import LogRecord, SeverityNumber
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    url, _, log = runner
    started = time.monotonic()
    provider = LoggerProvider()
    provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{url}/v1/logs", timeout=10))
    )
    provider.get_logger("signals").emit(
        LogRecord(body="a log line skewgate does not take", severity_number=SeverityNumber.WARN)
    )
    provider.shutdown()

    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"{url}/v1/metrics", timeout=10),
        export_interval_millis=3_600_000,
    )
    meters = MeterProvider(metric_readers=[reader])
    meters.get_meter("signals").create_counter("requests").add(1)
    meters.shutdown()
    assert time.monotonic() - started < 8  # no backoff: each got one answer and stopped

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (
        requests_in_log(log, '"POST /v1/logs HTTP/1.1" 404')
        and requests_in_log(log, '"POST /v1/metrics HTTP/1.1" 404')
    ):
        time.sleep(0.1)
    assert requests_in_log(log, '"POST /v1/logs HTTP/1.1" 404') == 1
    assert requests_in_log(log, '"POST /v1/metrics HTTP/1.1" 404') == 1


def test_the_runner_answers_the_logs_route_over_http(runner: tuple[str, int, Path]) -> None:
    url, _, _ = runner
    request = urllib.request.Request(
        f"{url}/v1/logs", data=b"{}", headers={"content-type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert info.value.code == 404
    assert "OTLP logs are not supported" in json.loads(info.value.read())["message"]


def test_grpc_gets_unimplemented_with_a_message(runner: tuple[str, int, Path]) -> None:
    import grpc

    _, port, log = runner
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
        )
        with pytest.raises(grpc.RpcError) as info:
            export(b"", timeout=10)
    error: Any = info.value
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED
    assert error.details().startswith("skewgate accepts OTLP/HTTP only, not gRPC")
    assert "http/protobuf" in error.details()
    assert "gRPC (HTTP/2) call answered UNIMPLEMENTED" in log.read_text()
    # No 505 answer logged (a bare number: ports and table names may contain the digits).
    assert re.search(r"(?<!\d)505(?!\d)", log.read_text()) is None


def test_otel_python_grpc_exporter_fails_without_retrying(runner: tuple[str, int, Path]) -> None:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    _, port, _ = runner
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("grpc").start_as_current_span("checkout"):
        pass
    provider.shutdown()
    exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True, timeout=20)
    started = time.monotonic()
    result = exporter.export(memory.get_finished_spans())
    elapsed = time.monotonic() - started
    exporter.shutdown()
    assert result is SpanExportResult.FAILURE
    assert elapsed < 5, f"the exporter kept retrying for {elapsed:.1f} s"
