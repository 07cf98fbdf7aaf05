"""Synthetic browser sessions with known clock errors, to try the CLI and the dashboard.

Each ``Scenario`` is a browser whose clock reads ``server + ahead_ms(t)`` and that sends the
evidence OTel JS with the skewgate companion would send (``X-Sent-At``, optionally an NTP-style
``X-Clock-Sync`` echo, or nothing but the spans). Two drivers:

- ``scenario_events``: API Gateway v2 events with chosen receipt times, for ``IngestApp.handle``
  in tests (sessions on any day, minutes apart);
- ``post_live`` / ``python -m skewgate_tools.demo --url http://127.0.0.1:3000``: real HTTP to a
  running gateway (``make run``), receipt times are the gateway's own.

Example:
    >>> events = scenario_events(SCENARIOS[0], start_ms=1_767_225_600_000, count=2)
    >>> len(events), events[0]["requestContext"]["timeEpoch"]
    (2, 1767225600000)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import secrets
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["SCENARIOS", "Scenario", "batch_body", "post_live", "scenario_events"]

HOUR_MS = 3_600_000.0
DAY_MS = 24 * HOUR_MS


@dataclass(frozen=True)
class Scenario:
    """A browser session: how far its clock is ahead of the server's, and what it sends."""

    session_id: str
    #: client clock - server clock (ms) at batch ``i`` (so θ = -ahead).
    ahead_ms: Callable[[int], float]
    #: "send_time" (X-Sent-At), "ntp" (X-Sent-At + X-Clock-Sync) or "causality" (spans only).
    evidence: str = "send_time"
    spans: int = 3
    #: how long before the upload the last span ended (BatchSpanProcessor delay), ms.
    queue_ms: float = 400.0


def _jump_back_3h(i: int) -> float:
    return 800.0 if i < 6 else -3 * HOUR_MS + 800.0


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("demo-ahead-800ms", lambda i: 800.0),
    Scenario("demo-jump-3h", _jump_back_3h),
    Scenario("demo-behind-2d", lambda i: -2 * DAY_MS),
    Scenario("demo-ntp-120ms", lambda i: 120.0, evidence="ntp"),
    Scenario("demo-in-sync", lambda i: 3.0, evidence="causality", queue_ms=2_500.0),
)


def _hex(seed: str, n: int) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:n]


def batch_body(
    session_id: str, index: int, client_end_ms: float, spans: int, salt: str = ""
) -> tuple[bytes, str]:
    """An OTel-JS-shaped OTLP/JSON batch of one trace whose last span ends at ``client_end_ms``.

    Ids derive from (salt, session, index): the same call is the same batch (a retry)."""
    seed = f"{salt}/{session_id}/{index}"
    trace_id = _hex(f"{seed}/trace", 32)
    root = _hex(f"{seed}/0", 16)
    items = []
    for k in range(spans):
        start = client_end_ms - 300.0 + 40.0 * k
        end = client_end_ms if k == 0 else start + 120.0
        span: dict[str, Any] = {
            "traceId": trace_id,
            "spanId": root if k == 0 else _hex(f"{seed}/{k}", 16),
            "name": "page-load" if k == 0 else f"fetch /api/{k}",
            "kind": 1 if k == 0 else 3,
            "startTimeUnixNano": str(int((start - (0 if k else 200.0)) * 1e6)),
            "endTimeUnixNano": str(int(end * 1e6)),
            "status": {"code": 0},
        }
        if k:
            span["parentSpanId"] = root
        items.append(span)
    return json.dumps(browser_request(session_id, items)).encode(), trace_id


def browser_request(session_id: str, spans: list[dict[str, Any]]) -> dict[str, Any]:
    """An OTLP/JSON request shaped like OTel JS's: one resource carrying ``session.id``."""
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [
                        {"key": "service.name", "value": {"stringValue": "web-shop"}},
                        {"key": "session.id", "value": {"stringValue": session_id}},
                    ],
                    "droppedAttributesCount": 0,
                },
                "scopeSpans": [{"scope": {"name": "web-shop", "version": "0.1.0"}, "spans": spans}],
            }
        ]
    }


def _headers(scenario: Scenario, index: int, recv_ms: float, upload_ms: float) -> dict[str, str]:
    ahead = scenario.ahead_ms(index)
    headers = {"content-type": "application/json", "origin": "http://127.0.0.1:5173"}
    if scenario.evidence in ("send_time", "ntp"):
        headers["x-sent-at"] = f"{recv_ms - upload_ms + ahead:.0f}"
    if scenario.evidence == "ntp":
        # A /v1/clock exchange one second earlier: 40 ms round trip, symmetric.
        t1 = recv_ms - 1_000.0
        t2 = t1 + 0.5
        t0 = t1 - 20.0 + ahead
        t3 = t2 + 20.0 + ahead
        headers["x-clock-sync"] = f"t0={t0:.1f};t1={t1:.0f};t2={t2:.1f};t3={t3:.1f}"
    return headers


def scenario_events(
    scenario: Scenario, *, start_ms: int, count: int, every_ms: int = 30_000
) -> list[dict[str, Any]]:
    """``count`` ingest events of the scenario, received ``every_ms`` apart from ``start_ms``."""
    from skewgate_tools.local.server import build_event

    events = []
    for i in range(count):
        recv = start_ms + i * every_ms
        upload = 40.0 + (i * 37) % 60
        client_end = recv - upload - scenario.queue_ms + scenario.ahead_ms(i)
        body, _trace = batch_body(scenario.session_id, i, client_end, scenario.spans)
        headers = _headers(scenario, i, recv, upload)
        events.append(build_event("POST", "/v1/traces", list(headers.items()), body, recv))
    return events


def post_live(url: str, scenario: Scenario, *, count: int, spacing_s: float = 0.3) -> list[str]:
    """Post ``count`` batches of the scenario to a running gateway; returns their trace ids.

    Span ids are fresh on every run, so running the demo again adds batches (not retries)."""
    salt = secrets.token_hex(8)
    traces = []
    for i in range(count):
        now = time.time() * 1000.0
        upload = 40.0
        body, trace = batch_body(
            scenario.session_id,
            i,
            now - scenario.queue_ms + scenario.ahead_ms(i),
            scenario.spans,
            salt,
        )
        headers = _headers(scenario, i, now + upload, upload)
        if scenario.evidence == "ntp":
            headers["x-clock-sync"] = _live_exchange(url, scenario.ahead_ms(i))
            headers["x-sent-at"] = f"{time.time() * 1000.0 + scenario.ahead_ms(i):.0f}"
        request = urllib.request.Request(f"{url}/v1/traces", data=body, headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
        traces.append(trace)
        time.sleep(spacing_s)
    return traces


def _live_exchange(url: str, ahead_ms: float) -> str:
    t0 = time.time() * 1000.0 + ahead_ms
    with urllib.request.urlopen(f"{url}/v1/clock", timeout=10) as response:
        reading = json.loads(response.read())
    t3 = time.time() * 1000.0 + ahead_ms
    header = f"t0={t0:.3f};t1={reading['t1']};t2={reading['t2']};t3={t3:.3f}"
    if "token" in reading:
        header += f";token={reading['token']}"
    return header


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m skewgate_tools.demo", description="Post synthetic skewed sessions."
    )
    parser.add_argument("--url", default="http://127.0.0.1:3000", help="gateway base URL")
    parser.add_argument("--count", type=int, default=12, help="batches per session")
    parser.add_argument("--spacing", type=float, default=0.3, help="seconds between batches")
    parser.add_argument("--prefix", default="", help="prefix for the session ids")
    args = parser.parse_args(argv)
    for scenario in SCENARIOS:
        named = Scenario(
            args.prefix + scenario.session_id,
            scenario.ahead_ms,
            scenario.evidence,
            scenario.spans,
            scenario.queue_ms,
        )
        traces = post_live(args.url, named, count=args.count, spacing_s=args.spacing)
        print(f"{named.session_id}: {len(traces)} batches, last trace {traces[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
