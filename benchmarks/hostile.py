"""Requests built to cost, through the real handler and DynamoDB Local: what each costs.

    python -m benchmarks.hostile

The cases are the measured failures of format 1 (before the hot path was rebuilt): a 17.6 KB
gzip of 9 M empty key-values (31 s and 2.3 GB), 6 M nested JSON values (5 s, 1.3 GB), JSON
nested 1,000 deep (a 500), 10 k spans in 10 k sessions (40,000 writes, 113 s) and a session
with 7,000 traces in one batch (a 500 on every retry). CPU is the process's (DynamoDB Local
runs in its own), memory the growth of its resident set, sampled while the request runs.
``tests/aws/test_ingest_bounds.py`` holds each to 1 s of CPU and 200 MB.
"""

from __future__ import annotations

import gzip
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from skewgate_tools.local.server import build_event

ROOT = Path(__file__).resolve().parents[1]
_PAGE = os.sysconf("SC_PAGE_SIZE")
CPU_S = 1.0
MEMORY_BYTES = 200 * 1024 * 1024


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def measured(call: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], float, int]:
    """The response, the CPU seconds it took and the peak resident growth while it ran.

    CPU is the process's (the store's writer threads count), less what the RSS sampler itself
    spent: on a loaded machine its wake-ups every 2 ms are not the request's cost.
    """
    before = peak = _rss()
    done = threading.Event()
    sampler_cpu = 0.0

    def sample() -> None:
        nonlocal peak, sampler_cpu
        start = time.thread_time()
        while not done.is_set():
            peak = max(peak, _rss())
            time.sleep(0.002)
        sampler_cpu = time.thread_time() - start

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.process_time()
    try:
        response = call()
    finally:
        cpu = time.process_time() - started
        done.set()
        sampler.join()
        cpu -= sampler_cpu
    return response, cpu, max(peak, _rss()) - before


def ld(tag: int, payload: bytes) -> bytes:
    """One protobuf length-delimited field."""
    n = len(payload)
    out = bytearray([tag])
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out) + payload


def protobuf_kvlist_bomb(entries: int) -> bytes:
    kv = ld(0x0A, b"k") + ld(0x12, ld(0x32, b"\x0a\x00" * entries))
    span = ld(0x0A, b"\x01" * 16) + ld(0x12, b"\x02" * 8) + ld(0x4A, kv)
    return ld(0x0A, ld(0x12, ld(0x12, span)))


def json_body(spans: list[dict[str, Any]], resource: list[Any] | None = None) -> bytes:
    rs: dict[str, Any] = {"scopeSpans": [{"spans": spans}]}
    if resource is not None:
        rs["resource"] = {"attributes": resource}
    return json.dumps({"resourceSpans": [rs]}, separators=(",", ":")).encode()


def span(i: int, trace: int | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "traceId": f"{(trace if trace is not None else i) + 1:032x}",
        "spanId": f"{i + 1:016x}",
        "startTimeUnixNano": "1795651409000000000",
        "endTimeUnixNano": "1795651409500000000",
        **extra,
    }


def session(sid: str) -> list[dict[str, Any]]:
    return [{"key": "session.id", "value": {"stringValue": sid}}]


def post(body: bytes, content_type: str, gzipped: bool = False) -> dict[str, Any]:
    headers = [("content-type", content_type), ("x-sent-at", "1795651410800")]
    if gzipped:
        body = gzip.compress(body)
        headers.append(("content-encoding", "gzip"))
    return build_event("POST", "/v1/traces", headers, body, 1_795_651_410_000)


CASES: dict[str, tuple[Callable[[], dict[str, Any]], int, str]] = {
    # name: (request, status, what the answer says)
    "protobuf-gzip-9M-empty-kvlist": (
        lambda: post(protobuf_kvlist_bomb(9_000_000), "application/x-protobuf", True),
        413, "messages",
    ),
    "json-gzip-6M-array-values": (
        lambda: post(
            json_body([span(0, attributes=[{"key": "a", "value": {"arrayValue": {
                "values": [{}] * 6_000_000}}}])]),
            "application/json", True,
        ),
        413, "nested",
    ),
    "json-gzip-6M-kvlist-values": (
        lambda: post(
            json_body([span(0, attributes=[{"key": "a", "value": {"kvlistValue": {
                "values": [{}] * 6_000_000}}}])]),
            "application/json", True,
        ),
        413, "nested",
    ),
    "json-nested-1000-deep": (
        lambda: post(
            b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"a","value":'
            + b'{"arrayValue":{"values":[' * 1000 + b"]}}" * 1000 + b"}]}]}]}]}",
            "application/json",
        ),
        400, "deeply",
    ),
    "10k-spans-in-10k-sessions": (
        lambda: post(
            json.dumps({"resourceSpans": [
                {"resource": {"attributes": session(f"s{i}")},
                 "scopeSpans": [{"spans": [span(i)]}]}
                for i in range(10_000)
            ]}, separators=(",", ":")).encode(),
            "application/json",
        ),
        200, "traces",
    ),
    "one-session-7000-traces": (
        lambda: post(json_body([span(20_000 + i) for i in range(7_000)], session("wide")),
                     "application/json"),
        200, "traces",
    ),
}




def main() -> None:
    from skewgate.aws.client import dynamodb_client
    from skewgate.aws.ingest import IngestApp
    from skewgate.aws.settings import IngestSettings
    from skewgate.aws.store import Store
    from skewgate_tools.local import dynamodb as ddb

    with ddb.dynamodb_local(repo_root=ROOT) as endpoint:
        os.environ.update(AWS_ENDPOINT_URL_DYNAMODB=endpoint, AWS_ACCESS_KEY_ID="local",
                          AWS_SECRET_ACCESS_KEY="local", AWS_DEFAULT_REGION="us-east-1")
        client = dynamodb_client()
        ddb.ensure_table(client, "hostile", ROOT / "template.yaml")
        app = IngestApp(IngestSettings.from_env({"TABLE_NAME": "hostile"}),
                        Store(client, "hostile"))
        print("| request | body sent | answer | CPU | memory growth |")
        print("| --- | --- | --- | --- | --- |")
        for name, (build, _status, _says) in CASES.items():
            event = build()
            sent = len(event["body"]) * 3 // 4 if event["isBase64Encoded"] else len(event["body"])
            response, cpu, memory = measured(
                lambda e=event: app.handle(e, remaining_ms=lambda: 20_000)  # type: ignore[misc]
            )
            answer = str(response["statusCode"])
            if answer == "200":
                partial = json.loads(response["body"]).get("partialSuccess", {})
                answer += f", {partial.get('rejectedSpans', 0)} spans rejected"
            print(f"| {name} | {sent / 1024:.1f} KiB | {answer} | "
                  f"{max(cpu, 0.0) * 1000:.0f} ms | {memory / 1e6:.0f} MB |")


if __name__ == "__main__":
    main()
