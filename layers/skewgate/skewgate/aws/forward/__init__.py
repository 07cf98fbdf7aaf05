"""The forwarder: corrected spans from the table's stream to an OTLP collector or AWS X-Ray.

Public face: :func:`build_forward_app` (the function's app), the stream record helpers the
local poller and the redrive tool share, and the delivery types tests drive directly.
"""

from skewgate.aws.forward.app import DeliveryReport, ForwardApp, Forwarder, build_forward_app
from skewgate.aws.forward.dlq import DeadLetterSink, FileDeadLetters, SqsDeadLetters
from skewgate.aws.forward.records import (
    FILTER_PATTERN,
    BadRecord,
    SpanItem,
    jsonable,
    matches_filter,
    sequence_number,
    span_item,
    to_lambda_record,
)

__all__ = [
    "FILTER_PATTERN",
    "BadRecord",
    "DeadLetterSink",
    "DeliveryReport",
    "FileDeadLetters",
    "ForwardApp",
    "Forwarder",
    "SpanItem",
    "SqsDeadLetters",
    "build_forward_app",
    "jsonable",
    "matches_filter",
    "sequence_number",
    "span_item",
    "to_lambda_record",
]
