"""The wire room: OTLP/HTTP trace requests and responses, in and out. Pure: no I/O.

The msgspec model (:mod:`~skewgate.wire.model`), decoding and validation with limits
(:mod:`~skewgate.wire.decode`), protobuf primitives written once
(:mod:`~skewgate.wire.protobuf`), the direct protobuf encoder (:mod:`~skewgate.wire.encode`),
request splicing for the forwarder (:mod:`~skewgate.wire.splice`) and the OTLP/HTTP response
bodies (:mod:`~skewgate.wire.status`).
"""

from skewgate.wire.decode import (
    JSON,
    PROTOBUF,
    DecodedBatch,
    DecodeError,
    Limits,
    TooLarge,
    UnsupportedMediaType,
    decode_request,
    inflate,
    media_type,
    validate,
)
from skewgate.wire.encode import encode_request, encode_span
from skewgate.wire.model import (
    AnyValue,
    Event,
    KeyValue,
    Link,
    Resource,
    ResourceSpans,
    Scope,
    ScopeSpans,
    Span,
    TracesRequest,
)
from skewgate.wire.splice import WireError, count_spans, merge_requests, split_request
from skewgate.wire.status import export_body, status_body

__all__ = [
    "JSON",
    "PROTOBUF",
    "AnyValue",
    "DecodeError",
    "DecodedBatch",
    "Event",
    "KeyValue",
    "Limits",
    "Link",
    "Resource",
    "ResourceSpans",
    "Scope",
    "ScopeSpans",
    "Span",
    "TooLarge",
    "TracesRequest",
    "UnsupportedMediaType",
    "WireError",
    "count_spans",
    "decode_request",
    "encode_request",
    "encode_span",
    "export_body",
    "inflate",
    "media_type",
    "merge_requests",
    "split_request",
    "status_body",
    "validate",
]
