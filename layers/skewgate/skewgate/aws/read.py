"""The read API (IAM-only when deployed): per-session skew, traces, a day's sessions, stats.

- ``GET /v1/sessions/{id}/skew[?limit=&cursor=]`` → ``{"session_id", "samples": [...]}`` in
  receipt order, read consistently so a batch is visible as soon as its 200 was sent; unknown
  session → 404.
- ``GET /v1/traces/{id}[?session=]`` → ``{"trace_id", "spans": [...]}``: raw and corrected
  times side by side; unknown trace → 404. With ``session`` the session's samples find the
  trace's batches too (the only way when ``TRACE_INDEX`` is off).
- ``GET /v1/sessions?day=&min_offset_ms=&limit=&cursor=`` → ``{"day", "sessions": [...]}``:
  the day's sessions (UTC day, default today), largest proven |offset| first (GSI ``ByDay``).
- ``GET /v1/stats?day=`` → the share of batches and sessions whose offset is *proven* beyond
  50 ms / 100 ms / 1 s / 1 h, overall and by method (from the session-day items).

One function per document (``*_document``); the CLI prints exactly these with ``--json`` and
the local dashboard serves them through ``ReadApp``.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import re
import zlib
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import unquote

import msgspec

from skewgate.aws.apigw import Request, error_response, response
from skewgate.aws.settings import ReadSettings
from skewgate.aws.store import StorageUnavailable, Store
from skewgate.clock.correction import read_back
from skewgate.clock.estimate import Method
from skewgate.clock.interval import SKEW_THRESHOLDS
from skewgate.clock.records import BatchRecord, SessionDay, SkewSample
from skewgate.wire.decode import Limits, decode_protobuf, validate

__all__ = [
    "DEFAULT_SESSIONS_LIMIT",
    "MethodTallies",
    "ReadApp",
    "SessionsDocument",
    "SkewDocument",
    "StatsDocument",
    "Tally",
    "TraceDocument",
    "TraceSpan",
    "build_read_app",
    "document_response",
    "encode_document",
    "parse_day",
    "sessions_document",
    "skew_document",
    "stats_document",
    "trace_document",
    "unknown_trace_message",
]


# --- documents -----------------------------------------------------------------------------


class _Document(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A read API body; ``next_cursor`` and other defaults are left out when unset."""


class SkewDocument(_Document, frozen=True, kw_only=True):
    """``GET /v1/sessions/{id}/skew``: one session's samples in receipt order."""

    session_id: str
    samples: list[SkewSample]
    next_cursor: str | None = None


class SessionsDocument(_Document, frozen=True, kw_only=True):
    """``GET /v1/sessions?day=``: most skewed first."""

    day: str
    sessions: list[SessionDay]
    next_cursor: str | None = None


class TraceSpan(msgspec.Struct, frozen=True, kw_only=True):
    """One stored span with its raw (client clock) and corrected times.

    Times are decimal strings, as OTLP/JSON writes them: they exceed 2^53 and a JavaScript
    reader would round them as numbers.
    """

    span_id: str
    parent_span_id: str | None
    name: str
    service: str | None
    session_id: str | None
    received_at_ms: int
    raw_start_time_unix_nano: str
    raw_end_time_unix_nano: str
    start_time_unix_nano: str
    end_time_unix_nano: str
    offset_ms: float
    lower_ms: float | None
    upper_ms: float | None
    method: Method
    applied: bool

    @property
    def shift_ms(self) -> float:
        return (int(self.start_time_unix_nano) - int(self.raw_start_time_unix_nano)) / 1e6


class TraceDocument(_Document, frozen=True, kw_only=True):
    """``GET /v1/traces/{id}``."""

    trace_id: str
    spans: list[TraceSpan]


class Tally(msgspec.Struct, kw_only=True):
    """How many, and how many of them proven beyond each threshold."""

    total: int = 0
    over: dict[str, int] = msgspec.field(
        default_factory=lambda: {name: 0 for name, _ in SKEW_THRESHOLDS}
    )
    share: dict[str, float | None] = {}

    def with_shares(self) -> Tally:
        total = self.total
        self.share = {
            name: (round(count / total, 6) if total else None) for name, count in self.over.items()
        }
        return self


class MethodTallies(msgspec.Struct, kw_only=True):
    sessions: Tally = msgspec.field(default_factory=Tally)
    batches: Tally = msgspec.field(default_factory=Tally)


class StatsDocument(_Document, frozen=True, kw_only=True):
    """``GET /v1/stats?day=``."""

    day: str
    thresholds_ms: dict[str, float]
    sessions: Tally
    batches: Tally
    by_method: dict[str, MethodTallies]
    corrected_batches: int
    jumps: int
    unclassified_batches: int


_ENCODER = msgspec.json.Encoder()


def encode_document(document: msgspec.Struct) -> bytes:
    """The JSON body of a document: what the route sends and ``skewgate --json`` prints."""
    return _ENCODER.encode(document)

logger = logging.getLogger("skewgate.read")

_MAX_PAGE = 1000
DEFAULT_SESSIONS_LIMIT = 100
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_METHODS = tuple(m.value for m in Method)


def _encode_cursor(key: dict[str, Any] | None) -> str | None:
    if key is None:
        return None
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode()


def _decode_cursor(
    text: str | None, keys: frozenset[str] | None = None, pins: dict[str, str] | None = None
) -> dict[str, Any] | None:
    """A cursor back into DynamoDB's ``ExclusiveStartKey``; ``keys`` and ``pins`` check that it
    belongs to this query (so a doctored cursor is a 400, not a 500 or another partition)."""
    if not text:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(text.encode()))
    except (ValueError, TypeError) as exc:
        raise ValueError("malformed cursor") from exc
    if not isinstance(value, dict):
        raise ValueError("malformed cursor")
    if keys is not None:
        well_formed = set(value) <= keys and all(
            isinstance(v, dict) and set(v) == {"S"} and isinstance(v["S"], str)
            for v in value.values()
        )
        if not well_formed or any(value.get(k, {}).get("S") != v for k, v in (pins or {}).items()):
            raise ValueError("malformed cursor")
    return value


def parse_day(text: str | None) -> str:
    """``yyyy-mm-dd`` (UTC), default today; anything else is a ``ValueError``."""
    if text is None or text == "":
        return datetime.now(tz=UTC).strftime("%Y-%m-%d")
    if not _DAY.fullmatch(text):
        raise ValueError(f"day must be yyyy-mm-dd, not {text!r}")
    try:
        date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"day must be a valid date, not {text!r}") from exc
    return text


def parse_min_offset(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"min_offset_ms must be a number >= 0, not {text!r}")
    return value


def parse_limit(text: str | None, default: int | None) -> int | None:
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= _MAX_PAGE:
        raise ValueError(f"limit must be 1..{_MAX_PAGE}")
    return int(text)


def skew_document(
    store: Store, session_id: str, *, limit: int | None = None, cursor: str | None = None
) -> SkewDocument | None:
    """The skew history of one session, or ``None`` if the session is unknown."""
    start = _decode_cursor(cursor, frozenset({"PK", "SK", "RSK"}), {"PK": f"SESSION#{session_id}"})
    samples, last = store.session_samples(session_id, limit=limit, cursor=start)
    if not samples and cursor is None and not store.session_exists(session_id):
        return None
    return SkewDocument(session_id=session_id, samples=samples, next_cursor=_encode_cursor(last))


def sessions_document(
    store: Store,
    day: str | None = None,
    *,
    min_offset_ms: float | None = None,
    limit: int | None = DEFAULT_SESSIONS_LIMIT,
    cursor: str | None = None,
) -> SessionsDocument:
    """A day's sessions, most skewed (largest proven |offset| of the day) first.

    An empty day is an empty list.
    """
    day = parse_day(day)
    start = _decode_cursor(cursor, frozenset({"PK", "SK", "DPK", "DSK"}), {"DPK": f"DAY#{day}"})
    records, last = store.day_sessions(
        day, min_abs_offset_ms=min_offset_ms, limit=limit, cursor=start
    )
    return SessionsDocument(day=day, sessions=records, next_cursor=_encode_cursor(last))


def stats_document(store: Store, day: str | None = None) -> StatsDocument:
    """How much of a day's traffic is skewed: batches and sessions beyond each threshold.

    "Beyond" means *proven*: the measured interval lies wholly outside ±threshold, so a
    causality-only batch (whose point estimate includes its queueing delay) never counts as
    skewed, and a clock behind by less than the assumed upload delay cannot be proven (see
    docs/design.md). A session counts as beyond a threshold if any of its batches that day
    was, and falls under the method of its latest verdict. Reads every session-day item of
    the day.
    """
    day = parse_day(day)
    records, _ = store.day_sessions(day)
    overall = MethodTallies()
    by_method = {m: MethodTallies() for m in _METHODS}
    corrected = jumps = unclassified = 0
    for record in records:
        counters = record.counters
        classified = 0
        session_over = dict.fromkeys(overall.sessions.over, False)
        for method in _METHODS:
            batches = counters.get(f"batches_{method}", 0)
            classified += batches
            for target in (overall.batches, by_method[method].batches):
                target.total += batches
            for name, _bound in SKEW_THRESHOLDS:
                over = counters.get(f"over_{name}_{method}", 0)
                overall.batches.over[name] += over
                by_method[method].batches.over[name] += over
                session_over[name] = session_over[name] or over > 0
        # Items written before the per-method counters existed: counted, not classified.
        unclassified += max(record.batches - classified, 0)
        targets = [overall.sessions]
        if record.method in by_method:
            targets.append(by_method[record.method].sessions)
        for target in targets:
            target.total += 1
            for name, hit in session_over.items():
                target.over[name] += int(hit)
        corrected += record.corrected_batches
        jumps += record.jumps
    for tallies in (overall, *by_method.values()):
        tallies.sessions.with_shares()
        tallies.batches.with_shares()
    return StatsDocument(
        day=day,
        thresholds_ms=dict(SKEW_THRESHOLDS),
        sessions=overall.sessions,
        batches=overall.batches,
        by_method=by_method,
        corrected_batches=corrected,
        jumps=jumps,
        unclassified_batches=unclassified,
    )


def _service(rs: Any) -> str | None:
    if rs.resource is not None:
        for kv in rs.resource.attributes:
            if kv.key == "service.name" and kv.value is not None:
                return str(kv.value.string_value) if kv.value.string_value is not None else None
    return None


def _format1_spans(blob: bytes) -> list[dict[str, Any]]:
    """The spans of a format 1 item (zlib-compressed OTLP protobuf of one trace's spans)."""
    request = decode_protobuf(zlib.decompress(blob))
    batch = validate(request, Limits(max_spans=1 << 30))
    return [
        {
            "span_id": span.span_id,
            "parent_span_id": span.parent_span_id or None,
            "name": span.name,
            "service": _service(rs),
            "start": span.start_time_unix_nano,
            "end": span.end_time_unix_nano,
        }
        for rs, _ss, span in batch.spans()
    ]


def _opt_float(attr: dict[str, Any]) -> float | None:
    return float(attr["N"]) if "N" in attr else None


def _format1_trace_spans(item: dict[str, Any]) -> list[TraceSpan]:
    raw = _format1_spans(item["raw"]["B"])
    corrected = _format1_spans(item["corrected"]["B"]) if "corrected" in item else raw
    return [
        TraceSpan(
            span_id=r["span_id"],
            parent_span_id=r["parent_span_id"],
            name=r["name"],
            service=r["service"],
            session_id=item.get("session_id", {}).get("S"),
            received_at_ms=int(item["received_at_ms"]["N"]),
            raw_start_time_unix_nano=str(r["start"]),
            raw_end_time_unix_nano=str(r["end"]),
            start_time_unix_nano=str(c["start"]),
            end_time_unix_nano=str(c["end"]),
            offset_ms=float(item["offset_ms"]["N"]),
            lower_ms=_opt_float(item.get("lower_ms", {})),
            upper_ms=_opt_float(item.get("upper_ms", {})),
            method=Method(item["method"]["S"]),
            applied=item["applied"]["BOOL"],
        )
        for r, c in zip(raw, corrected, strict=True)
    ]


def _moved(time_unix_nano: int, shift_ns: int) -> int:
    """A time as the adjusted copy holds it: unset stays unset, nothing goes below 0."""
    return max(time_unix_nano + shift_ns, 0) if time_unix_nano else 0


def _batch_trace_spans(store: Store, record: BatchRecord, trace_id: str) -> list[TraceSpan]:
    """A trace's spans in one committed batch: raw times from the body as received,
    corrected ones from the adjusted copy DynamoDB holds, or, where none is stored (nothing
    moved, or ``STORE_ADJUSTED_COPY`` off), the raw ones moved by their session's shift."""
    raw_body, adjusted_body = store.batch_body(record)
    shifts = record.shifts()
    raw = read_back(raw_body, record.kind, record.grouping, record.limits, shifts)
    corrected = (
        read_back(adjusted_body, record.kind, record.grouping, record.limits, shifts)
        if adjusted_body is not None
        else raw
    )
    out = []
    for r, c in zip(raw, corrected, strict=True):
        if r.span.trace_id != trace_id:
            continue
        shift = r.shift
        start, end = c.span.start_time_unix_nano, c.span.end_time_unix_nano
        if adjusted_body is None and shift is not None and shift.applied:
            start, end = _moved(start, shift.shift_ns), _moved(end, shift.shift_ns)
        out.append(
            TraceSpan(
                span_id=r.span.span_id,
                parent_span_id=r.span.parent_span_id or None,
                name=r.span.name,
                service=_service(r.resource),
                session_id=r.session_id,
                received_at_ms=record.received_at_ms,
                raw_start_time_unix_nano=str(r.span.start_time_unix_nano),
                raw_end_time_unix_nano=str(r.span.end_time_unix_nano),
                start_time_unix_nano=str(start),
                end_time_unix_nano=str(end),
                offset_ms=shift.offset_ms if shift else 0.0,
                lower_ms=shift.lower_ms if shift else None,
                upper_ms=shift.upper_ms if shift else None,
                method=shift.method if shift else Method.NONE,
                applied=shift.applied if shift else False,
            )
        )
    return out


def trace_document(
    store: Store, trace_id: str, *, session_id: str | None = None
) -> TraceDocument | None:
    """Raw and corrected times of every stored span of a trace, side by side.

    The trace index finds its batches; with ``session_id`` so do that session's samples
    (each lists its batch's traces), which is how a trace is found in a table written with
    ``TRACE_INDEX`` off. Only committed batches count: an index item or sample whose batch has
    no marker (an attempt that never committed) leads nowhere.
    """
    trace_id = trace_id.lower()
    items = store.trace_items(trace_id)
    batch_ids = {item["SK"]["S"][2:] for item in items if item["SK"]["S"].startswith("B#")}
    if session_id is not None:
        batch_ids.update(store.session_batches_with(session_id, trace_id))
    spans: list[TraceSpan] = []
    for record in sorted(
        store.get_batches(batch_ids).values(), key=lambda r: (r.received_at_ms, r.batch_id)
    ):
        spans.extend(_batch_trace_spans(store, record, trace_id))
    for item in items:
        if item["SK"]["S"].startswith("SPANS#"):
            spans.extend(_format1_trace_spans(item))
    if not spans:
        return None
    spans.sort(key=lambda s: (int(s.raw_start_time_unix_nano), s.span_id))
    return TraceDocument(trace_id=trace_id, spans=spans)


def unknown_trace_message(store: Store, trace_id: str, session_id: str | None) -> str:
    """Why a trace was not found, and how to look for it when the index is off."""
    where = f" in session {session_id!r}" if session_id is not None else ""
    message = f"unknown trace {trace_id!r}{where}"
    if not store.index_traces and session_id is None:
        message += (
            ": traces are not indexed (TRACE_INDEX=false); ask with ?session=<session id>"
        )
    return message


def document_response(document: msgspec.Struct) -> dict[str, Any]:
    return response(200, encode_document(document), "application/json")


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
        except Exception as exc:
            if _validation_error(exc):  # DynamoDB refused the request (e.g. a doctored cursor)
                return error_response(400, "bad request", protobuf=False)
            logger.exception("unhandled error")
            return error_response(500, "internal error", protobuf=False)

    def _route(self, request: Request) -> dict[str, Any]:
        if request.method != "GET":
            return error_response(
                405, f"{request.method} not allowed", protobuf=False, headers={"allow": "GET"}
            )
        parts = [unquote(p) for p in request.path.strip("/").split("/")]
        if "v1" in parts:
            parts = parts[parts.index("v1") + 1 :]
        query = request.query
        if parts == ["sessions"]:
            return document_response(
                sessions_document(
                    self.store,
                    query.get("day"),
                    min_offset_ms=parse_min_offset(query.get("min_offset_ms")),
                    limit=parse_limit(query.get("limit"), DEFAULT_SESSIONS_LIMIT),
                    cursor=query.get("cursor"),
                )
            )
        if parts == ["stats"]:
            return document_response(stats_document(self.store, query.get("day")))
        if len(parts) == 3 and parts[0] == "sessions" and parts[2] == "skew":
            page = parse_limit(query.get("limit"), None)
            doc = skew_document(self.store, parts[1], limit=page, cursor=query.get("cursor"))
            if doc is None:
                return error_response(404, f"unknown session {parts[1]!r}", protobuf=False)
            return document_response(doc)
        if len(parts) == 2 and parts[0] == "traces":
            session = query.get("session") or None
            trace = trace_document(self.store, parts[1], session_id=session)
            if trace is None:
                message = unknown_trace_message(self.store, parts[1], session)
                return error_response(404, message, protobuf=False)
            return document_response(trace)
        return error_response(404, f"no route {request.path}", protobuf=False)


def _validation_error(exc: Exception) -> bool:
    response = getattr(exc, "response", None)
    return isinstance(response, dict) and (
        response.get("Error", {}).get("Code") == "ValidationException"
    )


def build_read_app() -> ReadApp:
    """The app from the environment: once per container (Lambda) or per runner (local)."""
    from skewgate.aws.client import dynamodb_client

    settings = ReadSettings.from_env()
    store = Store(
        dynamodb_client(), settings.table_name, settings.retention_seconds,
        index_traces=settings.trace_index,
    )
    return ReadApp(store)
