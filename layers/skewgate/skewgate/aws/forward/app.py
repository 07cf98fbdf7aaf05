"""The forwarder: corrected spans from the table's stream to an OTLP collector or AWS X-Ray.

The forward Lambda is triggered by the table's DynamoDB stream (``NEW_IMAGE``); its filter
(:data:`FILTER_PATTERN`, the same in ``template.yaml`` and the local poller) lets only span
items through. Each span item holds a zlib-compressed ``ExportTraceServiceRequest``:
``corrected`` when the batch was shifted (with the ``clock_skew.*`` attributes), else ``raw``.
The forwarder joins the items of a stream batch without decoding a span, merges spans that
share a resource and scope (:mod:`skewgate.wire.splice`), cuts the result into requests within
the receiver's limits (``FORWARD_MAX_REQUEST_BYTES`` uncompressed, default 5,000,000, and
``FORWARD_MAX_REQUEST_SPANS``, default 10,000: the X-Ray OTLP endpoint's limits) and posts
each as OTLP/HTTP protobuf with ``Content-Encoding: gzip`` (:mod:`skewgate.aws.forward.send`).

Targets (``FORWARD_TARGET``):

- ``otlp``: POST to ``FORWARD_ENDPOINT`` (the full URL, e.g.
  ``http://collector:4318/v1/traces``) with ``FORWARD_HEADERS`` (``k1=v1,k2=v2``, values
  URL-decoded, like ``OTEL_EXPORTER_OTLP_HEADERS``).
- ``xray``: POST to ``https://xray.<AWS_REGION>.amazonaws.com/v1/traces`` (or
  ``FORWARD_ENDPOINT`` when set) signed with SigV4, service ``xray``, with the function's role
  (``xray:PutSpans``, plus ``xray:PutSpansForIndexing`` for Transaction Search indexing).
  The account must have CloudWatch Transaction Search enabled.
- ``none``: nothing is forwarded. The template creates no forward function at all; if this
  handler is invoked anyway, it acknowledges every record without sending.

Delivery is at-least-once:

- Retryable answers (429, 502, 503, 504; 500 too for X-Ray) and connection errors are retried
  with backoff, honouring ``Retry-After``, until the invocation's remaining time minus
  ``FORWARD_MARGIN_MS``. What is still undelivered then is reported in ``batchItemFailures``;
  Lambda retries from the lowest failed sequence number (records after it may be sent twice).
- 413: the request is split in halves and each half sent (down to a single span); nothing is
  dropped for size.
- 400: the data was refused. A request of several records is bisected until the refused
  record(s) are isolated; the others are delivered.
- Other 4xx/5xx, a 400 for a single record, and a single span still too large are permanent:
  each such record goes straight to the dead-letter queue (``FORWARD_DLQ_URL``, an SQS queue;
  locally ``FORWARD_DLQ_FILE``, a JSON-lines file) with the reason and the item's key, and is
  acknowledged so the shard moves on. If the DLQ cannot be written (or none is configured) the
  record is reported failed instead, and Lambda's own retries end in the event source
  mapping's ``OnFailure`` destination (the same queue).
- A 2xx with ``partialSuccess.rejectedSpans`` is a success: per OTLP, rejected spans must not
  be resent. They are logged and counted (``ForwardRejectedSpans``).

Example:
    >>> app = build_forward_app({"FORWARD_TARGET": "none"})
    >>> app.handle({"Records": []})
    {'batchItemFailures': []}
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from skewgate.aws.forward.dlq import DeadLetterSink, FileDeadLetters, SqsDeadLetters
from skewgate.aws.forward.records import (
    BadRecord,
    SpanItem,
    batch_record,
    batch_span_item,
    matches_filter,
    sequence_number,
    span_item,
)
from skewgate.aws.forward.send import (
    RETRYABLE,
    Authenticator,
    Outcome,
    Sender,
    SigV4Auth,
    StaticHeaders,
    Transport,
)
from skewgate.aws.settings import ForwardSettings
from skewgate.aws.store import StorageUnavailable
from skewgate.clock.correction import corrected_request, read_back
from skewgate.clock.records import BatchRecord
from skewgate.wire.decode import DecodeError
from skewgate.wire.splice import WireError, count_spans, halves, merge_requests, split_request

__all__ = [
    "DeliveryReport",
    "ForwardApp",
    "Forwarder",
    "build_forward_app",
]

logger = logging.getLogger("skewgate.forward")

_DEFAULT_BUDGET_S = 60.0


# --- delivery ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Part:
    """A payload to send — one item's, or a piece of it after a split — and its item."""

    item: int
    payload: bytes
    spans: int


@dataclass(slots=True)
class Failure:
    transient: bool
    reason: str
    status: int | None = None


@dataclass(slots=True)
class DeliveryReport:
    """What happened to each item (by index) and the counters behind the metrics."""

    failures: dict[int, Failure] = field(default_factory=dict)
    spans_forwarded: int = 0
    requests: int = 0
    retries: int = 0
    splits: int = 0
    rejected_spans: int = 0

    def fail(self, items: Iterable[int], failure: Failure) -> None:
        for item in items:
            current = self.failures.get(item)
            # A transient failure wins: the record is retried whole, and a permanent problem
            # shows up again on the retry.
            if current is None or (failure.transient and not current.transient):
                self.failures[item] = failure


def _split_parts(parts: list[_Part]) -> tuple[list[_Part], list[_Part]] | None:
    if len(parts) >= 2:
        cut = halves([len(p.payload) for p in parts])
        return parts[:cut], parts[cut:]
    (part,) = parts
    try:
        pieces = split_request(part.payload)
    except WireError:
        return None
    if pieces is None:
        return None
    return (
        [_Part(part.item, pieces[0], count_spans(pieces[0]))],
        [_Part(part.item, pieces[1], count_spans(pieces[1]))],
    )


class Forwarder:
    """Groups items into requests within the limits and delivers them (see module docs)."""

    def __init__(
        self,
        sender: Sender,
        *,
        max_request_bytes: int = 5_000_000,
        max_request_spans: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sender = sender
        self.max_request_bytes = max_request_bytes
        self.max_request_spans = max_request_spans
        self.clock = clock

    def _fits(self, parts: Sequence[_Part]) -> bool:
        return (
            sum(len(p.payload) for p in parts) <= self.max_request_bytes
            and sum(p.spans for p in parts) <= self.max_request_spans
        )

    def _pieces(self, part: _Part, report: DeliveryReport) -> list[_Part]:
        """``part`` cut until each piece fits (a single span that does not fit goes as is)."""
        out: list[_Part] = []
        stack = [part]
        while stack:
            piece = stack.pop()
            halves = None if self._fits([piece]) else _split_parts([piece])
            if halves is None:
                out.append(piece)
            else:
                report.splits += 1
                stack.extend(reversed([*halves[0], *halves[1]]))
        return out

    def plan(self, items: Sequence[SpanItem], report: DeliveryReport) -> list[list[_Part]]:
        """Items in order, packed greedily into requests within the limits."""
        requests: list[list[_Part]] = []
        current: list[_Part] = []
        size = spans = 0
        for index, item in enumerate(items):
            for piece in self._pieces(_Part(index, item.payload, item.span_count), report):
                if current and (
                    size + len(piece.payload) > self.max_request_bytes
                    or spans + piece.spans > self.max_request_spans
                ):
                    requests.append(current)
                    current, size, spans = [], 0, 0
                current.append(piece)
                size += len(piece.payload)
                spans += piece.spans
        if current:
            requests.append(current)
        return requests

    def deliver(self, items: Sequence[SpanItem], deadline: float) -> DeliveryReport:
        """Send every item before the monotonic ``deadline``; report per item what failed."""
        report = DeliveryReport()
        queue: deque[list[_Part]] = deque(self.plan(items, report))
        while queue:
            parts = queue.popleft()
            indexes = sorted({p.item for p in parts})
            if deadline - self.clock() < 0.2:
                report.fail(indexes, Failure(True, "time budget exhausted"))
                continue
            result = self.sender.send(merge_requests(p.payload for p in parts), deadline)
            report.requests += len(result.attempts)
            report.retries += result.retries
            outcome = result.outcome
            if outcome is Outcome.OK:
                report.spans_forwarded += sum(p.spans for p in parts)
                if result.rejected_spans:
                    report.rejected_spans += result.rejected_spans
                    logger.warning(
                        "forward: receiver rejected %d of %d spans: %s",
                        result.rejected_spans, sum(p.spans for p in parts), result.reason,
                    )
                continue
            if outcome is Outcome.TRANSIENT:
                failure = Failure(True, result.reason, result.status)
                report.fail(indexes, failure)
                for rest in queue:  # no time left for them either
                    report.fail([p.item for p in rest], failure)
                queue.clear()
                break
            halves = None
            if outcome is Outcome.TOO_LARGE or (outcome is Outcome.REJECTED and len(parts) > 1):
                halves = _split_parts(parts)
            if halves is not None:
                report.splits += 1
                queue.appendleft(halves[1])
                queue.appendleft(halves[0])
                continue
            reason = result.reason
            if outcome is Outcome.TOO_LARGE:
                reason = f"{reason} (a single span larger than the receiver accepts)"
            report.fail(indexes, Failure(False, reason, result.status))
        return report


# --- the handler ---------------------------------------------------------------------------


class BodySource(Protocol):
    """Where a committed batch's body is read from (the table: ``skewgate.aws.store.Store``)."""

    def batch_body(self, record: BatchRecord) -> tuple[bytes, bytes | None]: ...


class MetricsSink(Protocol):
    """Powertools ``Metrics`` fits (``add_metric(name, unit, value)``)."""

    def add_metric(self, name: str, unit: Any, value: float) -> None: ...


def _utc_now() -> str:
    return datetime.now(tz=UTC).isoformat(timespec="milliseconds")


class ForwardApp:
    """The stream handler shared by ``functions/forward`` and the local poller.

    ``handle`` returns ``{"batchItemFailures": [{"itemIdentifier": <sequence number>}]}``
    (the ``ReportBatchItemFailures`` contract, built by Powertools' batch utility).
    """

    def __init__(
        self,
        settings: ForwardSettings,
        forwarder: Forwarder | None,
        dead_letters: DeadLetterSink | None = None,
        metrics: MetricsSink | None = None,
        clock: Callable[[], float] = time.monotonic,
        bodies: BodySource | None = None,
    ) -> None:
        self.settings = settings
        self.forwarder = forwarder
        self.bodies = bodies
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.clock = clock
        self.last_report: DeliveryReport | None = None
        self._warned_none = False

    def _deadline(self, context: Any) -> float:
        remaining_s = _DEFAULT_BUDGET_S
        if context is not None and hasattr(context, "get_remaining_time_in_millis"):
            remaining_s = context.get_remaining_time_in_millis() / 1000.0
        return self.clock() + remaining_s - self.settings.forward_margin_ms / 1000.0

    def _dead_letter(
        self, record: Mapping[str, Any], item: SpanItem | None, failure: Failure
    ) -> dict[str, Any]:
        ddb = record.get("dynamodb") or {}
        keys = {k: v.get("S") for k, v in (ddb.get("Keys") or {}).items() if isinstance(v, dict)}
        return {
            "source": "skewgate.forward",
            "reason": failure.reason,
            "status": failure.status,
            "target": self.settings.forward_target,
            "endpoint": self.settings.endpoint(),
            "failed_at": _utc_now(),
            "eventSourceARN": record.get("eventSourceARN"),
            "eventID": record.get("eventID"),
            "eventName": record.get("eventName"),
            "sequenceNumber": ddb.get("SequenceNumber"),
            "keys": keys or ({"PK": item.pk, "SK": item.sk} if item else {}),
            "span_count": item.span_count if item else None,
            "corrected": item.corrected if item else None,
            "received_at_ms": item.received_at_ms if item else None,
            "session_id": item.session_id if item else None,
        }

    def _item(self, record: Mapping[str, Any]) -> SpanItem:
        """What a record forwards: a committed batch read back and corrected, or (format 1)
        the span item's own payload."""
        batch = batch_record(record)
        if batch is None:
            return span_item(record)
        if self.bodies is None:
            raise BadRecord("a batch marker arrived but the forwarder has no table to read")
        try:
            raw, _adjusted = self.bodies.batch_body(batch)
            spans = read_back(raw, batch.kind, batch.grouping, batch.limits, batch.shifts())
        except (ValueError, DecodeError) as exc:
            raise BadRecord(f"batch {batch.batch_id}: {exc}") from exc
        return batch_span_item(record, batch, corrected_request(spans))

    def handle(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        records: list[dict[str, Any]] = list(event.get("Records") or [])
        deadline = self._deadline(context)
        failed: dict[str, Failure] = {}  # sequence number -> why (reported to Lambda)
        permanent: list[tuple[dict[str, Any], SpanItem | None, Failure]] = []

        # Parse; the last image of a key wins (earlier records of it share its fate).
        items: list[SpanItem] = []
        slot_of_key: dict[tuple[str, str], int] = {}
        records_of_slot: dict[int, list[dict[str, Any]]] = {}
        sending = self.settings.forward_target != "none" and self.forwarder is not None
        for record in records:
            if not matches_filter(record):
                continue
            if not sending:
                if not self._warned_none:
                    logger.warning("forward: FORWARD_TARGET=none, acknowledging records unsent")
                    self._warned_none = True
                continue
            try:
                item = self._item(record)
            except BadRecord as exc:
                permanent.append((record, None, Failure(False, str(exc))))
                continue
            except StorageUnavailable as exc:
                # The body could not be read now: Lambda retries the record.
                failed[sequence_number(record)] = Failure(True, f"reading the batch: {exc}")
                continue
            key = (item.pk, item.sk)
            slot = slot_of_key.get(key)
            if slot is None:
                slot = slot_of_key[key] = len(items)
                items.append(item)
            else:
                items[slot] = item
            records_of_slot.setdefault(slot, []).append(record)

        report = DeliveryReport()
        if items and self.forwarder is not None:
            report = self.forwarder.deliver(items, deadline)
        self.last_report = report

        for slot, failure in report.failures.items():
            for record in records_of_slot[slot]:
                if failure.transient:
                    failed[sequence_number(record)] = failure
                else:
                    permanent.append((record, items[slot], failure))

        dead_lettered = 0
        if permanent:
            messages = [self._dead_letter(r, i, f) for r, i, f in permanent]
            for message in messages:
                logger.error("forward: permanent failure: %s", json.dumps(message))
            unsent_ids: set[str | None] = set()
            if self.dead_letters is not None:
                unsent_ids = {m["sequenceNumber"] for m in self.dead_letters.send(messages)}
            else:
                unsent_ids = {m["sequenceNumber"] for m in messages}
            for record, _item, failure in permanent:
                seq = sequence_number(record)
                if seq in unsent_ids:
                    # Lambda retries it and, after its retries, sends it to OnFailure.
                    failed[seq] = failure
                else:
                    dead_lettered += 1

        for seq, failure in failed.items():
            logger.warning(
                "forward: record %s reported for retry: %s", seq, failure.reason,
            )
        self._record_metrics(report, len(permanent), dead_lettered, len(failed))
        return self._response(event, failed)

    def _response(self, event: Mapping[str, Any], failed: Mapping[str, Failure]) -> dict[str, Any]:
        from aws_lambda_powertools.utilities.batch import (
            BatchProcessor,
            EventType,
            process_partial_response,
        )

        if not event.get("Records"):
            return {"batchItemFailures": []}

        def record_handler(record: Any) -> None:
            failure = failed.get(record.dynamodb.sequence_number)
            if failure is not None:
                raise RuntimeError(failure.reason)

        processor = BatchProcessor(
            event_type=EventType.DynamoDBStreams,
            raise_on_entire_batch_failure=False,
            logger=logging.getLogger("skewgate.forward.batch"),
        )
        response = process_partial_response(
            event=dict(event), record_handler=record_handler, processor=processor
        )
        return dict(response)

    def _record_metrics(
        self, report: DeliveryReport, permanent: int, dead_lettered: int, retried: int
    ) -> None:
        if self.metrics is None:
            return
        for name, value in (
            ("SpansForwarded", report.spans_forwarded),
            ("ForwardRequests", report.requests),
            ("ForwardRetries", report.retries),
            ("ForwardSplits", report.splits),
            ("ForwardRejectedSpans", report.rejected_spans),
            ("ForwardPermanentFailures", permanent),
            ("ForwardDeadLettered", dead_lettered),
            ("ForwardRecordsRetried", retried),
        ):
            self.metrics.add_metric(name, "Count", value)


def build_forward_app(
    environ: Mapping[str, str] | None = None,
    *,
    metrics: MetricsSink | None = None,
    transport: Transport | None = None,
    credentials: Any = None,
    sleep: Callable[[float], Any] = time.sleep,
    bodies: BodySource | None = None,
) -> ForwardApp:
    """The app from the environment: once per container (Lambda) or per runner (local).

    Committed batches are read back from ``TABLE_NAME`` (``bodies`` overrides the table).
    """
    settings = ForwardSettings.from_env(environ)
    if bodies is None and settings.table_name and settings.forward_target != "none":
        from skewgate.aws.client import dynamodb_client
        from skewgate.aws.store import Store

        bodies = Store(dynamodb_client(), settings.table_name)
    forwarder = None
    url = settings.endpoint()
    if settings.forward_target != "none" and url is not None:
        auth: Authenticator
        retryable = RETRYABLE
        if settings.forward_target == "xray":
            assert settings.region is not None
            auth = SigV4Auth(settings.region, "xray", credentials, settings.headers())
            retryable = RETRYABLE | {500}
        else:
            auth = StaticHeaders(settings.headers())
        sender = Sender(
            url,
            auth,
            transport,
            timeout_s=settings.forward_timeout_ms / 1000.0,
            retryable=retryable,
            sleep=sleep,
        )
        forwarder = Forwarder(
            sender,
            max_request_bytes=settings.forward_max_request_bytes,
            max_request_spans=settings.forward_max_request_spans,
        )
    dead_letters: DeadLetterSink | None = None
    if settings.forward_dlq_url:
        dead_letters = SqsDeadLetters(settings.forward_dlq_url)
    elif settings.forward_dlq_file:
        dead_letters = FileDeadLetters(settings.forward_dlq_file)
    return ForwardApp(settings, forwarder, dead_letters, metrics, bodies=bodies)
