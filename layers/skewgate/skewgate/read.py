"""The read API (IAM-only when deployed): per-session skew, traces, a day's sessions, stats.

- ``GET /v1/sessions/{id}/skew[?limit=&cursor=]`` → ``{"session_id", "samples": [...]}`` in
  receipt order, read consistently so a batch is visible as soon as its 200 was sent; unknown
  session → 404.
- ``GET /v1/traces/{id}`` → ``{"trace_id", "spans": [...]}``: raw and corrected times side by
  side; unknown trace → 404.
- ``GET /v1/sessions?day=&min_offset_ms=&limit=&cursor=`` → ``{"day", "sessions": [...]}``:
  the day's sessions (UTC day, default today), largest proven |offset| first (GSI ``ByDay``).
- ``GET /v1/stats?day=`` → the share of batches and sessions whose offset is *proven* beyond
  50 ms / 100 ms / 1 s / 1 h, overall and by method (from the session-day items).

One function per document (``*_document``); the CLI prints exactly these with ``--json`` and
the local dashboard serves them through ``ReadApp``.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import re
import zlib
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import unquote

from skewgate.clock import Method
from skewgate.http import Request, error_response, json_response
from skewgate.otlp import Limits, _decode_protobuf, validate
from skewgate.store import SKEW_THRESHOLDS, StorageUnavailable, Store

__all__ = [
    "DEFAULT_SESSIONS_LIMIT",
    "ReadApp",
    "parse_day",
    "sessions_document",
    "skew_document",
    "stats_document",
    "trace_document",
]

logger = logging.getLogger("skewgate.read")

_MAX_PAGE = 1000
DEFAULT_SESSIONS_LIMIT = 100
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_METHODS = tuple(m.value for m in Method)


def _encode_cursor(key: dict[str, Any] | None) -> str | None:
    if key is None:
        return None
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode()


def _decode_cursor(
    text: str | None, keys: frozenset[str] | None = None, pins: dict[str, str] | None = None
) -> dict[str, Any] | None:
    """A cursor back into DynamoDB's ``ExclusiveStartKey``; ``keys`` and ``pins`` check that it
    belongs to this query (so a doctored cursor is a 400, not a 500 or another partition)."""
    if not text:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(text.encode()))
    except (ValueError, TypeError) as exc:
        raise ValueError("malformed cursor") from exc
    if not isinstance(value, dict):
        raise ValueError("malformed cursor")
    if keys is not None:
        well_formed = set(value) <= keys and all(
            isinstance(v, dict) and set(v) == {"S"} and isinstance(v["S"], str)
            for v in value.values()
        )
        if not well_formed or any(value.get(k, {}).get("S") != v for k, v in (pins or {}).items()):
            raise ValueError("malformed cursor")
    return value


def parse_day(text: str | None) -> str:
    """``yyyy-mm-dd`` (UTC), default today; anything else is a ``ValueError``."""
    if text is None or text == "":
        return datetime.now(tz=UTC).strftime("%Y-%m-%d")
    if not _DAY.fullmatch(text):
        raise ValueError(f"day must be yyyy-mm-dd, not {text!r}")
    try:
        date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"day must be a valid date, not {text!r}") from exc
    return text


def parse_min_offset(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"min_offset_ms must be a number >= 0, not {text!r}")
    return value


def parse_limit(text: str | None, default: int | None) -> int | None:
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= _MAX_PAGE:
        raise ValueError(f"limit must be 1..{_MAX_PAGE}")
    return int(text)


def skew_document(
    store: Store, session_id: str, *, limit: int | None = None, cursor: str | None = None
) -> dict[str, Any] | None:
    """The skew history of one session, or ``None`` if the session is unknown."""
    start = _decode_cursor(cursor, frozenset({"PK", "SK", "RSK"}), {"PK": f"SESSION#{session_id}"})
    samples, last = store.session_samples(session_id, limit=limit, cursor=start)
    if not samples and cursor is None and not store.session_exists(session_id):
        return None
    document: dict[str, Any] = {
        "session_id": session_id,
        "samples": [s.to_api() for s in samples],
    }
    if last is not None:
        document["next_cursor"] = _encode_cursor(last)
    return document


def sessions_document(
    store: Store,
    day: str | None = None,
    *,
    min_offset_ms: float | None = None,
    limit: int | None = DEFAULT_SESSIONS_LIMIT,
    cursor: str | None = None,
) -> dict[str, Any]:
    """A day's sessions, most skewed (largest proven |offset| of the day) first.

    ``{"day", "sessions": [...], "next_cursor"?}``; an empty day is an empty list.
    """
    day = parse_day(day)
    start = _decode_cursor(cursor, frozenset({"PK", "SK", "DPK", "DSK"}), {"DPK": f"DAY#{day}"})
    records, last = store.day_sessions(
        day, min_abs_offset_ms=min_offset_ms, limit=limit, cursor=start
    )
    document: dict[str, Any] = {"day": day, "sessions": [r.to_api() for r in records]}
    if last is not None:
        document["next_cursor"] = _encode_cursor(last)
    return document


def _tally() -> dict[str, Any]:
    return {"total": 0, "over": {name: 0 for name, _ in SKEW_THRESHOLDS}}


def _with_shares(tally: dict[str, Any]) -> dict[str, Any]:
    total = tally["total"]
    tally["share"] = {
        name: (round(count / total, 6) if total else None) for name, count in tally["over"].items()
    }
    return tally


def stats_document(store: Store, day: str | None = None) -> dict[str, Any]:
    """How much of a day's traffic is skewed: batches and sessions beyond each threshold.

    "Beyond" means *proven*: the measured interval lies wholly outside ±threshold, so a
    causality-only batch (whose point estimate includes its queueing delay) never counts as
    skewed, and a clock behind by less than the assumed upload delay cannot be proven (see
    DESIGN.md). A session counts as beyond a threshold if any of its batches that day was,
    and falls under the method of its latest verdict. Reads every session-day item of the day.
    """
    day = parse_day(day)
    records, _ = store.day_sessions(day)
    overall = {"sessions": _tally(), "batches": _tally()}
    by_method = {m: {"sessions": _tally(), "batches": _tally()} for m in _METHODS}
    corrected = jumps = unclassified = 0
    for record in records:
        counters = record.counters
        classified = 0
        session_over = dict.fromkeys(overall["sessions"]["over"], False)
        for method in _METHODS:
            batches = counters.get(f"batches_{method}", 0)
            classified += batches
            for target in (overall["batches"], by_method[method]["batches"]):
                target["total"] += batches
            for name, _bound in SKEW_THRESHOLDS:
                over = counters.get(f"over_{name}_{method}", 0)
                overall["batches"]["over"][name] += over
                by_method[method]["batches"]["over"][name] += over
                session_over[name] = session_over[name] or over > 0
        # Items written before the per-method counters existed: counted, not classified.
        unclassified += max(record.batches - classified, 0)
        targets = [overall["sessions"]]
        if record.method in by_method:
            targets.append(by_method[record.method]["sessions"])
        for target in targets:
            target["total"] += 1
            for name, hit in session_over.items():
                target["over"][name] += int(hit)
        corrected += record.corrected_batches
        jumps += record.jumps
    return {
        "day": day,
        "thresholds_ms": {name: bound for name, bound in SKEW_THRESHOLDS},
        "sessions": _with_shares(overall["sessions"]),
        "batches": _with_shares(overall["batches"]),
        "by_method": {
            method: {key: _with_shares(tally) for key, tally in parts.items()}
            for method, parts in by_method.items()
        },
        "corrected_batches": corrected,
        "jumps": jumps,
        "unclassified_batches": unclassified,
    }


def _spans_of(blob: bytes) -> list[dict[str, Any]]:
    request = _decode_protobuf(zlib.decompress(blob))
    batch = validate(request, Limits(max_spans=1 << 30))
    spans = []
    for rs, _ss, span in batch.spans():
        service = None
        if rs.resource is not None:
            for kv in rs.resource.attributes:
                if kv.key == "service.name" and kv.value is not None:
                    service = kv.value.string_value
        spans.append(
            {
                "span_id": span.span_id,
                "parent_span_id": span.parent_span_id or None,
                "name": span.name,
                "service": service,
                "start_time_unix_nano": span.start_time_unix_nano,
                "end_time_unix_nano": span.end_time_unix_nano,
            }
        )
    return spans


def trace_document(store: Store, trace_id: str) -> dict[str, Any] | None:
    """Raw and corrected times of every stored span of a trace, side by side."""
    items = store.trace_items(trace_id.lower())
    if not items:
        return None
    spans: list[dict[str, Any]] = []
    for item in items:
        raw = _spans_of(item["raw"]["B"])
        corrected = _spans_of(item["corrected"]["B"]) if "corrected" in item else raw
        lower = item.get("lower_ms", {})
        upper = item.get("upper_ms", {})
        for r, c in zip(raw, corrected, strict=True):
            spans.append(
                {
                    **{k: v for k, v in r.items() if not k.endswith("unix_nano")},
                    "session_id": item.get("session_id", {}).get("S"),
                    "received_at_ms": int(item["received_at_ms"]["N"]),
                    "raw_start_time_unix_nano": r["start_time_unix_nano"],
                    "raw_end_time_unix_nano": r["end_time_unix_nano"],
                    "start_time_unix_nano": c["start_time_unix_nano"],
                    "end_time_unix_nano": c["end_time_unix_nano"],
                    "offset_ms": float(item["offset_ms"]["N"]),
                    "lower_ms": float(lower["N"]) if "N" in lower else None,
                    "upper_ms": float(upper["N"]) if "N" in upper else None,
                    "method": item["method"]["S"],
                    "applied": item["applied"]["BOOL"],
                }
            )
    spans.sort(key=lambda s: (s["raw_start_time_unix_nano"], s["span_id"]))
    return {"trace_id": trace_id.lower(), "spans": spans}


class ReadApp:
    """Routes for the read Lambda and the local runner."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def handle(self, event: dict[str, Any]) -> dict[str, Any]:
        request = Request.from_event(event, 0.0)
        try:
            return self._route(request)
        except StorageUnavailable as exc:
            return error_response(
                503, str(exc), protobuf=False, headers={"retry-after": str(exc.retry_after_s)}
            )
        except ValueError as exc:
            return error_response(400, str(exc), protobuf=False)
        except Exception as exc:
            if _validation_error(exc):  # DynamoDB refused the request (e.g. a doctored cursor)
                return error_response(400, "bad request", protobuf=False)
            logger.exception("unhandled error")
            return error_response(500, "internal error", protobuf=False)

    def _route(self, request: Request) -> dict[str, Any]:
        if request.method != "GET":
            return error_response(
                405, f"{request.method} not allowed", protobuf=False, headers={"allow": "GET"}
            )
        parts = [unquote(p) for p in request.path.strip("/").split("/")]
        if "v1" in parts:
            parts = parts[parts.index("v1") + 1 :]
        query = request.query
        if parts == ["sessions"]:
            return json_response(
                200,
                sessions_document(
                    self.store,
                    query.get("day"),
                    min_offset_ms=parse_min_offset(query.get("min_offset_ms")),
                    limit=parse_limit(query.get("limit"), DEFAULT_SESSIONS_LIMIT),
                    cursor=query.get("cursor"),
                ),
            )
        if parts == ["stats"]:
            return json_response(200, stats_document(self.store, query.get("day")))
        if len(parts) == 3 and parts[0] == "sessions" and parts[2] == "skew":
            page = parse_limit(query.get("limit"), None)
            doc = skew_document(self.store, parts[1], limit=page, cursor=query.get("cursor"))
            if doc is None:
                return error_response(404, f"unknown session {parts[1]!r}", protobuf=False)
            return json_response(200, doc)
        if len(parts) == 2 and parts[0] == "traces":
            doc = trace_document(self.store, parts[1])
            if doc is None:
                return error_response(404, f"unknown trace {parts[1]!r}", protobuf=False)
            return json_response(200, doc)
        return error_response(404, f"no route {request.path}", protobuf=False)


def _validation_error(exc: Exception) -> bool:
    response = getattr(exc, "response", None)
    return isinstance(response, dict) and (
        response.get("Error", {}).get("Code") == "ValidationException"
    )
