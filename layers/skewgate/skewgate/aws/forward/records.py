"""The forwarder's input: table-stream records as Lambda delivers them, and their span items.

:data:`FILTER_PATTERN` is the event source mapping's filter (``FilterCriteria`` in
``template.yaml``; the local poller applies the same one). :func:`to_lambda_record` turns a
DynamoDB Streams ``GetRecords`` record into Lambda's event shape, for the local poller and the
redrive tool alike.

Example:
    >>> matches_filter({"eventName": "INSERT", "dynamodb": {"NewImage": {"type": {"S": "batch"}}}})
    True
    >>> matches_filter({"eventName": "INSERT", "dynamodb": {"NewImage": {"type": {"S": "sample"}}}})
    False
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import msgspec

from skewgate.aws.codec import from_item
from skewgate.clock.records import BatchRecord
from skewgate.wire.splice import WireError, count_spans

__all__ = [
    "FILTER_PATTERN",
    "BadRecord",
    "SpanItem",
    "batch_record",
    "batch_span_item",
    "jsonable",
    "matches_filter",
    "sequence_number",
    "span_item",
    "to_lambda_record",
]

#: The event source mapping's filter (``FilterCriteria``), as JSON in ``template.yaml``:
#: committed batch markers (format 2) and format 1 span items; nothing else of a batch ever
#: reaches the forwarder, so nothing uncommitted can be forwarded.
FILTER_PATTERN: Final[dict[str, Any]] = {
    "eventName": ["INSERT", "MODIFY"],
    "dynamodb": {"NewImage": {"type": {"S": ["batch", "spans"]}}},
}


def matches_filter(record: Mapping[str, Any], pattern: Mapping[str, Any] = FILTER_PATTERN) -> bool:
    """Lambda event filtering for the patterns we use: nested objects and value lists."""
    for key, expected in pattern.items():
        if key not in record:
            return False
        value = record[key]
        if isinstance(expected, Mapping):
            if not isinstance(value, Mapping) or not matches_filter(value, expected):
                return False
        elif isinstance(expected, list):
            if any(isinstance(e, Mapping) for e in expected):
                raise ValueError(f"unsupported filter operator in {expected!r}")
            if value not in expected:
                return False
        else:
            raise ValueError(f"malformed filter pattern at {key!r}")
    return True


class BadRecord(ValueError):
    """A span item that cannot be forwarded whatever the receiver (corrupt or incomplete)."""


@dataclass(frozen=True, slots=True)
class SpanItem:
    """One span item from the stream, its payload inflated."""

    sequence_number: str
    event_id: str
    pk: str
    sk: str
    payload: bytes
    span_count: int
    corrected: bool
    received_at_ms: int | None
    session_id: str | None


def _binary(attr: Mapping[str, Any]) -> bytes:
    value = attr["B"]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    return base64.b64decode(value, validate=True)


def sequence_number(record: Mapping[str, Any]) -> str:
    return str(record.get("dynamodb", {}).get("SequenceNumber", ""))


def batch_record(record: Mapping[str, Any]) -> BatchRecord | None:
    """The committed batch a stream record announces, or ``None`` for a format 1 span item."""
    image = (record.get("dynamodb") or {}).get("NewImage") or {}
    if image.get("type", {}).get("S") != "batch":
        return None
    try:
        return from_item(BatchRecord, image)
    except (KeyError, TypeError, ValueError, msgspec.ValidationError) as exc:
        raise BadRecord(f"undecodable batch marker: {type(exc).__name__}: {exc}") from exc


def batch_span_item(record: Mapping[str, Any], batch: BatchRecord, payload: bytes) -> SpanItem:
    """A committed batch, read back and corrected (``payload``), as the forwarder's input."""
    ddb = record.get("dynamodb") or {}
    keys = ddb.get("Keys") or {}
    sessions = {s.session_id for s in batch.sessions}
    return SpanItem(
        sequence_number=sequence_number(record),
        event_id=str(record.get("eventID", "")),
        pk=str(keys.get("PK", {}).get("S", f"BATCH#{batch.batch_id}")),
        sk=str(keys.get("SK", {}).get("S", "BATCH")),
        payload=payload,
        span_count=batch.span_count,
        corrected=any(s.applied for s in batch.sessions),
        received_at_ms=batch.received_at_ms,
        session_id=next(iter(sessions)) if len(sessions) == 1 else None,
    )


def span_item(record: Mapping[str, Any]) -> SpanItem:
    """The format 1 span item of a stream record (``corrected`` when present, else ``raw``)."""
    ddb = record.get("dynamodb") or {}
    image = ddb.get("NewImage") or {}
    keys = ddb.get("Keys") or {}
    try:
        pk = str((image.get("PK") or keys["PK"])["S"])
        sk = str((image.get("SK") or keys["SK"])["S"])
        blob_attr = image.get("corrected") or image["raw"]
        payload = zlib.decompress(_binary(blob_attr))
    except (KeyError, TypeError, ValueError, zlib.error) as exc:
        raise BadRecord(f"undecodable span item: {type(exc).__name__}: {exc}") from exc
    try:
        span_count = int(image["span_count"]["N"])
    except (KeyError, TypeError, ValueError):
        try:
            span_count = count_spans(payload)
        except WireError as exc:
            raise BadRecord(f"span item is not an OTLP request: {exc}") from exc
    received = image.get("received_at_ms", {}).get("N")
    return SpanItem(
        sequence_number=sequence_number(record),
        event_id=str(record.get("eventID", "")),
        pk=pk,
        sk=sk,
        payload=payload,
        span_count=span_count,
        corrected="corrected" in image,
        received_at_ms=int(received) if received is not None else None,
        session_id=image.get("session_id", {}).get("S"),
    )




def jsonable(value: Any) -> Any:
    """A low-level boto3 attribute value as it appears in a Lambda event (JSON)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, set):  # BS/NS/SS
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return int(value.timestamp())
    return value


def to_lambda_record(record: Mapping[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """A ``GetRecords`` record in the shape Lambda passes to the function."""
    out = jsonable(dict(record))
    out.setdefault("eventSource", "aws:dynamodb")
    out.setdefault("eventVersion", "1.1")
    out["awsRegion"] = out.get("awsRegion") or region
    out["eventSourceARN"] = stream_arn
    return dict(out)
