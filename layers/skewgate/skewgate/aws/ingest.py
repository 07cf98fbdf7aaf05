"""The public ingest API: ``POST /v1/traces``, ``GET /v1/clock`` and their CORS preflights.

Routes, then decode → :func:`skewgate.clock.plan.plan_batch` → commit. The DynamoDB
transaction that writes the batch marker is the commit point: a 200 is only sent after it,
and a retried batch (same span ids) finds the marker and is answered without writing again.

Example:
    >>> app = IngestApp(IngestSettings.from_env({"TABLE_NAME": "t"}), store=None)  # doctest: +SKIP
    >>> app.handle(event)  # an API Gateway HTTP API v2 event  # doctest: +SKIP
"""

from __future__ import annotations

import gc
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from skewgate.aws.apigw import Request, error_response, export_response, json_response
from skewgate.aws.settings import IngestSettings
from skewgate.aws.store import AlreadyCommitted, StateConflict, StorageUnavailable, Store
from skewgate.clock.estimate import SkewEstimate
from skewgate.clock.evidence import sign_clock_reading
from skewgate.clock.plan import BatchPlan, PlanConfig, RequestFacts, plan_batch, prepare_batch
from skewgate.clock.records import BatchRecord
from skewgate.wire.decode import DecodeError, TooLarge, UnsupportedMediaType, inflate, media_type
from skewgate.wire.scan import ScannedBatch, scan_request

__all__ = ["BatchOutcome", "IngestApp", "MetricsSink", "build_ingest_app"]

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
    """What one stored batch did, per session: for metrics, logs and the response."""

    batch_id: str
    span_count: int
    rejected_spans: int
    error_message: str = ""
    estimates: list[tuple[str | None, SkewEstimate]] = field(default_factory=list)
    session_spans: list[int] = field(default_factory=list)  # stored spans, per estimate
    duplicate: bool = False

    @classmethod
    def of_plan(cls, plan: BatchPlan, *, duplicate: bool = False) -> BatchOutcome:
        return cls(
            plan.batch_id,
            plan.span_count,
            plan.rejected_spans,
            plan.message,
            [(s.session_id, s.estimate) for s in plan.sessions],
            [s.stored_spans for s in plan.sessions],
            duplicate,
        )

    @classmethod
    def of_record(cls, record: BatchRecord) -> BatchOutcome:
        """A retry of a committed batch: the answer it was given."""
        return cls(
            record.batch_id, record.span_count, record.rejected_spans, record.error_message,
            duplicate=True,
        )


class IngestApp:
    """The ingest handler's logic; ``functions/ingest/app.py`` and the local runner call it."""

    def __init__(
        self,
        settings: IngestSettings,
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
        self.plan_config = PlanConfig(
            estimator=self.estimator,
            limits=self.limits,
            max_sessions=settings.max_sessions_per_request,
            max_traces=settings.max_traces_per_request,
            adjusted_copy=settings.store_adjusted_copy,
        )
        self.cors = settings.cors()
        self.keys = settings.ingest_key_set()

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
        # A request allocates tens of thousands of short-lived, acyclic objects (the decoded
        # spans are gc=False Structs): the cyclic collector would walk the whole heap, boto3's
        # models included, several times per request and free nothing. It runs again after.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._route(request, deadline)
        except Exception:  # never a bare 500 without a Status body
            logger.exception("unhandled error")
            return error_response(
                500, "internal error", protobuf=request.wants_protobuf, headers=self._cors(request)
            )
        finally:
            if collecting:
                gc.enable()

    def _cors(self, request: Request) -> dict[str, str]:
        return self.cors.headers(request.header("origin"))

    def _route(self, request: Request, deadline: float | None) -> dict[str, Any]:
        path = request.path.rstrip("/")
        if path.endswith("/v1/traces"):
            allowed = ("POST", "OPTIONS")
        elif path.endswith("/v1/clock"):
            allowed = ("GET", "OPTIONS")
        elif path.endswith(("/v1/logs", "/v1/metrics")):
            return self._unsupported_signal(request, path.rsplit("/", 1)[1])
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
        origin_problem = self.cors.problem(request.header("origin"))
        if origin_problem:
            return error_response(403, origin_problem, protobuf=protobuf)
        if request.method == "OPTIONS":
            return self.cors.preflight(request.header("origin"), allowed)
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

    def _unsupported_signal(self, request: Request, signal: str) -> dict[str, Any]:
        """OTLP logs and metrics: 404 with a ``google.rpc.Status`` saying so, which no OTLP
        exporter retries (only 429/502/503/504 are retryable). The preflight is answered, so a
        browser exporter sees this message instead of a CORS failure."""
        origin = request.header("origin")
        origin_problem = self.cors.problem(origin)
        if origin_problem:
            return error_response(403, origin_problem, protobuf=request.wants_protobuf)
        if request.method == "OPTIONS":
            return self.cors.preflight(origin, ("POST", "OPTIONS"))
        return error_response(
            404,
            f"skewgate accepts OTLP traces only (POST /v1/traces); OTLP {signal} are not "
            f"supported: send {signal} to an OpenTelemetry Collector instead",
            protobuf=request.wants_protobuf,
            headers=self._cors(request),
        )

    # --- /v1/clock -----------------------------------------------------------------------

    def _clock(self, request: Request) -> dict[str, Any]:
        """The NTP half-exchange; with ``CLOCK_SYNC_KEY``, a token bound to the ``session``
        query parameter (the companion's session id; a CORS-simple GET keeps any preflight out
        of the measured round trip). An id longer than a session key can be binds to no
        session, as the ingest then has none for its batches either."""
        received = request.received_at_ms
        t1: int | float = int(received) if received.is_integer() else received
        t2 = max(round(self.clock_ms(), 3), received)
        payload: dict[str, Any] = {"t1": t1, "t2": t2}
        # Render as the JSON text the client will echo, so a token over it verifies.
        t1_text, t2_text = json.dumps(t1), json.dumps(t2)
        if self.estimator.clock_sync_key is not None:
            session = request.query.get("session") or ""
            if len(session.encode()) > self.plan_config.max_session_id_bytes:
                session = ""
            payload["token"] = sign_clock_reading(
                self.estimator.clock_sync_key, t1_text, t2_text, session
            )
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
            kind = media_type(request.header("content-type"))
            data = inflate(
                request.body, request.header("content-encoding"), self.limits.max_inflated_bytes
            )
            batch = scan_request(data, kind, self.limits)
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
        facts = RequestFacts(
            received_at_ms=request.received_at_ms,
            sent_at=request.header("x-sent-at") or request.query.get("sent_at"),
            clock_sync=request.header("x-clock-sync"),
            session_header=request.header("x-session-id"),
        )
        try:
            outcome = self._store_batch(batch, facts, deadline)
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
        return export_response(
            outcome.rejected_spans, outcome.error_message, protobuf=protobuf, headers=cors
        )

    def _store_batch(
        self, batch: ScannedBatch, facts: RequestFacts, deadline: float | None = None
    ) -> BatchOutcome:
        """Plan and commit, re-planning what changed when a session's state moved under us."""
        prepared = prepare_batch(batch, facts, self.plan_config)
        committed, states = self.store.get_batch_and_states(
            prepared.batch_id, prepared.session_ids, deadline
        )
        if committed is not None:
            return BatchOutcome.of_record(committed)
        plan: BatchPlan | None = None
        for attempt in range(_COMMIT_ATTEMPTS):
            if attempt:
                states = self.store.get_batch_and_states(None, prepared.session_ids, deadline)[1]
            previous = plan
            plan = plan_batch(prepared, facts, states, self.plan_config, previous=previous)
            try:
                self.store.write_batch(
                    plan, deadline,
                    body_written=previous is not None and previous.attempt == plan.attempt,
                )
            except AlreadyCommitted:
                # Another attempt of this batch committed first: answer what it answered.
                record = self.store.get_batch(prepared.batch_id)
                if record is None:
                    return BatchOutcome.of_plan(plan, duplicate=True)
                return BatchOutcome.of_record(record)
            except StateConflict:
                # Another batch of a session moved its state: back off, estimate again.
                time.sleep(random.uniform(0.005, 0.03) * (attempt + 1))
                continue
            return BatchOutcome.of_plan(plan)
        raise StorageUnavailable("session state kept changing under concurrent batches", 1)


def build_ingest_app(*, metrics: bool = True) -> IngestApp:
    """The app from the environment: once per container (Lambda) or per runner (local)."""
    from skewgate.aws.client import dynamodb_client
    from skewgate.aws.metrics import EmfMetricsSink

    settings = IngestSettings.from_env()
    store = Store(
        dynamodb_client(), settings.table_name, settings.retention_seconds,
        index_traces=settings.trace_index,
    )
    return IngestApp(settings, store, metrics=EmfMetricsSink() if metrics else None)
