"""The read API (IAM-only when deployed): per-session skew, traces, a day's sessions.

``GET /v1/sessions/{id}/skew`` → ``{"session_id", "samples": [...]}`` in receipt order, read
consistently so a batch is visible as soon as its 200 was sent; unknown session → 404.
The CLI prints exactly these documents with ``--json``.
"""

from __future__ import annotations

import base64
import json
import logging
import zlib
from typing import Any
from urllib.parse import unquote

from skewgate.http import Request, error_response, json_response
from skewgate.otlp import Limits, _decode_protobuf, validate
from skewgate.store import StorageUnavailable, Store

__all__ = ["ReadApp", "trace_document", "skew_document"]

logger = logging.getLogger("skewgate.read")

_MAX_PAGE = 1000


def _encode_cursor(key: dict[str, Any] | None) -> str | None:
    if key is None:
        return None
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode()


def _decode_cursor(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(text.encode()))
    except (ValueError, TypeError) as exc:
        raise ValueError("malformed cursor") from exc
    if not isinstance(value, dict):
        raise ValueError("malformed cursor")
    return value


def skew_document(
    store: Store, session_id: str, *, limit: int | None = None, cursor: str | None = None
) -> dict[str, Any] | None:
    """The skew history of one session, or ``None`` if the session is unknown."""
    samples, last = store.session_samples(session_id, limit=limit, cursor=_decode_cursor(cursor))
    if not samples and cursor is None and not store.session_exists(session_id):
        return None
    document: dict[str, Any] = {
        "session_id": session_id,
        "samples": [s.to_api() for s in samples],
    }
    if last is not None:
        document["next_cursor"] = _encode_cursor(last)
    return document


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
        except Exception:
            logger.exception("unhandled error")
            return error_response(500, "internal error", protobuf=False)

    def _route(self, request: Request) -> dict[str, Any]:
        if request.method != "GET":
            return error_response(405, f"{request.method} not allowed", protobuf=False,
                                  headers={"allow": "GET"})
        parts = [unquote(p) for p in request.path.strip("/").split("/")]
        if "v1" in parts:
            parts = parts[parts.index("v1") + 1 :]
        if len(parts) == 3 and parts[0] == "sessions" and parts[2] == "skew":
            limit = request.query.get("limit")
            page = None
            if limit is not None:
                if not limit.isdigit() or not 1 <= int(limit) <= _MAX_PAGE:
                    raise ValueError(f"limit must be 1..{_MAX_PAGE}")
                page = int(limit)
            doc = skew_document(self.store, parts[1], limit=page, cursor=request.query.get("cursor"))
            if doc is None:
                return error_response(404, f"unknown session {parts[1]!r}", protobuf=False)
            return json_response(200, doc)
        if len(parts) == 2 and parts[0] == "traces":
            doc = trace_document(self.store, parts[1])
            if doc is None:
                return error_response(404, f"unknown trace {parts[1]!r}", protobuf=False)
            return json_response(200, doc)
        return error_response(404, f"no route {request.path}", protobuf=False)
