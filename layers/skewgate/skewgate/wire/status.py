"""OTLP/HTTP response bodies: ``ExportTraceServiceResponse`` and ``google.rpc.Status``. Pure.

Both are tiny messages, encoded directly (protobuf) or as proto3 JSON, so answering a request
never needs the protobuf runtime. Tests check the bytes against the official definitions.

Example:
    >>> status_body(415, "unsupported content type", protobuf=False)
    b'{"code":3,"message":"unsupported content type"}'
    >>> export_body(0, "", protobuf=True)
    b''
"""

from __future__ import annotations

import json
from typing import Final

from skewgate.wire.protobuf import WIRE_LEN, WIRE_VARINT, len_field, tag, varint

__all__ = ["GRPC_CODE", "export_body", "status_body"]

#: google.rpc.Code for each HTTP status we send (the mapping of google/rpc/code.proto).
GRPC_CODE: Final = {
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
_UNKNOWN: Final = 2

_T1_VARINT, _T1_LEN, _T2_LEN = tag(1, WIRE_VARINT), tag(1, WIRE_LEN), tag(2, WIRE_LEN)


def _json(payload: object) -> bytes:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()


def status_body(http_status: int, message: str, *, protobuf: bool) -> bytes:
    """A ``google.rpc.Status`` whose code matches ``http_status``."""
    code = GRPC_CODE.get(http_status, _UNKNOWN)
    if not protobuf:
        return _json({"code": code, "message": message})
    out = _T1_VARINT + varint(code) if code else b""
    if message:
        out += len_field(_T2_LEN, message.encode())
    return out


def export_body(rejected_spans: int, error_message: str, *, protobuf: bool) -> bytes:
    """An ``ExportTraceServiceResponse``; ``partialSuccess`` only when spans were dropped."""
    partial = bool(rejected_spans or error_message)
    if not protobuf:
        if not partial:
            return b"{}"
        # proto3 JSON writes int64 as a string.
        partial_success = {"rejectedSpans": str(rejected_spans), "errorMessage": error_message}
        return _json({"partialSuccess": partial_success})
    if not partial:
        return b""
    inner = _T1_VARINT + varint(rejected_spans) if rejected_spans else b""
    if error_message:
        inner += len_field(_T2_LEN, error_message.encode())
    return len_field(_T1_LEN, inner)
