"""API Gateway HTTP API (payload v2) requests and responses, and OTLP/HTTP status bodies.

Pure helpers: the handlers build responses with these, the local runner turns raw HTTP into
the same event shape.

Example:
    >>> r = error_response(415, "unsupported content type", protobuf=False)
    >>> r["statusCode"], r["headers"]["content-type"]
    (415, 'application/json')
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Final

from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)

__all__ = [
    "CORS_ALLOW_HEADERS",
    "Request",
    "error_response",
    "export_response",
    "json_response",
]

# google.rpc.Code for each HTTP status we send (the mapping of google/rpc/code.proto).
_GRPC_CODE: Final = {
    400: 3,  # INVALID_ARGUMENT
    401: 16,  # UNAUTHENTICATED
    403: 7,  # PERMISSION_DENIED
    404: 5,  # NOT_FOUND
    405: 12,  # UNIMPLEMENTED
    413: 8,  # RESOURCE_EXHAUSTED
    415: 3,  # INVALID_ARGUMENT
    429: 8,  # RESOURCE_EXHAUSTED
    500: 13,  # INTERNAL
    503: 14,  # UNAVAILABLE
}

CORS_ALLOW_HEADERS: Final = (
    "Content-Type, Content-Encoding, X-Sent-At, X-Clock-Sync, X-Session-Id, X-Ingest-Key"
)


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


def _response(
    status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
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
    return _response(status, body, "application/json", headers)


def error_response(
    status: int, message: str, *, protobuf: bool, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """An OTLP/HTTP error: ``google.rpc.Status`` in protobuf or JSON."""
    code = _GRPC_CODE.get(status, 2)
    if protobuf:
        body = Status(code=code, message=message).SerializeToString()
        return _response(status, body, "application/x-protobuf", headers)
    return json_response(status, {"code": code, "message": message}, headers)


def export_response(
    rejected_spans: int, error_message: str, *, protobuf: bool, headers: dict[str, str] | None
) -> dict[str, Any]:
    """200 with ``ExportTraceServiceResponse``; ``partialSuccess`` only when spans were dropped."""
    if protobuf:
        message = ExportTraceServiceResponse()
        if rejected_spans or error_message:
            message.partial_success.CopyFrom(
                ExportTracePartialSuccess(
                    rejected_spans=rejected_spans, error_message=error_message
                )
            )
        return _response(200, message.SerializeToString(), "application/x-protobuf", headers)
    payload: dict[str, Any] = {}
    if rejected_spans or error_message:
        # proto3 JSON writes int64 as a string.
        payload["partialSuccess"] = {
            "rejectedSpans": str(rejected_spans),
            "errorMessage": error_message,
        }
    return json_response(200, payload, headers)
