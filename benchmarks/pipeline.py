"""The ingest hot path, as ratios against a baseline measured in the same run.

    python -m benchmarks.pipeline [--spans 512] [--repeat 100] [--quick]

On a 512-span OTel-JS-shaped batch (32 traces, one session, a clock 800 ms ahead: the
corrected path) the pipeline is what the ingest does before DynamoDB: check the body
(:func:`skewgate.wire.scan.scan_request`), plan the commit (:func:`skewgate.clock.plan_batch`:
estimate, adjusted copy, compression) and build the items. It is timed against:

* P1 JSON: ``json.loads`` of the same body;
* P2 protobuf: upb ``ParseFromString`` + ``SerializeToString`` of the same body;
* P3 the whole handler (``IngestApp.handle`` against DynamoDB Local, botocore included) in
  process CPU time, against P1's pipeline;
* P4 cold init (a fresh interpreter importing the ingest function, settings and client)
  against a bare ``import boto3; boto3.client("dynamodb")``;
* P5 peak RSS growth while ingesting a 5 MB batch, against the body's size.

It also counts the items a batch writes and their write units, with format 1's figures (before
the body was kept once) measured on the same kind of batch at commit 1809f84 as the reference,
compares codecs on the body, and prices a million spans. Ours and the baseline are timed
alternately, so a noisy machine slows both alike; medians.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from skewgate.aws.codec import (
    batch_item,
    body_items,
    day_update,
    sample_item,
    state_put,
    trace_index_items,
)
from skewgate.clock import BatchPlan, PlanConfig, RequestFacts, plan_batch
from skewgate.wire import JSON, PROTOBUF, Limits, decode_request
from skewgate.wire.blob import pack
from skewgate.wire.encode import encode_request
from skewgate.wire.scan import scan_request

ROOT = Path(__file__).resolve().parents[1]

#: Format 1 (commit 1809f84) on the same 512-span, 32-trace batch: 32 span items of 3 KB
#: through BatchWriteItem and 4 items of ~2.5 KB in the commit transaction (2 WRU per KB).
FORMAT1_ITEMS = 36
FORMAT1_WRU = 96 + 10

#: Prices, us-east-1, as published by AWS in 2025 (Lambda arm64, DynamoDB on-demand after
#: the November 2024 cut, API Gateway HTTP API first 300 M requests).
LAMBDA_GB_SECOND_USD = 0.0000133334
LAMBDA_REQUEST_USD = 0.20 / 1e6
DYNAMODB_WRU_USD = 0.625 / 1e6
DYNAMODB_RRU_USD = 0.125 / 1e6
HTTP_API_REQUEST_USD = 1.00 / 1e6
LAMBDA_MEMORY_GB = 1.0  # template.yaml MemorySize: 1024
DYNAMODB_ROUND_TRIP_S = 0.008  # assumed in-region latency of one call


def otel_js_body(span_count: int, spans_per_trace: int = 16, *, session: str = "bench-session",
                 now_ms: float | None = None) -> tuple[bytes, float]:
    """A browser-like export as OTel JS writes it (compact JSON): document-load/fetch spans,
    6 attributes, events on half of them."""
    now_ms = time.time() * 1000 if now_ms is None else now_ms
    spans = []
    trace_id = ""
    parent = None
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
                {"key": "http.url",
                 "value": {"stringValue": f"https://shop.example/api/items/{i}"}},
                {"key": "http.status_code", "value": {"intValue": 200}},
                {"key": "http.response_content_length", "value": {"intValue": 1234 + i}},
                {"key": "component", "value": {"stringValue": "fetch"}},
                {"key": "app.depth", "value": {"intValue": i % spans_per_trace}},
            ],
            "droppedAttributesCount": 0,
            "events": [
                {"name": "fetchStart", "timeUnixNano": str(start + 1000), "attributes": [],
                 "droppedAttributesCount": 0},
                {"name": "responseEnd", "timeUnixNano": str(start + 23_000_000),
                 "attributes": [], "droppedAttributesCount": 0},
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
                        {"key": "session.id", "value": {"stringValue": session}},
                        {"key": "telemetry.sdk.language", "value": {"stringValue": "webjs"}},
                        {"key": "telemetry.sdk.name", "value": {"stringValue": "opentelemetry"}},
                        {"key": "telemetry.sdk.version", "value": {"stringValue": "2.12.0"}},
                    ],
                    "droppedAttributesCount": 0,
                },
                "scopeSpans": [
                    {"scope": {"name": "@opentelemetry/instrumentation-fetch",
                               "version": "0.208.0"},
                     "spans": spans}
                ],
            }
        ]
    }
    return json.dumps(body, separators=(",", ":")).encode(), now_ms + 800  # 800 ms ahead


def items_of(plan: BatchPlan, retention_s: int = 30 * 86_400) -> tuple[list[Any], list[Any],
                                                                        list[Any]]:
    """The items one commit writes: (transaction, body chunks, trace index)."""
    ttl = plan.received_at_ms // 1000 + retention_s
    transaction: list[Any] = [batch_item(plan.record, ttl=ttl)]
    for s in plan.sessions:
        if s.sample is not None and s.next_state is not None:
            transaction.append(sample_item(s.sample, retention_s))
            update = day_update("t", s.sample, s.next_state.day_max_proven_abs_ms, retention_s)
            transaction.append({k[1:]: v for k, v in update["ExpressionAttributeValues"].items()})
            transaction.append(state_put("t", s.next_state, s.basis, {"N": str(ttl)})["Item"])
    chunks = body_items(plan.batch_id, plan.attempt, plan.chunks, ttl)
    index = trace_index_items(plan.batch_id, plan.trace_ids, ttl)
    return transaction, chunks, index


def _size(value: dict[str, Any]) -> int:
    """An attribute value's size as DynamoDB counts it."""
    ((kind, x),) = value.items()
    if kind == "S":
        return len(x.encode())
    if kind == "B":
        return len(x)
    if kind == "N":
        return (len(x.lstrip("-").replace(".", "")) + 1) // 2 + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(_size(e) + 1 for e in x)
    if kind == "M":
        return 3 + sum(len(k) + _size(e) + 1 for k, e in x.items())
    raise ValueError(kind)


def wru(item: dict[str, Any], transactional: bool = False) -> int:
    kb = math.ceil(sum(len(k) + _size(v) for k, v in item.items()) / 1024)
    return kb * (2 if transactional else 1)


def pipeline(body: bytes, kind: str, facts: RequestFacts, config: PlanConfig) -> BatchPlan:
    """What the ingest does before the DynamoDB write."""
    plan = plan_batch(scan_request(body, kind, config.limits), facts, {}, config)
    items_of(plan)
    return plan


def paired(ours: Callable[[], object], base: Callable[[], object], repeat: int
           ) -> tuple[float, float]:
    """Medians (seconds) of ``ours`` and ``base`` timed alternately."""
    a, b = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        base()
        mid = time.perf_counter()
        ours()
        a.append(time.perf_counter() - mid)
        b.append(mid - start)
    return statistics.median(a), statistics.median(b)


def cold_start(code: str, env: dict[str, str], repeat: int = 7) -> float:
    runs = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c",
             f"import time; t=time.perf_counter()\n{code}\nprint(time.perf_counter()-t)"],
            env=env, capture_output=True, text=True, check=True,
        )
        runs.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(runs)


_RSS_PROBE = """
import gc, json, os, sys, threading, time
from benchmarks.pipeline import otel_js_body, pipeline
from skewgate.clock import PlanConfig, RequestFacts
from skewgate.wire import Limits
PAGE = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE
body = open(sys.argv[1], "rb").read()
facts = RequestFacts(received_at_ms=float(sys.argv[2]) - 770.0, sent_at=sys.argv[2])
config = PlanConfig(limits=Limits(max_spans=20_000), max_traces=1_000)
small, sent = otel_js_body(16)  # every lazy import happens here, not in the measurement
pipeline(small, "application/json", RequestFacts(received_at_ms=sent - 770.0,
                                                  sent_at=repr(sent)), config)
gc.collect()
peak = before = rss()
done = threading.Event()
def sample():
    global peak
    while not done.is_set():
        peak = max(peak, rss())
        time.sleep(0.0005)
sampler = threading.Thread(target=sample)
sampler.start()
pipeline(body, "application/json", facts, config)
done.set()
sampler.join()
peak = max(peak, rss())
print(json.dumps({"growth": peak - before, "body": len(body)}))
"""


def rss_growth(spans: int) -> tuple[int, int]:
    """Peak RSS growth (bytes) ingesting a body of ``spans`` spans, and the body's size."""
    body, sent = otel_js_body(spans)
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        f.write(body)
    try:
        out = subprocess.run(
            [sys.executable, "-c", _RSS_PROBE, f.name, repr(sent)],
            capture_output=True, text=True, check=True, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    finally:
        os.unlink(f.name)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["growth"], result["body"]


def handler_cpu(spans: int, repeat: int) -> tuple[float, float, int]:
    """Median process CPU of one ``IngestApp.handle`` against DynamoDB Local, its pipeline's
    CPU on the same bodies, and the calls it made per batch."""
    from skewgate.aws.client import dynamodb_client
    from skewgate.aws.ingest import IngestApp
    from skewgate.aws.settings import IngestSettings
    from skewgate.aws.store import Store
    from skewgate_tools.local import dynamodb as ddb
    from skewgate_tools.local.server import build_event

    with ddb.dynamodb_local(repo_root=ROOT) as endpoint:
        os.environ.update(AWS_ENDPOINT_URL_DYNAMODB=endpoint, AWS_ACCESS_KEY_ID="local",
                          AWS_SECRET_ACCESS_KEY="local", AWS_DEFAULT_REGION="us-east-1")
        client = dynamodb_client()
        ddb.ensure_table(client, "bench", ROOT / "template.yaml")
        calls = {"n": 0}

        def count(**_: object) -> None:
            calls["n"] += 1

        # Operations boto3 itself makes, and the lean JSON-protocol caller's own.
        client.meta.events.register("before-call.dynamodb", count)
        lean_call = client._call

        def counted_call(operation: str, params: dict[str, object]) -> object:
            count()
            return lean_call(operation, params)

        client._call = counted_call
        settings = IngestSettings.from_env({"TABLE_NAME": "bench"})
        app = IngestApp(settings, Store(client, "bench"), metrics=None)
        config = app.plan_config
        handler, alone = [], []
        for i in range(repeat + 3):
            body, sent = otel_js_body(spans, session=f"bench-{i}")
            received = sent - 770.0
            event = build_event("POST", "/v1/traces",
                                [("content-type", "application/json"),
                                 ("x-sent-at", repr(sent))], body, received)
            facts = RequestFacts(received_at_ms=received, sent_at=repr(sent))
            gc.collect()
            t0 = time.process_time()
            pipeline(body, JSON, facts, config)
            t1 = time.process_time()
            before = calls["n"]
            response = app.handle(event)
            t2 = time.process_time()
            assert response["statusCode"] == 200, response
            if i >= 3:  # warm
                alone.append(t1 - t0)
                handler.append(t2 - t1)
        return statistics.median(handler), statistics.median(alone), calls["n"] - before


Part = tuple[str, float, float, str]


def _json_parts(body: bytes, facts: RequestFacts, config: PlanConfig, repeat: int) -> list[Part]:
    from skewgate.clock.plan import _adjusted

    def base() -> object:
        return json.loads(body)

    scan = scan_request(body, JSON, config.limits)
    sessions = plan_batch(scan, facts, {}, config).sessions
    adjusted = _adjusted(scan, sessions)
    assert isinstance(adjusted, bytes | bytearray) and scan.times is not None
    return [
        ("JSON: the scan (decode; every id, time and value checked)",
         *paired(lambda: scan_request(body, JSON, config.limits), base, repeat), "json.loads"),
        (f"JSON: the adjusted copy ({scan.times[0]:,} times rewritten, facts inserted)",
         *paired(lambda: _adjusted(scan, sessions), base, repeat), "json.loads"),
        ("JSON: zstd of raw and adjusted", *paired(lambda: pack(body, adjusted), base, repeat),
         "json.loads"),
    ]


def _protobuf_parts(pb_body: bytes, facts: RequestFacts, config: PlanConfig, repeat: int
                    ) -> list[Part]:
    from skewgate.wire.shift import shift_protobuf

    def base() -> object:
        return ExportTraceServiceRequest.FromString(pb_body).SerializeToString()

    scan = scan_request(pb_body, PROTOBUF, config.limits)
    message, times = scan.message, scan.pb_times
    shifts = [-800_000_000] * scan.total_spans
    adjusted = shift_protobuf(scan_request(pb_body, PROTOBUF, config.limits).message, shifts,
                              [[]])
    return [
        ("protobuf: upb parse alone",
         *paired(lambda: ExportTraceServiceRequest.FromString(pb_body), base, repeat),
         "upb round"),
        ("protobuf: the scan (upb parse, then ids and times read from it)",
         *paired(lambda: scan_request(pb_body, PROTOBUF, config.limits), base, repeat),
         "upb round"),
        # The same message each round: its times move again, nothing else changes.
        ("protobuf: the adjusted copy (times set, serialized)",
         *paired(lambda: shift_protobuf(message, shifts, [[]], times), base, repeat),
         "upb round"),
        ("protobuf: zstd of raw and adjusted",
         *paired(lambda: pack(pb_body, adjusted), base, repeat), "upb round"),
    ]


def codecs(body: bytes, repeat: int = 50) -> list[tuple[str, int, float]]:
    import zstandard

    out = []
    for name, compress in (
        ("zstd 1", zstandard.ZstdCompressor(level=1).compress),
        ("zstd 2", zstandard.ZstdCompressor(level=2).compress),
        ("zstd 3", zstandard.ZstdCompressor(level=3).compress),
        ("zlib 1", lambda b: zlib.compress(b, 1)),
        ("zlib 6", lambda b: zlib.compress(b, 6)),
    ):
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            data = compress(body)
            times.append(time.perf_counter() - t)
        out.append((name, len(data), statistics.median(times)))
    try:
        import lz4.frame

        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            data = lz4.frame.compress(body)
            times.append(time.perf_counter() - t)
        out.append(("lz4", len(data), statistics.median(times)))
    except ImportError:
        pass
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    args = parser.parse_args(argv)
    repeat = 20 if args.quick else args.repeat
    body, sent = otel_js_body(args.spans)
    facts = RequestFacts(received_at_ms=sent - 770.0, sent_at=repr(sent))
    config = PlanConfig()
    pb_body = encode_request(decode_request(body, "application/json", None, Limits()).request)

    def upb_round() -> bytes:
        return ExportTraceServiceRequest.FromString(pb_body).SerializeToString()

    t_json, t_loads = paired(lambda: pipeline(body, JSON, facts, config),
                             lambda: json.loads(body), repeat)
    t_pb, t_upb = paired(lambda: pipeline(pb_body, PROTOBUF, facts, config), upb_round, repeat)
    synced = RequestFacts(received_at_ms=sent - 770.0)  # causality only: nothing moves
    t_synced, t_loads2 = paired(lambda: pipeline(body, JSON, synced, config),
                                lambda: json.loads(body), repeat)
    lean = PlanConfig(adjusted_copy=False)  # STORE_ADJUSTED_COPY=false
    t_lean, t_loads3 = paired(lambda: pipeline(body, JSON, facts, lean),
                              lambda: json.loads(body), repeat)
    t_lean_pb, t_upb2 = paired(lambda: pipeline(pb_body, PROTOBUF, facts, lean), upb_round,
                               repeat)
    lean_transaction, lean_chunks, _ = items_of(pipeline(body, JSON, facts, lean))
    lean_units = sum(wru(i, True) for i in lean_transaction) + sum(wru(i) for i in lean_chunks)
    plan = pipeline(body, JSON, facts, config)
    transaction, chunks, index = items_of(plan)
    raw_alone = len(pack(body, None)[0])
    units = sum(wru(i, True) for i in transaction) + sum(wru(i) for i in chunks + index)
    t_handler, t_alone, calls = handler_cpu(args.spans, 10 if args.quick else 30)
    parts = (_json_parts(body, facts, config, repeat)
             + _protobuf_parts(pb_body, facts, config, repeat))

    env = {**os.environ, "TABLE_NAME": "bench", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
           "PYTHONPATH": str(ROOT / "functions" / "ingest")}
    t_init = cold_start("import app", env)
    t_boto = cold_start("import boto3; boto3.client('dynamodb')", env)
    big_spans = 6_000
    growth, big_size = rss_growth(big_spans)

    print(f"{args.spans}-span OTel-JS-shaped batch ({args.spans // 16} traces, one session, "
          f"clock 800 ms ahead): {len(body) / 1024:.0f} KiB JSON, {len(pb_body) / 1024:.0f} KiB "
          f"protobuf; Python {sys.version.split()[0]}; medians of {repeat} alternating pairs\n")
    print("| measure | ours | baseline | ratio | goal |")
    print("| --- | --- | --- | --- | --- |")
    rows = [
        ("P1 JSON pipeline / `json.loads`", t_json, t_loads, "≤ 0.8×"),
        ("P1 JSON pipeline, nothing shifted / `json.loads`", t_synced, t_loads2, ""),
        ("P2 protobuf pipeline / upb parse + serialize", t_pb, t_upb, "≤ 3×"),
        ("P1, `STORE_ADJUSTED_COPY=false` / `json.loads`", t_lean, t_loads3, ""),
        ("P2, `STORE_ADJUSTED_COPY=false` / upb parse + serialize", t_lean_pb, t_upb2, ""),
        ("P3 handler CPU, DynamoDB calls included / P1", t_handler, t_alone, "≤ 1.5×"),
        ("P4 ingest cold init / bare `boto3.client('dynamodb')`", t_init, t_boto, "≤ 1.3×"),
    ]
    for name, ours, base, goal in rows:
        print(f"| {name} | {ours * 1000:.2f} ms | {base * 1000:.2f} ms | {ours / base:.2f}× "
              f"| {goal} |")
    print(f"| P5 peak RSS growth / body, {big_size / 1e6:.1f} MB batch ({big_spans} spans) | "
          f"{growth / 1e6:.1f} MB | {big_size / 1e6:.1f} MB | {growth / big_size:.2f}× | ≤ 2.5× |")
    n_items = len(transaction) + len(chunks)
    per_k = 1000 / args.spans
    print(f"| items per batch besides {len(index)} keys-only trace index items | {n_items} "
          f"| {FORMAT1_ITEMS} (format 1) | {n_items / FORMAT1_ITEMS:.2f}× | ≤ 6 |")
    print(f"| write units per 1,000 spans | {units * per_k:.1f} | {FORMAT1_WRU * per_k:.1f} "
          f"(format 1) | {units / FORMAT1_WRU:.2f}× | ≤ 0.25× |")
    unindexed = units - sum(wru(i) for i in index)
    print(f"| write units per 1,000 spans, `TRACE_INDEX=false` | {unindexed * per_k:.1f} | "
          f"{FORMAT1_WRU * per_k:.1f} (format 1) | {unindexed / FORMAT1_WRU:.2f}× | |")
    print(f"| write units per 1,000 spans, both switches off | {lean_units * per_k:.1f} | "
          f"{FORMAT1_WRU * per_k:.1f} (format 1) | {lean_units / FORMAT1_WRU:.2f}× | |")
    print()
    print("| part of the shifted batch's pipeline | ms | baseline | share of the baseline |")
    print("| --- | --- | --- | --- |")
    for name, ours, base, base_name in parts:
        print(f"| {name} | {ours * 1000:.2f} | {base_name} {base * 1000:.2f} | "
              f"{ours / base:.2f}× |")
    print()
    print(f"Write units of this batch: {sum(wru(i, True) for i in transaction)} in the "
          f"transaction ({len(transaction)} items, 2 per KB), {sum(wru(i) for i in chunks)} "
          f"for {len(chunks)} body chunk(s) ({sum(len(c) for c in plan.chunks)} bytes for raw "
          f"and adjusted copies; raw alone {raw_alone} bytes), "
          f"{len(index)} for "
          f"the trace index (1 each). DynamoDB calls per batch: {calls}. Index writes of the "
          "LSI/GSI copies (sample, day item) are the same in both formats and not counted.")
    print()
    batches = 1e6 / args.spans
    duration_s = t_handler + calls * DYNAMODB_ROUND_TRIP_S
    lambda_usd = batches * (duration_s * LAMBDA_MEMORY_GB * LAMBDA_GB_SECOND_USD
                            + LAMBDA_REQUEST_USD)
    ddb_usd = batches * units * DYNAMODB_WRU_USD + batches * 2 * DYNAMODB_RRU_USD
    ddb_unindexed_usd = batches * unindexed * DYNAMODB_WRU_USD + batches * 2 * DYNAMODB_RRU_USD
    api_usd = batches * HTTP_API_REQUEST_USD
    print(f"Cost per million spans in {args.spans}-span batches (us-east-1 list prices, 2025): "
          f"Lambda arm64 ${lambda_usd:.4f} ({duration_s * 1000:.1f} ms at 1 GB: CPU measured, "
          f"plus {calls} × {DYNAMODB_ROUND_TRIP_S * 1000:.0f} ms of DynamoDB latency assumed), "
          f"DynamoDB on-demand ${ddb_usd:.4f}, API Gateway HTTP API ${api_usd:.4f}: total "
          f"${lambda_usd + ddb_usd + api_usd:.4f}; with `TRACE_INDEX=false` DynamoDB is "
          f"${ddb_unindexed_usd:.4f}.")
    print()
    print("| codec on the JSON body | bytes | ms |")
    print("| --- | --- | --- |")
    for name, size, seconds in codecs(body):
        print(f"| {name} | {size} | {seconds * 1000:.2f} |")


if __name__ == "__main__":
    main()
