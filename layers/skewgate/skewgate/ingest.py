"""The public ingest API: ``POST /v1/traces``, ``GET /v1/clock`` and their CORS preflights.

Decode → estimate → write. The DynamoDB transaction that writes the batch marker is the
commit point: a 200 is only sent after it, and a retried batch (same span ids) finds the
marker and is answered without writing again.

Example:
    >>> app = IngestApp(Settings.from_env({"TABLE_NAME": "t"}), store=None)  # doctest: +SKIP
    >>> app.handle(event)  # an API Gateway HTTP API v2 event  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from skewgate.clock import (
    MAX_PLAUSIBLE_OFFSET_MS,
    BatchEvidence,
    ClockSync,
    SessionClock,
    SkewEstimate,
    estimate,
    sign_clock_reading,
)
from skewgate.config import Settings
from skewgate.correct import (
    MAX_STORED_SPAN_BYTES,
    SessionGroup,
    batch_id,
    encode_group,
    group_by_session,
)
from skewgate.http import (
    CORS_ALLOW_HEADERS,
    Request,
    error_response,
    export_response,
    json_response,
)
from skewgate.otlp import DecodeError, TooLarge, UnsupportedMediaType, decode_request
from skewgate.store import (
    AlreadyCommitted,
    BatchRecord,
    SampleRecord,
    StateConflict,
    StateRow,
    StorageUnavailable,
    Store,
)

__all__ = ["BatchOutcome", "IngestApp", "MetricsSink"]

logger = logging.getLogger("skewgate.ingest")

# A browser sends one session's batches one after another; races are rare and short, so a
# few jittered retries resolve them well inside API Gateway's 30 s.
_COMMIT_ATTEMPTS = 10
# Time kept back from the Lambda deadline to answer 503 instead of timing out.
_DEADLINE_MARGIN_MS = 2_000


class MetricsSink(Protocol):
    """Where per-batch fleet metrics go (Powertools EMF in Lambda, nothing in tests)."""

    def record_batch(self, outcome: BatchOutcome) -> None: ...


@dataclass(slots=True)
class BatchOutcome:
    """What one stored batch did, per session: for metrics and logs."""

    batch_id: str
    span_count: int
    rejected_spans: int
    error_message: str = ""
    estimates: list[tuple[str | None, SkewEstimate]] = field(default_factory=list)
    session_spans: list[int] = field(default_factory=list)  # stored spans, per estimate
    errors: list[str] = field(default_factory=list)
    duplicate: bool = False


# DynamoDB keys hold at most 2,048 bytes; a session id is an identifier, not a payload.
MAX_SESSION_ID_BYTES = 256


def _parse_sent_at(text: str | None, received_at_ms: float) -> float | None:
    """``X-Sent-At`` in epoch ms, or ``None`` when absent, malformed or decades away."""
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    if not math.isfinite(value) or abs(received_at_ms - value) > MAX_PLAUSIBLE_OFFSET_MS:
        return None
    return value


def _sync_delay(evidence: BatchEvidence) -> float | None:
    """The echoed round trip's delay, for the record, when it is a plausible number at all."""
    sync = evidence.clock_sync
    if sync is None or not abs(sync.delay_ms) <= MAX_PLAUSIBLE_OFFSET_MS:
        return None
    return sync.delay_ms


class IngestApp:
    """The ingest handler's logic; ``functions/ingest/app.py`` and the local runner call it."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        metrics: MetricsSink | None = None,
        clock_ms: Callable[[], float] = lambda: time.time() * 1000.0,
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.clock_ms = clock_ms
        self.estimator = settings.estimator()
        self.limits = settings.limits()
        self.origins = settings.allowed_origins
        self.keys = settings.ingest_keys

    # --- routing -------------------------------------------------------------------------

    def handle(
        self, event: dict[str, Any], remaining_ms: Callable[[], int] | None = None
    ) -> dict[str, Any]:
        """Answer one API Gateway v2 event.

        ``remaining_ms`` (Lambda's ``context.get_remaining_time_in_millis``) bounds the
        storage work: past the deadline the answer is a 503 the exporter retries, never a
        function timeout that API Gateway would turn into a 500.
        """
        request = Request.from_event(event, self.clock_ms())
        deadline = None
        if remaining_ms is not None:
            deadline = time.monotonic() + (remaining_ms() - _DEADLINE_MARGIN_MS) / 1000.0
        try:
            return self._route(request, deadline)
        except Exception:  # never a bare 500 without a Status body
            logger.exception("unhandled error")
            return error_response(
                500, "internal error", protobuf=request.wants_protobuf, headers=self._cors(request)
            )

    def _route(self, request: Request, deadline: float | None) -> dict[str, Any]:
        path = request.path.rstrip("/")
        if path.endswith("/v1/traces"):
            allowed = ("POST", "OPTIONS")
        elif path.endswith("/v1/clock"):
            allowed = ("GET", "OPTIONS")
        else:
            return error_response(404, f"no route {request.path}", protobuf=False)
        protobuf = request.wants_protobuf
        if request.method not in allowed:
            return error_response(
                405,
                f"{request.method} not allowed on {request.path}",
                protobuf=protobuf,
                headers={"allow": ", ".join(allowed), **self._cors(request)},
            )
        origin_problem = self._origin_problem(request)
        if origin_problem:
            return error_response(403, origin_problem, protobuf=protobuf)
        if request.method == "OPTIONS":
            return self._preflight(request, allowed)
        if self.keys is not None:
            key = request.header("x-ingest-key") or request.query.get("key")
            if key not in self.keys:
                return error_response(
                    401,
                    "missing or invalid ingest key (X-Ingest-Key header or key query parameter)",
                    protobuf=protobuf,
                    headers=self._cors(request),
                )
        if request.method == "GET":
            return self._clock(request)
        return self._traces(request, deadline)

    # --- CORS ----------------------------------------------------------------------------

    def _origin_problem(self, request: Request) -> str | None:
        origin = request.header("origin")
        if origin is None or self.origins is None:
            return None
        if origin.rstrip("/") not in self.origins:
            return f"origin {origin!r} is not allowed"
        return None

    def _cors(self, request: Request) -> dict[str, str]:
        origin = request.header("origin")
        if origin is None:
            return {}
        return {
            "access-control-allow-origin": origin,
            "access-control-expose-headers": "Retry-After",
            "vary": "Origin",
        }

    def _preflight(self, request: Request, allowed: tuple[str, ...]) -> dict[str, Any]:
        headers = {
            **self._cors(request),
            "access-control-allow-methods": ", ".join(allowed),
            "access-control-allow-headers": CORS_ALLOW_HEADERS,
            "access-control-max-age": "86400",
        }
        return {"statusCode": 204, "headers": headers, "body": "", "isBase64Encoded": False}

    # --- /v1/clock -----------------------------------------------------------------------

    def _clock(self, request: Request) -> dict[str, Any]:
        received = request.received_at_ms
        t1: int | float = int(received) if received.is_integer() else received
        t2 = max(round(self.clock_ms(), 3), received)
        payload: dict[str, Any] = {"t1": t1, "t2": t2}
        # Render as the JSON text the client will echo, so a token over it verifies.
        t1_text, t2_text = json.dumps(t1), json.dumps(t2)
        if self.estimator.clock_sync_key is not None:
            payload["token"] = sign_clock_reading(self.estimator.clock_sync_key, t1_text, t2_text)
        return json_response(200, payload, {"cache-control": "no-store", **self._cors(request)})

    # --- /v1/traces ----------------------------------------------------------------------

    def _traces(self, request: Request, deadline: float | None) -> dict[str, Any]:
        protobuf = request.wants_protobuf
        cors = self._cors(request)
        if len(request.body) > self.limits.max_body_bytes:
            return error_response(
                413,
                f"body of {len(request.body)} bytes exceeds {self.limits.max_body_bytes}",
                protobuf=protobuf,
                headers=cors,
            )
        try:
            batch = decode_request(
                request.body,
                request.header("content-type"),
                request.header("content-encoding"),
                self.limits,
            )
        except UnsupportedMediaType as exc:
            return error_response(415, str(exc), protobuf=protobuf, headers=cors)
        except TooLarge as exc:
            return error_response(413, str(exc), protobuf=protobuf, headers=cors)
        except DecodeError as exc:
            return error_response(400, str(exc), protobuf=protobuf, headers=cors)

        if batch.span_count == 0:
            return export_response(
                batch.rejected_spans, batch.error_message, protobuf=protobuf, headers=cors
            )
        try:
            outcome = self._store_batch(
                request,
                batch.span_count,
                batch.rejected_spans,
                batch.error_message,
                batch_id(batch),
                group_by_session(
                    batch, request.header("x-session-id"), max_session_bytes=MAX_SESSION_ID_BYTES
                ),
                deadline,
            )
        except StorageUnavailable as exc:
            logger.warning("storage unavailable: %s", exc)
            status = 429 if exc.throttled else 503
            return error_response(
                status,
                f"storage unavailable, retry later: {exc}",
                protobuf=protobuf,
                headers={"retry-after": str(exc.retry_after_s), **cors},
            )
        # One line per stored batch: every shift skewgate makes is on the record.
        logger.info(
            "batch %s %s: %d spans stored, %d rejected; %s",
            outcome.batch_id,
            "was already stored" if outcome.duplicate else "stored",
            outcome.span_count,
            outcome.rejected_spans,
            "; ".join(
                f"session {sid or '-'}: offset {e.offset_ms:.1f} ms in "
                f"[{e.lower_ms}, {e.upper_ms}] by {e.method.value}, "
                f"{'shifted' if e.applied else 'not shifted'}"
                + (f", flags {','.join(e.flags)}" if e.flags else "")
                for sid, e in outcome.estimates
            )
            or "no new estimate",
        )
        if self.metrics is not None and not outcome.duplicate:
            self.metrics.record_batch(outcome)
        message = "; ".join(
            ([outcome.error_message] if outcome.error_message else []) + outcome.errors
        )
        return export_response(outcome.rejected_spans, message, protobuf=protobuf, headers=cors)

    def _evidence(self, request: Request, group: SessionGroup) -> tuple[BatchEvidence, list[str]]:
        notes: list[str] = []
        sent_text = request.header("x-sent-at") or request.query.get("sent_at")
        sent = _parse_sent_at(sent_text, request.received_at_ms)
        if sent_text is not None and sent is None:
            notes.append("bad_sent_at")
        sync_text = request.header("x-clock-sync")
        sync = ClockSync.parse(sync_text) if sync_text else None
        if sync_text and sync is None:
            notes.append("implausible_sync")
        if group.session_id is None:
            notes.append("bad_session_id" if group.dropped_session_id else "no_session")
        evidence = BatchEvidence(
            received_at_ms=request.received_at_ms,
            sent_at_ms=sent,
            max_client_time_ms=group.max_client_time_ms,
            clock_sync=sync,
        )
        return evidence, notes

    def _store_batch(
        self,
        request: Request,
        span_count: int,
        rejected: int,
        error_message: str,
        bid: str,
        groups: list[SessionGroup],
        deadline: float | None = None,
    ) -> BatchOutcome:
        committed = self.store.get_batch(bid)
        if committed is not None:
            return BatchOutcome(
                bid,
                committed.span_count,
                committed.rejected_spans,
                error_message=committed.error_message,
                duplicate=True,
            )
        received = int(request.received_at_ms)
        sessions = [g.session_id for g in groups if g.session_id is not None]
        for attempt in range(_COMMIT_ATTEMPTS):
            if deadline is not None and time.monotonic() > deadline:
                raise StorageUnavailable("the batch could not be stored in time", 2)
            rows = self.store.get_states(sessions) if sessions else {}
            outcome = BatchOutcome(bid, span_count, rejected, error_message=error_message)
            items: list[dict[str, Any]] = []
            updates: list[tuple[SampleRecord, SessionClock, StateRow | None]] = []
            for group in groups:
                evidence, notes = self._evidence(request, group)
                previous = rows.get(group.session_id) if group.session_id is not None else None
                result, state = estimate(
                    evidence, previous.clock if previous is not None else None, self.estimator
                )
                if notes:
                    result = replace(result, flags=tuple(notes) + result.flags)
                outcome.estimates.append((group.session_id, result))
                chunks, oversized = encode_group(group, result)
                items.extend(self.store.span_items(bid, group.session_id, received, result, chunks))
                stored_spans = len(group.spans) - len(oversized)
                outcome.session_spans.append(stored_spans)
                outcome.span_count -= len(oversized)
                outcome.rejected_spans += len(oversized)
                outcome.errors.extend(
                    f"span {span_id!r}: too large to store (over {MAX_STORED_SPAN_BYTES} bytes)"
                    for span_id in oversized
                )
                if group.session_id is not None:
                    sample = SampleRecord(
                        session_id=group.session_id,
                        batch_id=bid,
                        received_at_ms=received,
                        estimate=result,
                        span_count=stored_spans,
                        trace_ids=group.trace_ids,
                        segment=state.segment,
                        evidence={
                            "sent_at_ms": evidence.sent_at_ms,
                            "max_client_time_ms": evidence.max_client_time_ms,
                            "sync_delay_ms": _sync_delay(evidence),
                        },
                    )
                    updates.append((sample, state, previous))
            message = "; ".join(([error_message] if error_message else []) + outcome.errors)
            record = BatchRecord(bid, received, outcome.span_count, outcome.rejected_spans, message)
            self.store.put_items(items, deadline)
            try:
                self.store.commit(record, updates)
            except AlreadyCommitted:
                outcome.duplicate = True
                return outcome
            except StateConflict:
                # Another batch of a session moved its state: back off, estimate again.
                time.sleep(random.uniform(0.005, 0.03) * (attempt + 1))
                continue
            return outcome
        raise StorageUnavailable("session state kept changing under concurrent batches", 1)
