"""The forwarder: DynamoDB Local's stream → forward handler → an OTLP/HTTP receiver on 127.0.0.1.

The receiver decodes with opentelemetry-proto and can be told to fail. Batches are ingested
through the real ingest handler, read back through the real DynamoDB Streams API, and
forwarded by the same handler the Lambda runs.
"""

from __future__ import annotations

import base64
import copy
import gzip
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from support import FIXTURES, REPO

from skewgate.aws.forward import (
    FILTER_PATTERN,
    ForwardApp,
    build_forward_app,
    matches_filter,
)
from skewgate.aws.ingest import IngestApp
from skewgate.aws.settings import ConfigError, ForwardSettings, IngestSettings, parse_headers
from skewgate.aws.store import Store
from skewgate.wire import Limits, decode_request
from skewgate.wire.encode import encode_request
from skewgate_tools.local.dynamodb import free_port, load_template
from skewgate_tools.local.server import build_event
from skewgate_tools.local.stream import StreamPoller, start_stream_forwarder

EVENTS = REPO / "events"
AHEAD_SESSION = "6f1c2d9a-browser-session"  # fixtures 1-4: clock 800 ms ahead


# --- a local OTLP/HTTP receiver ------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes  # as sent (gzip)
    request: ExportTraceServiceRequest
    at: float

    @property
    def uncompressed_size(self) -> int:
        return len(self.request.SerializeToString())


Reply = tuple[int, dict[str, str], bytes]


@dataclass
class Receiver:
    """An OTLP/HTTP traces receiver; ``respond`` decides each answer (None → 200)."""

    port: int = 0
    respond: Callable[[Received], Reply | None] | None = None
    received: list[Received] = field(default_factory=list)
    attempts: list[tuple[float, int]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/traces"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                data = body
                if self.headers.get("content-encoding") == "gzip":
                    data = gzip.decompress(body)
                got = Received(
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    ExportTraceServiceRequest.FromString(data),
                    time.monotonic(),
                )
                reply = receiver.respond(got) if receiver.respond else None
                if reply is None:
                    reply = (
                        200,
                        {"content-type": "application/x-protobuf"},
                        ExportTraceServiceResponse().SerializeToString(),
                    )
                status, headers, payload = reply
                receiver.attempts.append((time.monotonic(), status))
                if 200 <= status < 300:
                    receiver.received.append(got)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def spans(self) -> list[tuple[Any, Any]]:
        """(resource, span) for every span received."""
        return [
            (rs.resource, span)
            for got in self.received
            for rs in got.request.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        ]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def status_reply(code: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    return (
        code,
        {"content-type": "application/x-protobuf", **(headers or {})},
        Status(code=3, message=message).SerializeToString(),
    )


def attributes(span: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in span.attributes:
        which = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, which) if which else None
    return out


# --- stream records ------------------------------------------------------------------------


def fixture(n: int) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"export-{n}.json").read_text())
    return data


def rebase(value: Any, shift_ns: int) -> Any:
    """An OTLP/JSON body with every ``*UnixNano`` time moved by ``shift_ns``."""
    if isinstance(value, dict):
        return {
            k: str(int(v) + shift_ns) if k.endswith("UnixNano") and int(v) else rebase(v, shift_ns)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [rebase(v, shift_ns) for v in value]
    return value


def fixture_event(n: int) -> dict[str, Any]:
    fx = fixture(n)
    headers = [(k, v) for k, v in fx["headers"].items() if k != "content-type"]
    return build_event(
        "POST",
        "/v1/traces",
        [("content-type", "application/json"), *headers],
        json.dumps(fx["body"]).encode(),
        int(fx["received_at_ms"]),
    )


def fixture_spans(ns: list[int]) -> dict[str, Any]:
    """span id (hex) -> the span as the browser sent it."""
    spans = {}
    for n in ns:
        batch = decode_request(
            json.dumps(fixture(n)["body"]).encode(), "application/json", None, Limits()
        )
        for _rs, _ss, span in batch.spans():
            spans[span.span_id] = span
    return spans


def ingest(ddb_client: Any, table_name: str, ns: list[int]) -> None:
    settings = IngestSettings.from_env({"TABLE_NAME": table_name})
    app = IngestApp(settings, Store(ddb_client, table_name, settings.retention_seconds))
    for n in ns:
        response = app.handle(fixture_event(n))
        assert response["statusCode"] == 200, response


def streams_client(endpoint: str) -> Any:
    import boto3

    return boto3.client("dynamodbstreams", endpoint_url=endpoint)


def make_poller(
    handler: Callable[[dict[str, Any], Any], Any],
    ddb_client: Any,
    table_name: str,
    endpoint: str,
    **kwargs: Any,
) -> StreamPoller:
    kwargs.setdefault("poll_interval_s", 0.05)
    poller = StreamPoller(
        handler, table_name, dynamodb=ddb_client, streams=streams_client(endpoint), **kwargs
    )
    poller.open()
    return poller


def stream_events(
    ddb_client: Any, table_name: str, endpoint: str, ns: list[int]
) -> list[dict[str, Any]]:
    """Ingest fixtures ``ns`` and return the Lambda events the stream yields for them."""
    events: list[dict[str, Any]] = []

    def capture(event: dict[str, Any], context: Any) -> dict[str, Any]:
        events.append(copy.deepcopy(event))
        return {"batchItemFailures": []}

    poller = make_poller(capture, ddb_client, table_name, endpoint)
    ingest(ddb_client, table_name, ns)
    deadline = time.monotonic() + 10
    expected = len(fixture_spans(ns))
    while time.monotonic() < deadline:
        poller.poll_once()
        got = sum(int(r["dynamodb"]["NewImage"]["span_count"]["N"]) for e in events
                  for r in e["Records"])
        if got >= expected:
            break
        time.sleep(0.05)
    assert events, "no stream records"
    return events


def synthetic_record(seq: int, names: list[str], *, trace: int = 1) -> dict[str, Any]:
    """A Lambda stream record of a span item holding spans named ``names`` (raw only)."""
    from skewgate.wire import Resource, ResourceSpans, ScopeSpans, Span, TracesRequest
    from skewgate.wire.encode import key_value

    trace_id = f"{trace:032x}"
    spans = [
        Span(
            trace_id=trace_id, span_id=f"{seq:08x}{i:08x}", name=name,
            start_time_unix_nano=1_700_000_000_000_000_000 + i,
            end_time_unix_nano=1_700_000_000_100_000_000 + i,
        )
        for i, name in enumerate(names)
    ]
    resource = Resource(attributes=[key_value("service.name", "synthetic")])
    request = TracesRequest([ResourceSpans(resource, [ScopeSpans(None, spans)])])
    blob = zlib.compress(encode_request(request))
    keys = {"PK": {"S": f"TRACE#{trace_id}"}, "SK": {"S": f"SPANS#b{seq}#g#0000"}}
    return {
        "eventID": f"e{seq}",
        "eventName": "INSERT",
        "eventSource": "aws:dynamodb",
        "eventVersion": "1.1",
        "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/x",
        "dynamodb": {
            "Keys": keys,
            "NewImage": {
                **keys,
                "type": {"S": "spans"},
                "span_count": {"N": str(len(spans))},
                "raw": {"B": base64.b64encode(blob).decode()},
                "applied": {"BOOL": False},
                "received_at_ms": {"N": "1700000000000"},
            },
            "SequenceNumber": f"{seq:021d}",
            "SizeBytes": len(blob),
            "StreamViewType": "NEW_IMAGE",
        },
    }


class Budget:
    """A Lambda context with ``seconds`` left."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


class MetricsRecorder:
    def __init__(self) -> None:
        self.values: defaultdict[str, float] = defaultdict(float)

    def add_metric(self, name: str, unit: Any, value: float) -> None:
        self.values[name] += value


def app_for(
    url: str, tmp_path: Path | None = None, **env: str
) -> tuple[ForwardApp, MetricsRecorder]:
    metrics = MetricsRecorder()
    environ = {"FORWARD_TARGET": "otlp", "FORWARD_ENDPOINT": url, "FORWARD_MARGIN_MS": "200",
               "TABLE_NAME": os.environ.get("TABLE_NAME", ""), **env}
    if tmp_path is not None:
        environ.setdefault("FORWARD_DLQ_FILE", str(tmp_path / "dlq.jsonl"))
    return build_forward_app(environ, metrics=metrics), metrics


def failures(response: dict[str, Any]) -> list[str]:
    return [f["itemIdentifier"] for f in response["batchItemFailures"]]


# --- configuration -------------------------------------------------------------------------


def test_headers_and_configuration() -> None:
    assert parse_headers("Authorization=Basic%20dXNlcjpwYXNz=, x-a = 1 ,") == {
        "Authorization": "Basic dXNlcjpwYXNz=",
        "x-a": "1",
    }
    with pytest.raises(ConfigError, match="FORWARD_HEADERS"):
        parse_headers("novalue")
    with pytest.raises(ConfigError, match="FORWARD_ENDPOINT: required"):
        ForwardSettings.from_env({"FORWARD_TARGET": "otlp"})
    with pytest.raises(ConfigError, match=r"FORWARD_ENDPOINT: .* is not an http"):
        ForwardSettings.from_env({"FORWARD_TARGET": "otlp", "FORWARD_ENDPOINT": "collector:4318"})
    with pytest.raises(ConfigError, match="FORWARD_TARGET"):
        ForwardSettings.from_env({"FORWARD_TARGET": "kafka"})
    with pytest.raises(ConfigError, match="FORWARD_MAX_REQUEST_SPANS"):
        ForwardSettings.from_env({"FORWARD_MAX_REQUEST_SPANS": "0"})
    with pytest.raises(ConfigError, match="AWS_REGION"):
        ForwardSettings.from_env({"FORWARD_TARGET": "xray"})
    xray = ForwardSettings.from_env({"FORWARD_TARGET": "xray", "AWS_REGION": "eu-west-1"})
    assert xray.endpoint() == "https://xray.eu-west-1.amazonaws.com/v1/traces"
    assert "secret" not in ForwardSettings.from_env(
        {"FORWARD_TARGET": "otlp", "FORWARD_ENDPOINT": "http://c:4318/v1/traces",
         "FORWARD_HEADERS": "api-key=secret"}
    ).describe()


def test_filter_is_the_templates() -> None:
    """The local poller applies the same FilterCriteria as the deployed event source mapping."""
    template = load_template(REPO / "template.yaml")
    function = template["Resources"].get("ForwardFunction")
    if function is None:
        pytest.skip("template.yaml has no ForwardFunction yet")
    events = function["Properties"]["Events"]
    (stream,) = [e for e in events.values() if e["Type"] == "DynamoDB"]
    patterns = [json.loads(f["Pattern"]) for f in stream["Properties"]["FilterCriteria"]["Filters"]]
    assert patterns == [FILTER_PATTERN]
    assert not matches_filter({"eventName": "REMOVE", "dynamodb": {"NewImage": {}}})
    assert not matches_filter(
        {"eventName": "INSERT", "dynamodb": {"NewImage": {"type": {"S": "sample"}}}}
    )


# --- end to end through the stream ---------------------------------------------------------


def test_spans_arrive_corrected_exactly_once(
    ddb_client: Any, table_name: str, dynamodb_endpoint: str, receiver: Receiver
) -> None:
    app, metrics = app_for(
        receiver.url, FORWARD_HEADERS="x-api-key=k%3D1,x-tenant=browser"
    )
    poller = make_poller(app.handle, ddb_client, table_name, dynamodb_endpoint)
    ns = [1, 2, 3, 4, 5, 6, 7, 8]
    ingest(ddb_client, table_name, ns)
    sent = fixture_spans(ns)
    ahead = set(fixture_spans([1, 2, 3, 4]))
    deadline = time.monotonic() + 10
    while len(receiver.spans()) < len(sent) and time.monotonic() < deadline:
        poller.poll_once()
        time.sleep(0.05)

    got = receiver.spans()
    ids = Counter(span.span_id.hex() for _, span in got)
    assert set(ids) == set(sent) and set(ids.values()) == {1}, ids  # all, exactly once
    assert metrics.values["SpansForwarded"] == len(sent)
    for request in receiver.received:
        assert request.path == "/v1/traces"
        assert request.headers["content-type"] == "application/x-protobuf"
        assert request.headers["content-encoding"] == "gzip"
        assert request.headers["x-api-key"] == "k=1"
        assert request.headers["x-tenant"] == "browser"
    for resource, span in got:
        original = sent[span.span_id.hex()]
        attrs = attributes(span)
        services = {kv.key: kv.value.string_value for kv in resource.attributes}
        assert services.get("service.name"), services
        if span.span_id.hex() in ahead:
            offset_ms = attrs["clock_skew.offset_ms"]
            assert abs(offset_ms + 800) < 50, offset_ms
            assert attrs["clock_skew.method"] == "send_time"
            assert attrs["clock_skew.lower_ms"] <= -800 <= attrs["clock_skew.upper_ms"] + 10
            assert attrs["clock_skew.original_start_time_unix_nano"] == (
                original.start_time_unix_nano
            )
            assert attrs["clock_skew.original_end_time_unix_nano"] == original.end_time_unix_nano
            shift = round(offset_ms * 1e6)
            assert span.start_time_unix_nano == original.start_time_unix_nano + shift
            assert span.end_time_unix_nano == original.end_time_unix_nano + shift
            for event, sent_event in zip(span.events, original.events, strict=True):
                assert event.time_unix_nano == sent_event.time_unix_nano + shift
        else:  # in sync: forwarded raw, untouched
            assert not any(k.startswith("clock_skew.") for k in attrs), attrs
            assert span.start_time_unix_nano == original.start_time_unix_nano
            assert span.end_time_unix_nano == original.end_time_unix_nano
    # Merged: one resource per distinct resource, not one per stored item.
    for request in receiver.received:
        resources = [rs.resource.SerializeToString() for rs in request.request.resource_spans]
        assert len(resources) == len(set(resources))


def test_receiver_down_then_up_loses_nothing(
    ddb_client: Any, table_name: str, dynamodb_endpoint: str
) -> None:
    receiver = Receiver(port=free_port())  # reserved, not listening yet
    app, metrics = app_for(receiver.url, FORWARD_MARGIN_MS="100")
    poller = make_poller(
        app.handle, ddb_client, table_name, dynamodb_endpoint, function_timeout_s=0.8,
        max_retries=100,
    )
    ns = [1, 2, 5, 6]
    ingest(ddb_client, table_name, ns)
    sent = fixture_spans(ns)
    started = time.monotonic()
    try:
        deadline = started + 15
        while len({s.span_id for _, s in receiver.spans()}) < len(sent):
            assert time.monotonic() < deadline, "spans still missing"
            if receiver.server is None and time.monotonic() - started > 1.0:
                receiver.start()  # the collector comes back
            poller.poll_once()
            time.sleep(0.05)
    finally:
        receiver.stop()
    ids = {span.span_id.hex() for _, span in receiver.spans()}
    assert ids == set(sent)  # every span at least once
    assert metrics.values["ForwardRecordsRetried"] > 0  # records went back to the stream
    assert metrics.values["ForwardRetries"] > 0  # and were retried inside invocations
    assert metrics.values["ForwardDeadLettered"] == 0


def test_local_runner_forwards_to_a_collector(
    dynamodb_endpoint: str, receiver: Receiver, tmp_path: Path
) -> None:
    """``make run`` with FORWARD_TARGET=otlp: spans posted to /v1/traces reach the collector."""
    port = free_port()
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_endpoint,
        "TABLE_NAME": f"fwd-e2e-{os.getpid()}-{time.monotonic_ns() % 100000}",
        "PORT": str(port),
        "FORWARD_TARGET": "otlp",
        "FORWARD_ENDPOINT": receiver.url,
        "FORWARD_DLQ_FILE": str(tmp_path / "dlq.jsonl"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "skewgate_tools.local.run"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Forward DLQ"):
                break
        output = "".join(lines)
        assert f"Forwarding       otlp -> {receiver.url}" in output, output
        # Fixture 1 (clock 800 ms ahead), moved to now as a whole.
        fx = fixture(1)
        shift_ms = int(time.time() * 1000) - int(fx["received_at_ms"])
        body = rebase(fx["body"], shift_ms * 1_000_000)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/traces",
            data=json.dumps(body).encode(),
            headers={
                "content-type": "application/json",
                "x-sent-at": str(float(fx["headers"]["x-sent-at"]) + shift_ms),
            },
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        sent = fixture_spans([1])
        deadline = time.monotonic() + 10
        while len(receiver.spans()) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.1)
        got = receiver.spans()
        assert {s.span_id.hex() for _, s in got} == set(sent)
        assert all("clock_skew.offset_ms" in attributes(s) for _, s in got)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def test_runner_says_when_forwarding_is_off() -> None:
    lines: list[str] = []
    stop = start_stream_forwarder(
        "unused", environ={"FORWARD_TARGET": "none"}, announce=lines.append
    )
    assert lines == ["Forwarding       off (FORWARD_TARGET=none)"]
    stop.set()


# --- delivery semantics --------------------------------------------------------------------


def test_sample_stream_event(receiver: Receiver) -> None:
    """events/stream-spans.json (also for ``sam local invoke``) forwards every span."""
    event = json.loads((EVENTS / "stream-spans.json").read_text())
    app, _ = app_for(receiver.url)
    assert failures(app.handle(event, Budget(5))) == []
    expected = sum(
        int(r["dynamodb"]["NewImage"]["span_count"]["N"])
        for r in event["Records"]
        if matches_filter(r)
    )
    assert len(receiver.spans()) == expected > 0
    corrected = [s for _, s in receiver.spans() if "clock_skew.offset_ms" in attributes(s)]
    assert 0 < len(corrected) < expected  # one corrected item, one forwarded raw


def test_none_target_acknowledges_without_sending(receiver: Receiver) -> None:
    app = build_forward_app({"FORWARD_TARGET": "none", "FORWARD_ENDPOINT": receiver.url})
    event = {"Records": [synthetic_record(1, ["a"])]}
    assert failures(app.handle(event, Budget(5))) == []
    assert receiver.attempts == []


def test_permanent_400_goes_to_the_dead_letter_queue(receiver: Receiver, tmp_path: Path) -> None:
    receiver.respond = lambda got: status_reply(400, "span.name must not be empty")
    app, metrics = app_for(receiver.url, tmp_path)
    event = {"Records": [synthetic_record(1, ["a"]), synthetic_record(2, ["b", "c"])]}
    started = time.monotonic()
    response = app.handle(event, Budget(5))
    assert time.monotonic() - started < 2  # no retrying a permanent answer
    assert failures(response) == []  # dead-lettered, so the shard moves on
    letters = [json.loads(line) for line in (tmp_path / "dlq.jsonl").read_text().splitlines()]
    assert sorted(m["sequenceNumber"] for m in letters) == [f"{1:021d}", f"{2:021d}"]
    for letter in letters:
        assert letter["status"] == 400
        assert "span.name must not be empty" in letter["reason"]
        assert letter["keys"]["PK"].startswith("TRACE#")
        assert letter["keys"]["SK"].startswith("SPANS#")
    assert metrics.values["ForwardDeadLettered"] == 2
    assert metrics.values["ForwardPermanentFailures"] == 2
    assert metrics.values["SpansForwarded"] == 0


def test_permanent_failure_without_a_dlq_is_reported(receiver: Receiver) -> None:
    """No DLQ (or it cannot be written): Lambda retries, then its OnFailure destination."""
    receiver.respond = lambda got: status_reply(403, "not authorized")
    app, _ = app_for(receiver.url)
    event = {"Records": [synthetic_record(1, ["a"]), synthetic_record(2, ["b"])]}
    assert failures(app.handle(event, Budget(5))) == [f"{1:021d}", f"{2:021d}"]
    assert len(receiver.attempts) == 1  # 403 concerns every record: no bisection


def test_a_refused_record_is_isolated(receiver: Receiver, tmp_path: Path) -> None:
    def refuse_poison(got: Received) -> Reply | None:
        names = {s.name for rs in got.request.resource_spans for ss in rs.scope_spans
                 for s in ss.spans}
        return status_reply(400, "poison") if "poison" in names else None

    receiver.respond = refuse_poison
    app, metrics = app_for(receiver.url, tmp_path)
    records = [synthetic_record(i, [f"s{i}", "poison" if i == 5 else f"t{i}"]) for i in range(8)]
    assert failures(app.handle({"Records": records}, Budget(5))) == []
    assert sorted(s.name for _, s in receiver.spans()) == sorted(
        n for i in range(8) if i != 5 for n in (f"s{i}", f"t{i}")
    )
    letters = [json.loads(line) for line in (tmp_path / "dlq.jsonl").read_text().splitlines()]
    assert [m["sequenceNumber"] for m in letters] == [f"{5:021d}"]
    assert metrics.values["SpansForwarded"] == 14


def test_413_splits_the_request_instead_of_dropping(receiver: Receiver, tmp_path: Path) -> None:
    limit = 1500

    def small_bodies(got: Received) -> Reply | None:
        if got.uncompressed_size > limit:
            return status_reply(413, "request too large")
        return None

    receiver.respond = small_bodies
    app, metrics = app_for(receiver.url, tmp_path)
    # Ten small records, and one record alone larger than the limit (split inside the item).
    records = [synthetic_record(i, [f"span-{i}-{j}" for j in range(3)]) for i in range(10)]
    records.append(synthetic_record(10, [f"big-{j}-" + "x" * 100 for j in range(30)], trace=2))
    assert failures(app.handle({"Records": records}, Budget(10))) == []
    names = Counter(s.name for _, s in receiver.spans())
    assert len(names) == 60 and set(names.values()) == {1}  # all, once: 413s were not accepted
    assert any(status == 413 for _, status in receiver.attempts)
    assert all(got.uncompressed_size <= limit for got in receiver.received)
    assert metrics.values["ForwardSplits"] > 0
    assert not (tmp_path / "dlq.jsonl").exists()


def test_configured_limits_split_before_sending(receiver: Receiver) -> None:
    app, _ = app_for(
        receiver.url, FORWARD_MAX_REQUEST_SPANS="4", FORWARD_MAX_REQUEST_BYTES="100000"
    )
    records = [synthetic_record(i, [f"s{i}-{j}" for j in range(3)]) for i in range(5)]
    records.append(synthetic_record(5, [f"many-{j}" for j in range(9)], trace=3))
    assert failures(app.handle({"Records": records}, Budget(5))) == []
    counts = [sum(len(ss.spans) for rs in g.request.resource_spans for ss in rs.scope_spans)
              for g in receiver.received]
    assert max(counts) <= 4 and sum(counts) == 24
    assert all(status == 200 for _, status in receiver.attempts)


def test_a_single_span_too_large_is_dead_lettered(receiver: Receiver, tmp_path: Path) -> None:
    receiver.respond = lambda got: status_reply(413, "too large") if got.uncompressed_size > 300 \
        else None
    app, _ = app_for(receiver.url, tmp_path)
    records = [synthetic_record(1, ["ok"]), synthetic_record(2, ["y" * 1000], trace=2)]
    assert failures(app.handle({"Records": records}, Budget(5))) == []
    assert [s.name for _, s in receiver.spans()] == ["ok"]
    (letter,) = [json.loads(line) for line in (tmp_path / "dlq.jsonl").read_text().splitlines()]
    assert letter["status"] == 413 and "single span" in letter["reason"]


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_retry_after_is_honoured(receiver: Receiver, form: str) -> None:
    calls: list[float] = []

    def throttle_once(got: Received) -> Reply | None:
        calls.append(time.monotonic())
        if len(calls) > 1:
            return None
        # An HTTP date has whole seconds: ask for 2 s, so the wait is in (1, 2].
        value = "1" if form == "seconds" else formatdate(time.time() + 2, usegmt=True)
        return status_reply(503 if form == "seconds" else 429, "busy", {"retry-after": value})

    receiver.respond = throttle_once
    app, metrics = app_for(receiver.url)
    assert failures(app.handle({"Records": [synthetic_record(1, ["a"])]}, Budget(10))) == []
    waited = calls[1] - calls[0]
    assert 0.95 <= waited < 2.5, waited
    assert metrics.values["ForwardRetries"] == 1 and metrics.values["SpansForwarded"] == 1


def test_retry_after_beyond_the_budget_is_left_to_lambda(receiver: Receiver) -> None:
    receiver.respond = lambda got: status_reply(503, "maintenance", {"retry-after": "30"})
    app, _ = app_for(receiver.url, FORWARD_MARGIN_MS="0")
    started = time.monotonic()
    response = app.handle({"Records": [synthetic_record(1, ["a"])]}, Budget(0.5))
    elapsed = time.monotonic() - started
    assert failures(response) == [f"{1:021d}"]  # back to the stream, retried later
    assert len(receiver.attempts) == 1  # not hammered
    assert elapsed <= 1.0


def test_partial_success_is_a_success_and_counted(receiver: Receiver) -> None:
    response = ExportTraceServiceResponse()
    response.partial_success.rejected_spans = 1
    response.partial_success.error_message = "span too old"
    receiver.respond = lambda got: (
        200, {"content-type": "application/x-protobuf"}, response.SerializeToString()
    )
    app, metrics = app_for(receiver.url)
    event = {"Records": [synthetic_record(1, ["a", "b"])]}
    assert failures(app.handle(event, Budget(5))) == []
    assert metrics.values["ForwardRejectedSpans"] == 1


def test_corrupt_item_is_dead_lettered(receiver: Receiver, tmp_path: Path) -> None:
    bad = synthetic_record(1, ["a"])
    bad["dynamodb"]["NewImage"]["raw"] = {"B": base64.b64encode(b"not zlib").decode()}
    app, _ = app_for(receiver.url, tmp_path)
    event = {"Records": [bad, synthetic_record(2, ["b"])]}
    assert failures(app.handle(event, Budget(5))) == []
    assert [s.name for _, s in receiver.spans()] == ["b"]
    (letter,) = [json.loads(line) for line in (tmp_path / "dlq.jsonl").read_text().splitlines()]
    assert "undecodable" in letter["reason"]


def test_lambda_adapter_emits_metrics(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """functions/forward/app.py: Powertools batch response and EMF metrics."""
    import importlib.util

    monkeypatch.setenv("FORWARD_TARGET", "otlp")
    monkeypatch.setenv("FORWARD_ENDPOINT", receiver.url)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "SkewgateTest")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "skewgate")
    spec = importlib.util.spec_from_file_location("forward_app", REPO / "functions/forward/app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    class Context(Budget):
        function_name = "forward"
        memory_limit_in_mb = 512
        invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:forward"
        aws_request_id = "req-1"

    response = module.handler({"Records": [synthetic_record(1, ["a", "b"])]}, Context(5))
    assert response == {"batchItemFailures": []}
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    (metrics,) = emf
    assert metrics["SpansForwarded"] in (2.0, [2.0]) and metrics["target"] == "otlp"
    assert metrics["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "SkewgateTest"


# --- X-Ray: SigV4 ---------------------------------------------------------------------------


def _sigv4_signature(
    secret: str, method: str, path: str, headers: dict[str, str], signed: list[str], body: bytes,
    amz_date: str, scope: str,
) -> str:
    """AWS Signature Version 4, written out from the specification (not botocore)."""
    canonical_headers = "".join(
        f"{name}:{' '.join(headers[name].strip().split())}\n" for name in signed
    )
    canonical_request = "\n".join(
        [method, path, "", canonical_headers, ";".join(signed), hashlib.sha256(body).hexdigest()]
    )
    string_to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope,
         hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    date, region, service, terminator = scope.split("/")
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, terminator):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def test_xray_requests_are_sigv4_signed(receiver: Receiver) -> None:
    from botocore.credentials import Credentials

    secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    credentials = Credentials("AKIDEXAMPLE", secret, "session-token-example")
    app = build_forward_app(
        {"FORWARD_TARGET": "xray", "AWS_REGION": "eu-central-1", "FORWARD_ENDPOINT": receiver.url},
        credentials=credentials,
    )
    assert app.settings.describe().startswith("xray -> http://127.0.0.1")
    event = {"Records": [synthetic_record(1, ["a"]), synthetic_record(2, ["b"])]}
    assert failures(app.handle(event, Budget(5))) == []
    (got,) = receiver.received
    auth = got.headers["authorization"]
    match = re.fullmatch(
        r"AWS4-HMAC-SHA256 Credential=(\w+)/(\d{8}/[\w-]+/\w+/aws4_request), "
        r"SignedHeaders=([\w;-]+), Signature=([0-9a-f]{64})",
        auth,
    )
    assert match, auth
    access_key, scope, signed_headers, signature = match.groups()
    signed = signed_headers.split(";")
    assert access_key == "AKIDEXAMPLE"
    assert scope.endswith("/eu-central-1/xray/aws4_request")
    assert {"host", "x-amz-date", "content-type", "content-encoding",
            "x-amz-security-token"} <= set(signed)
    assert got.headers["x-amz-security-token"] == "session-token-example"
    amz_date = got.headers["x-amz-date"]
    assert scope.startswith(amz_date[:8])
    assert abs(time.mktime(time.strptime(amz_date, "%Y%m%dT%H%M%SZ")) - time.mktime(
        time.gmtime())) < 60
    expected = _sigv4_signature(
        secret, "POST", "/v1/traces", got.headers, signed, got.body, amz_date, scope
    )
    assert hmac.compare_digest(expected, signature)
    # The check is a real one: another body or key gives another signature.
    assert _sigv4_signature(
        secret, "POST", "/v1/traces", got.headers, signed, got.body + b"x", amz_date, scope
    ) != signature
    assert _sigv4_signature(
        "other", "POST", "/v1/traces", got.headers, signed, got.body, amz_date, scope
    ) != signature


def test_xray_retries_500_and_signs_each_attempt(receiver: Receiver) -> None:
    from botocore.credentials import Credentials

    calls: list[str] = []

    def fail_once(got: Received) -> Reply | None:
        calls.append(got.headers["authorization"])
        return status_reply(500, "internal") if len(calls) == 1 else None

    receiver.respond = fail_once
    app = build_forward_app(
        {"FORWARD_TARGET": "xray", "AWS_REGION": "us-west-2", "FORWARD_ENDPOINT": receiver.url},
        credentials=Credentials("AKIDEXAMPLE", "secret"),
    )
    assert failures(app.handle({"Records": [synthetic_record(1, ["a"])]}, Budget(5))) == []
    assert len(calls) == 2 and len(receiver.received) == 1


# --- the local poller ----------------------------------------------------------------------


def test_poller_survives_errors_and_stops_on_its_event(
    ddb_client: Any, table_name: str, dynamodb_endpoint: str, receiver: Receiver
) -> None:
    app, _ = app_for(receiver.url)
    real = streams_client(dynamodb_endpoint)
    troubles = {"get_records": 1, "handler": 1}

    class FlakyStreams:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def get_records(self, **kwargs: Any) -> Any:
            if troubles["get_records"]:
                troubles["get_records"] -= 1
                raise ConnectionError("DynamoDB Local went away")
            return real.get_records(**kwargs)

    def flaky_handler(event: dict[str, Any], context: Any) -> Any:
        if troubles["handler"]:
            troubles["handler"] -= 1
            raise RuntimeError("bug")
        return app.handle(event, context)

    stop = threading.Event()
    poller = StreamPoller(
        flaky_handler, table_name, dynamodb=ddb_client, streams=FlakyStreams(),
        poll_interval_s=0.05, stop=stop,
    )
    poller.open()
    thread = threading.Thread(target=poller.run, daemon=True)
    thread.start()
    ingest(ddb_client, table_name, [1])
    sent = fixture_spans([1])
    deadline = time.monotonic() + 10
    while len(receiver.spans()) < len(sent) and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert troubles == {"get_records": 0, "handler": 0}
    assert {s.span_id.hex() for _, s in receiver.spans()} == set(sent)


class FakeStreams:
    """Just enough of the DynamoDB Streams API for shard lineage."""

    def __init__(self) -> None:
        self.shards = [
            {"ShardId": "old", "SequenceNumberRange": {"StartingSequenceNumber": "1",
                                                       "EndingSequenceNumber": "9"}},
            {"ShardId": "parent", "SequenceNumberRange": {"StartingSequenceNumber": "10"}},
        ]
        self.records = {"parent": [self.record("11")]}
        self.iterators: list[tuple[str, str]] = []

    @staticmethod
    def record(seq: str) -> dict[str, Any]:
        rec = synthetic_record(int(seq), [f"s{seq}"])
        return {k: v for k, v in rec.items() if k != "eventSourceARN"}

    def describe_stream(self, **kwargs: Any) -> Any:
        return {"StreamDescription": {"Shards": self.shards}}

    def get_shard_iterator(self, **kwargs: Any) -> Any:
        self.iterators.append((kwargs["ShardId"], kwargs["ShardIteratorType"]))
        return {"ShardIterator": kwargs["ShardId"]}

    def get_records(self, ShardIterator: str, Limit: int) -> Any:
        records = self.records.pop(ShardIterator, [])
        closed = ShardIterator == "parent" and any(s["ShardId"] == "child" for s in self.shards)
        return {"Records": records, "NextShardIterator": None if closed else ShardIterator}


def test_poller_follows_shard_lineage() -> None:
    class Table:
        def describe_table(self, TableName: str) -> Any:
            return {"Table": {"LatestStreamArn": "arn:stream"}}

    seen: list[str] = []

    def handler(event: dict[str, Any], context: Any) -> Any:
        seen.extend(r["dynamodb"]["SequenceNumber"] for r in event["Records"])
        return {"batchItemFailures": []}

    streams = FakeStreams()
    poller = StreamPoller(handler, "t", dynamodb=Table(), streams=streams, poll_interval_s=0)
    poller.open()
    # Shards open at start are read from LATEST; closed ones (history) are skipped.
    assert streams.iterators == [("parent", "LATEST")]
    poller.poll_once()
    # The parent closes and a child appears: the child is read from its start, after the
    # parent is drained, records in order.
    streams.shards = [*streams.shards, {"ShardId": "child", "ParentShardId": "parent",
                                        "SequenceNumberRange": {"StartingSequenceNumber": "20"}}]
    streams.records["parent"] = [FakeStreams.record("12")]
    streams.records["child"] = [FakeStreams.record("21")]
    for _ in range(3):
        poller.poll_once()
    assert ("child", "TRIM_HORIZON") in streams.iterators
    assert [int(s) for s in seen] == [11, 12, 21]


def test_dead_letters_can_be_redriven(
    ddb_client: Any, table_name: str, dynamodb_endpoint: str, receiver: Receiver, tmp_path: Path
) -> None:
    """Both kinds of dead letter (the function's, and the mapping's OnFailure) are pointers
    that can be followed again once the receiver is fixed: nothing is lost."""
    from skewgate_tools.redrive import redrive_file

    mode = {"answer": 400}
    receiver.respond = lambda got: (
        status_reply(mode["answer"], "no") if mode["answer"] != 200 else None
    )
    app, _ = app_for(receiver.url, tmp_path, FORWARD_MARGIN_MS="100")
    dlq = tmp_path / "dlq.jsonl"
    assert app.dead_letters is not None
    sink = app.dead_letters
    poller = make_poller(
        app.handle, ddb_client, table_name, dynamodb_endpoint, function_timeout_s=0.5,
        max_retries=0, on_failure=lambda message: sink.send([message]),
    )

    def drain() -> None:
        handed, idle, deadline = 0, 0, time.monotonic() + 10
        while (handed == 0 or idle < 3) and time.monotonic() < deadline:
            count = poller.poll_once()
            handed += count
            idle = 0 if count else idle + 1
            time.sleep(0.02)

    ingest(ddb_client, table_name, [1])  # refused: the function dead-letters each item
    drain()
    mode["answer"] = 503  # down: the mapping's retries run out (OnFailure)
    ingest(ddb_client, table_name, [5])
    drain()
    letters = [json.loads(line) for line in dlq.read_text().splitlines()]
    assert {m.get("source") for m in letters} == {"skewgate.forward", "skewgate.local.stream"}
    assert receiver.spans() == []

    mode["answer"] = 200
    fixed, _ = app_for(receiver.url)
    delivered, kept = redrive_file(
        dlq, fixed, dynamodb=ddb_client, streams=streams_client(dynamodb_endpoint),
        table_name=table_name,
    )
    assert (delivered, kept) == (len(letters), 0)
    assert dlq.read_text() == ""
    assert {s.span_id.hex() for _, s in receiver.spans()} == set(fixture_spans([1, 5]))
