"""API Gateway HTTP API (payload v2) events in, Lambda proxy responses out. Pure.

The handlers build responses with these; the local runner turns raw HTTP into the same event
shape, so both sides of the contract live here.

Example:
    >>> r = error_response(415, "unsupported content type", protobuf=False)
    >>> r["statusCode"], r["headers"]["content-type"]
    (415, 'application/json')
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from skewgate.wire.status import export_body, status_body

__all__ = [
    "Request",
    "error_response",
    "export_response",
    "json_response",
    "response",
]


@dataclass(frozen=True, slots=True)
class Request:
    """The parts of an HTTP API v2 event the handlers use; header names are lowercase."""

    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    body: bytes
    received_at_ms: float
    path_parameters: dict[str, str]

    @classmethod
    def from_event(cls, event: dict[str, Any], fallback_now_ms: float) -> Request:
        context = event.get("requestContext") or {}
        http = context.get("http") or {}
        raw = event.get("body") or ""
        if event.get("isBase64Encoded"):
            body = base64.b64decode(raw)
        else:
            body = raw.encode() if isinstance(raw, str) else bytes(raw)
        epoch = context.get("timeEpoch")
        return cls(
            method=str(http.get("method") or event.get("httpMethod") or "GET").upper(),
            path=str(event.get("rawPath") or http.get("path") or "/"),
            headers={k.lower(): v for k, v in (event.get("headers") or {}).items()},
            query=dict(event.get("queryStringParameters") or {}),
            body=body,
            received_at_ms=float(epoch) if isinstance(epoch, int | float) else fallback_now_ms,
            path_parameters=dict(event.get("pathParameters") or {}),
        )

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def wants_protobuf(self) -> bool:
        kind = (self.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
        return kind in ("application/x-protobuf", "application/protobuf")


def response(
    status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """A Lambda proxy response; protobuf bodies travel base64-encoded."""
    out_headers = {"content-type": content_type}
    if headers:
        out_headers.update(headers)
    binary = content_type == "application/x-protobuf"
    return {
        "statusCode": status,
        "headers": out_headers,
        "body": base64.b64encode(body).decode() if binary else body.decode(),
        "isBase64Encoded": binary,
    }


def json_response(
    status: int, payload: Any, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
    return response(status, body, "application/json", headers)


def _content_type(protobuf: bool) -> str:
    return "application/x-protobuf" if protobuf else "application/json"


def error_response(
    status: int, message: str, *, protobuf: bool, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """An OTLP/HTTP error: ``google.rpc.Status`` in protobuf or JSON."""
    body = status_body(status, message, protobuf=protobuf)
    return response(status, body, _content_type(protobuf), headers)


def export_response(
    rejected_spans: int, error_message: str, *, protobuf: bool, headers: dict[str, str] | None
) -> dict[str, Any]:
    """200 with ``ExportTraceServiceResponse``; ``partialSuccess`` only when spans were dropped."""
    body = export_body(rejected_spans, error_message, protobuf=protobuf)
    return response(200, body, _content_type(protobuf), headers)
