"""Ingest hot path and cold start, as ratios against a baseline measured in the same run.

    python -m benchmarks.pipeline [--spans 512] [--repeat 200]

* JSON pipeline (decode → estimate → correct → OTLP protobuf encode of raw and corrected
  copies) vs ``json.loads`` of the same body;
* protobuf pipeline vs upb ``ParseFromString`` + ``SerializeToString`` of the same body;
* peak memory of the JSON pipeline vs ``json.loads`` (tracemalloc);
* DynamoDB items written per batch (span chunks + sample, day and state per session + marker);
* ingest cold init (fresh interpreter: import the Lambda module, settings, boto3 client) vs a
  bare ``import boto3; boto3.client("dynamodb")``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from skewgate.aws.codec import span_items
from skewgate.clock import PlanConfig, RequestFacts, plan_batch
from skewgate.wire import Limits, decode_request
from skewgate.wire.encode import encode_request

ROOT = Path(__file__).resolve().parents[1]


def otel_js_body(span_count: int, spans_per_trace: int = 16) -> tuple[bytes, float]:
    """A browser-like export: document-load/fetch spans, 6 attributes, some events."""
    now_ms = time.time() * 1000
    spans = []
    for i in range(span_count):
        if i % spans_per_trace == 0:
            trace_id = secrets.token_hex(16)
            parent = None
        span_id = secrets.token_hex(8)
        start = int((now_ms - 4000 + i) * 1e6)
        span: dict[str, Any] = {
            "traceId": trace_id,
            "spanId": span_id,
            "name": "HTTP GET" if i % 3 else "documentFetch",
            "kind": 3 if i % 3 else 1,
            "startTimeUnixNano": str(start),
            "endTimeUnixNano": str(start + 23_456_789),
            "attributes": [
                {"key": "http.method", "value": {"stringValue": "GET"}},
                {
                    "key": "http.url",
                    "value": {"stringValue": f"https://shop.example/api/items/{i}"},
                },
                {"key": "http.status_code", "value": {"intValue": 200}},
                {"key": "http.response_content_length", "value": {"intValue": 1234 + i}},
                {"key": "component", "value": {"stringValue": "fetch"}},
                {"key": "app.depth", "value": {"intValue": i % spans_per_trace}},
            ],
            "droppedAttributesCount": 0,
            "events": [
                {
                    "name": "fetchStart",
                    "timeUnixNano": str(start + 1000),
                    "attributes": [],
                    "droppedAttributesCount": 0,
                },
                {
                    "name": "responseEnd",
                    "timeUnixNano": str(start + 23_000_000),
                    "attributes": [],
                    "droppedAttributesCount": 0,
                },
            ]
            if i % 2 == 0
            else [],
            "droppedEventsCount": 0,
            "status": {"code": 0},
            "links": [],
            "droppedLinksCount": 0,
            "flags": 257,
        }
        if parent:
            span["parentSpanId"] = parent
        parent = span_id
        spans.append(span)
    body = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [
                        {"key": "service.name", "value": {"stringValue": "web-shop"}},
                        {"key": "session.id", "value": {"stringValue": "bench-session"}},
                        {"key": "telemetry.sdk.language", "value": {"stringValue": "webjs"}},
                        {"key": "telemetry.sdk.name", "value": {"stringValue": "opentelemetry"}},
                        {"key": "telemetry.sdk.version", "value": {"stringValue": "2.12.0"}},
                    ],
                    "droppedAttributesCount": 0,
                },
                "scopeSpans": [
                    {
                        "scope": {
                            "name": "@opentelemetry/instrumentation-fetch",
                            "version": "0.208.0",
                        },
                        "spans": spans,
                    }
                ],
            }
        ]
    }
    return json.dumps(body).encode(), now_ms + 800  # a client 800 ms ahead


def pipeline(
    body: bytes, content_type: str, sent_at_ms: float, limits: Limits, config: PlanConfig
) -> int:
    """What the ingest does before the DynamoDB write; returns the items it would write."""
    batch = decode_request(body, content_type, None, limits)
    # Received 30 ms after it was sent by a clock 800 ms ahead: the corrected path.
    facts = RequestFacts(received_at_ms=sent_at_ms - 770.0, sent_at=repr(sent_at_ms))
    plan = plan_batch(batch, facts, {}, config)
    items = 1  # the batch marker
    for session in plan.sessions:
        items += len(
            span_items(plan.batch_id, session.session_id, plan.received_at_ms,
                       session.estimate, session.chunks, 30 * 86_400)
        )
        items += 3 if session.sample is not None else 0  # sample, day, state
    return items


def paired(
    ours: Callable[[], object], base: Callable[[], object], repeat: int
) -> tuple[float, float]:
    """Medians (seconds) of ``ours`` and ``base`` timed alternately, so that a shared,
    noisy machine slows both alike and the ratio stays meaningful."""
    a, b = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        base()
        mid = time.perf_counter()
        ours()
        a.append(time.perf_counter() - mid)
        b.append(mid - start)
    return statistics.median(a), statistics.median(b)


def peak_bytes(fn: Callable[[], object]) -> int:
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def cold_start(code: str, env: dict[str, str], repeat: int = 5) -> float:
    runs = []
    for _ in range(repeat):
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import time; t=time.perf_counter()\n{code}\nprint(time.perf_counter()-t)",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(runs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=100)
    args = parser.parse_args(argv)
    body, sent_at = otel_js_body(args.spans)
    limits, config = Limits(), PlanConfig()
    pb_body = encode_request(decode_request(body, "application/json", None, limits).request)

    def upb_round() -> bytes:
        return ExportTraceServiceRequest.FromString(pb_body).SerializeToString()

    t_json, t_loads = paired(
        lambda: pipeline(body, "application/json", sent_at, limits, config),
        lambda: json.loads(body),
        args.repeat,
    )
    t_pb, t_upb = paired(
        lambda: pipeline(pb_body, "application/x-protobuf", sent_at, limits, config),
        upb_round,
        args.repeat,
    )
    m_loads = peak_bytes(lambda: json.loads(body))
    m_json = peak_bytes(lambda: pipeline(body, "application/json", sent_at, limits, config))
    items = pipeline(body, "application/json", sent_at, limits, config)

    env = {
        **os.environ,
        "TABLE_NAME": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "PYTHONPATH": str(ROOT / "functions" / "ingest"),
    }
    t_init = cold_start("import app", env)
    t_boto = cold_start("import boto3; boto3.client('dynamodb')", env)

    rows = [
        ("JSON pipeline / json.loads", t_json, t_loads),
        ("protobuf pipeline / upb parse+serialize", t_pb, t_upb),
        ("JSON pipeline peak memory / json.loads", m_json, m_loads),
        ("ingest cold init / bare boto3 client", t_init, t_boto),
    ]
    print(
        f"{args.spans}-span OTel-JS-shaped batch: {len(body) / 1024:.0f} KiB JSON, "
        f"{len(pb_body) / 1024:.0f} KiB protobuf; Python {sys.version.split()[0]}"
    )
    print()
    print("| measure | ours | baseline | ratio |")
    print("| --- | --- | --- | --- |")
    for name, ours, base in rows:
        if "memory" in name:
            print(
                f"| {name} | {ours / 1024:.0f} KiB | {base / 1024:.0f} KiB | {ours / base:.2f}× |"
            )
        else:
            print(f"| {name} | {ours * 1000:.2f} ms | {base * 1000:.2f} ms | {ours / base:.2f}× |")
    print(
        f"| DynamoDB items written per batch | {items} | {args.spans} spans | "
        f"{items / args.spans:.3f} per span |"
    )


if __name__ == "__main__":
    main()
