"""Hard cases for the views, on their own UTC day (2026-01-05) beside the seeded scenarios.

What makes tables and waterfalls overflow in practice: a UUID session id and a 150-character
one, a batch with two long flags (``inconsistent_send_time``, ``implausible_sync``), a batch
of five traces, a trace nested six deep with URL-long span names, a span that carries only
causality evidence.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from skewgate.aws.ingest import IngestApp
from skewgate_tools.demo import browser_request
from skewgate_tools.local.server import build_event

STRESS_DAY = "2026-01-05"
STRESS_START = 1_767_607_200_000  # 2026-01-05T10:00:00Z
UUID_SESSION = "3f1c2d9e-8b7a-4c1e-9f00-1234567890ab"
LONG_SESSION = "tenant-acme-corporation/eu-west-1/" + "browser-session-" + "0123456789abcdef" * 7
AHEAD_MS = 800.0
#: The batch whose trace is nested six deep (index into the UUID session's batches).
DEEP_BATCH = 3
DEEP_NAMES = [
    "page-load /checkout/shipping-address?step=2&variant=b",
    "GET https://api.example.com/v1/customers/12345/orders?include=items,shipping",
    "render <CheckoutForm> with 48 fields and address autocompletion",
    "POST https://payments.example.com/v2/intents/confirm",
    "resource https://cdn.example.com/static/js/vendor.8f3a9c1e.chunk.js",
    "long task (main thread blocked)",
]
MANY_TRACES = 5
#: The span a later, uncorrected batch of the same session adds to the deep trace.
LATE_NAME = "beacon /checkout (sent on unload)"


def _hex(seed: str, n: int) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:n]


def _span(trace: str, span: str, parent: str | None, name: str, start_ms: float,
          end_ms: float) -> dict[str, Any]:
    item: dict[str, Any] = {
        "traceId": trace, "spanId": span, "name": name, "kind": 1,
        "startTimeUnixNano": str(int(start_ms * 1e6)), "endTimeUnixNano": str(int(end_ms * 1e6)),
    }
    if parent:
        item["parentSpanId"] = parent
    return item


def _event(session: str, spans: list[dict[str, Any]], recv: int,
           headers: dict[str, str]) -> dict[str, Any]:
    body = json.dumps(browser_request(session, spans)).encode()
    merged = {"content-type": "application/json", **headers}
    return build_event("POST", "/v1/traces", list(merged.items()), body, recv)


def deep_trace_id() -> str:
    return _hex(f"stress/{DEEP_BATCH}/deep", 32)


def stress_events() -> list[dict[str, Any]]:
    events = []
    for i in range(5):
        recv = STRESS_START + i * 45_000
        client_end = recv - 500 + AHEAD_MS  # the browser's clock reads 800 ms ahead
        headers = {"x-sent-at": f"{recv - 60 + AHEAD_MS:.0f}"}
        spans: list[dict[str, Any]] = []
        if i == 2:
            # A send time a minute before the spans ended, and an echo that is no exchange.
            headers = {"x-sent-at": f"{client_end - 70_000:.0f}", "x-clock-sync": "t0=bogus"}
        if i == DEEP_BATCH:
            trace = deep_trace_id()
            parent = None
            for depth, name in enumerate(DEEP_NAMES):
                span = _hex(f"stress/{i}/deep/{depth}", 16)
                start = client_end - 900 + 60 * depth
                spans.append(_span(trace, span, parent, name, start, client_end - 40 * depth))
                parent = span
        elif i == 4:
            for t in range(MANY_TRACES):
                trace = _hex(f"stress/{i}/many/{t}", 32)
                spans.append(_span(trace, _hex(f"stress/{i}/{t}", 16), None, f"click #{t}",
                                   client_end - 200 - 10 * t, client_end - 10 * t))
        else:
            trace = _hex(f"stress/{i}/trace", 32)
            spans.append(_span(trace, _hex(f"stress/{i}/0", 16), None, "page-load",
                               client_end - 300, client_end))
        events.append(_event(UUID_SESSION, spans, recv, headers))
        if i == DEEP_BATCH:
            # 10 s later, no headers: causality alone cannot prove 800 ms, so no shift.
            late = recv + 10_000
            root = _hex(f"stress/{i}/deep/0", 16)
            beacon = _span(deep_trace_id(), _hex(f"stress/{i}/late", 16), root, LATE_NAME,
                           late - 2_000 + AHEAD_MS, late - 1_500 + AHEAD_MS)
            events.append(_event(UUID_SESSION, [beacon], late, {}))
    recv = STRESS_START + 300_000
    spans = [_span(_hex("stress/long", 32), _hex("stress/long/0", 16), None, "page-load",
                   recv - 800, recv - 300)]
    events.append(_event(LONG_SESSION, spans, recv, {}))  # causality only
    return events


def seed_stress(ingest: IngestApp) -> None:
    for event in stress_events():
        response = ingest.handle(event)
        assert response["statusCode"] == 200, response
