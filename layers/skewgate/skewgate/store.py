"""The DynamoDB single table: keys, item shapes, and the writes that make a batch durable.

Access paths (table ``PK``/``SK``, LSI ``ByReceipt`` on ``RSK``, GSI ``ByDay`` on ``DPK``/``DSK``):

=====================  ===========================  =========================================
item                   key                          read by
=====================  ===========================  =========================================
span chunk             TRACE#<trace> / SPANS#...    trace id (raw and corrected); the stream
skew sample            SESSION#<sid> / SAMPLE#<b>   LSI ByReceipt: session, receipt order
session state          SESSION#<sid> / STATE        history and jump detection (versioned)
session day            SESSION#<sid> / DAY#<d>      GSI ByDay: a day's sessions, most skewed
batch marker           BATCH#<b> / BATCH            idempotency: a retried batch is a no-op
=====================  ===========================  =========================================

The batch marker, the samples and the state updates go in one transaction, written after the
span chunks: the marker is the commit point, so a 200 is only sent once everything is stored,
and a retry of a committed batch writes nothing.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from skewgate.clock import Method, SessionClock, SkewEstimate
from skewgate.correct import TraceChunk

__all__ = [
    "SKEW_THRESHOLDS",
    "BatchRecord",
    "SampleRecord",
    "SessionDayRecord",
    "StateConflict",
    "StorageUnavailable",
    "Store",
    "decode_sample",
    "decode_session_day",
    "proven_abs_offset_ms",
]

# Parallel BatchWriteItem calls per request: enough to hide round trips, few enough not to
# burst a new on-demand table's partitions.
_WRITE_WORKERS: Final = 8
SAMPLE_INDEX: Final = "ByReceipt"
DAY_INDEX: Final = "ByDay"
_RETRYABLE: Final = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionConflictException",
        "TransactionInProgressException",
    }
)


class StorageUnavailable(RuntimeError):
    """DynamoDB throttled or could not be reached; the client should retry later."""

    def __init__(self, message: str, retry_after_s: int = 1, throttled: bool = False) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.throttled = throttled


class StateConflict(RuntimeError):
    """Another batch of the same session committed first; re-read and estimate again."""


class AlreadyCommitted(RuntimeError):
    """The batch marker exists: this batch was stored before."""


def _n(value: float | int) -> dict[str, str]:
    return {"N": repr(value) if isinstance(value, float) else str(value)}


def _opt_n(value: float | None) -> dict[str, Any]:
    return {"NULL": True} if value is None else _n(value)


def _num(attr: dict[str, Any] | None) -> float | None:
    if attr is None or "NULL" in attr:
        return None
    return float(attr["N"])


def _int(attr: dict[str, Any]) -> int:
    return int(attr["N"])


def day_of(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000.0, tz=UTC).strftime("%Y-%m-%d")


#: Fleet thresholds on the *proven* |offset| (see ``proven_abs_offset_ms``): the per-day
#: counters ``over_<name>_<method>`` of the session-day items and ``skewgate stats`` use these.
SKEW_THRESHOLDS: Final = (("50ms", 50.0), ("100ms", 100.0), ("1s", 1_000.0), ("1h", 3_600_000.0))


def proven_abs_offset_ms(lower_ms: float | None, upper_ms: float | None) -> float:
    """How far the interval [lower, upper] lies from 0: a lower bound on |θ| (0 if it holds 0).

    The point estimate is no measure of skew on its own: with causality only it carries the
    batch's queueing delay (a clock in sync, batches flushed every 5 s, reads as θ ≈ 5 s).
    What the evidence *proves* is this distance, so fleet counts use it.

    >>> proven_abs_offset_ms(-10_800.0, -780.0), proven_abs_offset_ms(-55_000.0, 5_000.0)
    (780.0, 0.0)
    """
    if lower_ms is not None and lower_ms > 0:
        return lower_ms
    if upper_ms is not None and upper_ms < 0:
        return -upper_ms
    return 0.0


def _session_hash(session_id: str | None) -> str:
    return hashlib.sha256((session_id or "").encode()).hexdigest()[:8]


@dataclass(frozen=True, slots=True)
class SampleRecord:
    """One skew sample: the verdict for one session in one batch (the read API's shape)."""

    session_id: str
    batch_id: str
    received_at_ms: int
    estimate: SkewEstimate
    span_count: int
    trace_ids: list[str]
    segment: int
    evidence: dict[str, float | None] = field(default_factory=dict)

    def to_api(self) -> dict[str, Any]:
        e = self.estimate
        return {
            "received_at_ms": self.received_at_ms,
            "offset_ms": e.offset_ms,
            "lower_ms": e.lower_ms,
            "upper_ms": e.upper_ms,
            "method": e.method.value,
            "applied": e.applied,
            "jump": e.jump,
            "flags": list(e.flags),
            "span_count": self.span_count,
            "trace_ids": self.trace_ids,
        }


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """What a committed batch answered, so a retry gets the same answer."""

    batch_id: str
    received_at_ms: int
    span_count: int
    rejected_spans: int
    error_message: str


def decode_sample(item: dict[str, Any]) -> SampleRecord:
    estimate = SkewEstimate(
        offset_ms=float(item["offset_ms"]["N"]),
        lower_ms=_num(item.get("lower_ms")),
        upper_ms=_num(item.get("upper_ms")),
        method=Method(item["method"]["S"]),
        applied=item["applied"]["BOOL"],
        jump=item["jump"]["BOOL"],
        flags=tuple(f["S"] for f in item.get("flags", {}).get("L", [])),
    )
    evidence = {k: _num(v) for k, v in item.get("evidence", {}).get("M", {}).items()}
    return SampleRecord(
        session_id=item["session_id"]["S"],
        batch_id=item["batch_id"]["S"],
        received_at_ms=_int(item["received_at_ms"]),
        estimate=estimate,
        span_count=_int(item["span_count"]),
        trace_ids=[t["S"] for t in item.get("trace_ids", {}).get("L", [])],
        segment=_int(item.get("segment", {"N": "0"})),
        evidence=evidence,
    )


@dataclass(frozen=True, slots=True)
class SessionDayRecord:
    """One session on one day (the ``SESSION#<sid>``/``DAY#<d>`` item): latest verdict, counts."""

    session_id: str
    day: str
    max_proven_abs_offset_ms: float
    offset_ms: float
    lower_ms: float | None
    upper_ms: float | None
    method: str
    applied: bool
    batches: int
    corrected_batches: int
    jumps: int
    first_received_at_ms: int | None
    last_received_at_ms: int
    #: ``batches_<method>`` and ``over_<threshold>_<method>`` (absent counters are 0).
    counters: dict[str, int] = field(default_factory=dict)

    def to_api(self) -> dict[str, Any]:
        """The read API's document: every field but the key-only ``day`` and the counters."""
        return {k: v for k, v in asdict(self).items() if k not in ("day", "counters")}


def decode_session_day(item: dict[str, Any]) -> SessionDayRecord:
    first = item.get("first_received_at_ms")
    return SessionDayRecord(
        session_id=item["session_id"]["S"],
        day=item["SK"]["S"].removeprefix("DAY#"),
        max_proven_abs_offset_ms=float(item["max_proven_abs_offset_ms"]["N"]),
        offset_ms=float(item["offset_ms"]["N"]),
        lower_ms=_num(item.get("lower_ms")),
        upper_ms=_num(item.get("upper_ms")),
        method=item["method"]["S"],
        applied=item["applied"]["BOOL"],
        batches=_int(item["batches"]),
        corrected_batches=_int(item.get("corrected_batches", {"N": "0"})),
        jumps=_int(item.get("jumps", {"N": "0"})),
        first_received_at_ms=None if first is None else _int(first),
        last_received_at_ms=_int(item["last_received_at_ms"]),
        counters={
            name: _int(value)
            for name, value in item.items()
            if name.startswith(("batches_", "over_")) and "N" in value
        },
    )


def _state_from_item(item: dict[str, Any]) -> SessionClock:
    return SessionClock(
        segment=_int(item["segment"]),
        lower_ms=_num(item.get("lower_ms")),
        upper_ms=_num(item.get("upper_ms")),
        at_ms=float(item["at_ms"]["N"]),
        method=Method(item["method"]["S"]),
        samples=_int(item["samples"]),
        best_sync_offset_ms=_num(item.get("best_sync_offset_ms")),
        best_sync_delay_ms=_num(item.get("best_sync_delay_ms")),
        best_sync_at_ms=_num(item.get("best_sync_at_ms")),
    )


@dataclass(frozen=True, slots=True)
class StateRow:
    """A session's stored state, its version (for the conditional write) and its day's peak."""

    clock: SessionClock
    version: int
    day: str
    day_max_proven_abs_ms: float

    def day_peak(self, received_at_ms: float, proven_abs_ms: float) -> float:
        """The day's largest proven |θ| after this sample (a new day starts from it)."""
        if day_of(received_at_ms) == self.day:
            return max(self.day_max_proven_abs_ms, proven_abs_ms)
        return proven_abs_ms


class Store:
    """All DynamoDB I/O of the gateway, through one low-level boto3 client.

    Example:
        >>> import boto3  # doctest: +SKIP
        >>> store = Store(boto3.client("dynamodb"), "skewgate")  # doctest: +SKIP
    """

    def __init__(self, client: Any, table_name: str, retention_seconds: int = 30 * 86_400) -> None:
        self.client = client
        self.table = table_name
        self.retention_seconds = retention_seconds

    # --- error mapping -------------------------------------------------------------------

    def _call(self, operation: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, operation)(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "TransactionCanceledException":
                raise
            if code in _RETRYABLE:
                raise StorageUnavailable(
                    f"DynamoDB {operation}: {code}",
                    retry_after_s=1,
                    throttled="Throughput" in code or "Throttl" in code or "Limit" in code,
                ) from exc
            if code == "ResourceNotFoundException":
                raise StorageUnavailable(f"DynamoDB table {self.table!r} not found", 5) from exc
            raise
        except BotoCoreError as exc:  # connection refused, timeouts, DNS: storage is down
            raise StorageUnavailable(f"DynamoDB {operation}: {exc}", retry_after_s=5) from exc

    def _ttl(self, received_at_ms: float) -> dict[str, str]:
        return _n(int(received_at_ms / 1000) + self.retention_seconds)

    # --- ingest --------------------------------------------------------------------------

    def get_batch(self, batch_id: str) -> BatchRecord | None:
        item = self._call(
            "get_item",
            TableName=self.table,
            Key={"PK": {"S": f"BATCH#{batch_id}"}, "SK": {"S": "BATCH"}},
            ConsistentRead=True,
        ).get("Item")
        if item is None:
            return None
        return BatchRecord(
            batch_id=batch_id,
            received_at_ms=_int(item["received_at_ms"]),
            span_count=_int(item["span_count"]),
            rejected_spans=_int(item["rejected_spans"]),
            error_message=item.get("error_message", {}).get("S", ""),
        )

    def get_states(self, session_ids: Iterable[str]) -> dict[str, StateRow]:
        """Current state and version of each session that has one (consistent reads)."""
        keys = [{"PK": {"S": f"SESSION#{sid}"}, "SK": {"S": "STATE"}} for sid in set(session_ids)]
        found: dict[str, StateRow] = {}
        for start in range(0, len(keys), 100):
            pending: dict[str, Any] = {
                self.table: {"Keys": keys[start : start + 100], "ConsistentRead": True}
            }
            while pending:
                response = self._call("batch_get_item", RequestItems=pending)
                for item in response.get("Responses", {}).get(self.table, []):
                    sid = item["PK"]["S"].removeprefix("SESSION#")
                    found[sid] = StateRow(
                        _state_from_item(item),
                        _int(item["version"]),
                        item.get("day", {}).get("S", ""),
                        _num(item.get("day_max_proven_abs_ms")) or 0.0,
                    )
                pending = response.get("UnprocessedKeys") or {}
        return found

    def span_items(
        self,
        batch_id: str,
        session_id: str | None,
        received_at_ms: int,
        estimate: SkewEstimate,
        chunks: Sequence[TraceChunk],
    ) -> list[dict[str, Any]]:
        items = []
        group = _session_hash(session_id)
        for chunk in chunks:
            item: dict[str, Any] = {
                "PK": {"S": f"TRACE#{chunk.trace_id}"},
                "SK": {"S": f"SPANS#{batch_id}#{group}#{chunk.index:04d}"},
                "type": {"S": "spans"},
                "batch_id": {"S": batch_id},
                "received_at_ms": _n(received_at_ms),
                "span_count": _n(chunk.span_count),
                "raw": {"B": zlib.compress(chunk.raw, 6)},
                "applied": {"BOOL": estimate.applied},
                "offset_ms": _n(float(estimate.offset_ms)),
                "lower_ms": _opt_n(estimate.lower_ms),
                "upper_ms": _opt_n(estimate.upper_ms),
                "method": {"S": estimate.method.value},
                "ttl": self._ttl(received_at_ms),
            }
            if session_id is not None:
                item["session_id"] = {"S": session_id}
            if chunk.corrected is not None:
                item["corrected"] = {"B": zlib.compress(chunk.corrected, 6)}
            items.append(item)
        return items

    def put_items(
        self, items: Sequence[dict[str, Any]], deadline: float | None = None
    ) -> None:
        """BatchWriteItem in 25s, resubmitting unprocessed items until all are written.

        A request of 10,000 spans in as many traces is 400 writes: they go out in parallel
        (boto3 clients are thread-safe), and none starts after ``deadline`` (monotonic s).
        """
        chunks = [items[i : i + 25] for i in range(0, len(items), 25)]
        if len(chunks) <= 1:
            for chunk in chunks:
                self._write_chunk(chunk, deadline)
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(_WRITE_WORKERS, len(chunks))) as pool:
            for future in [pool.submit(self._write_chunk, c, deadline) for c in chunks]:
                future.result()  # the first failure propagates; the batch is not committed

    def _write_chunk(self, chunk: Sequence[dict[str, Any]], deadline: float | None) -> None:
        import time

        pending = [{"PutRequest": {"Item": it}} for it in chunk]
        delay = 0.02
        attempts = 0
        while pending:
            if deadline is not None and time.monotonic() > deadline:
                raise StorageUnavailable("DynamoDB writes did not finish in time", 2)
            response = self._call("batch_write_item", RequestItems={self.table: pending})
            pending = response.get("UnprocessedItems", {}).get(self.table, [])
            if pending:
                attempts += 1
                if attempts > 6:
                    raise StorageUnavailable("DynamoDB kept items unprocessed", 2, True)
                time.sleep(delay)
                delay *= 2

    def commit(
        self,
        batch: BatchRecord,
        updates: Sequence[tuple[SampleRecord, SessionClock, StateRow | None]],
    ) -> None:
        """Write samples, state updates and the batch marker atomically.

        ``updates`` holds (sample, new state, the state row it was estimated from or None for
        a new session); a version mismatch raises ``StateConflict``, an existing marker
        ``AlreadyCommitted``.
        """
        from botocore.exceptions import ClientError

        ttl = self._ttl(batch.received_at_ms)
        per_session: list[list[dict[str, Any]]] = []
        for sample, state, previous in updates:
            actions: list[dict[str, Any]] = []
            per_session.append(actions)
            # The day index ranks sessions by what their intervals prove, not by point
            # estimates: with causality only, an estimate carries the batch's queueing delay.
            proven = proven_abs_offset_ms(sample.estimate.lower_ms, sample.estimate.upper_ms)
            peak = (
                previous.day_peak(sample.received_at_ms, proven) if previous is not None else proven
            )
            actions.append({"Put": {"TableName": self.table, "Item": self._sample_item(sample)}})
            actions.append({"Update": self._day_update(sample, peak)})
            actions.append({"Put": self._state_put(sample, state, previous, peak, ttl)})
        marker = {
            "Put": {
                "TableName": self.table,
                "Item": {
                    "PK": {"S": f"BATCH#{batch.batch_id}"},
                    "SK": {"S": "BATCH"},
                    "type": {"S": "batch"},
                    "received_at_ms": _n(batch.received_at_ms),
                    "span_count": _n(batch.span_count),
                    "rejected_spans": _n(batch.rejected_spans),
                    "error_message": {"S": batch.error_message},
                    "ttl": ttl,
                },
                "ConditionExpression": "attribute_not_exists(PK)",
            }
        }
        # A transaction holds at most 100 actions: 33 sessions (3 actions each) and the marker
        # in the last one. A session's sample, day and state always commit together.
        chunks = [
            [action for session in per_session[i : i + 33] for action in session]
            for i in range(0, len(per_session), 33)
        ] or [[]]
        chunks[-1].append(marker)
        for chunk in chunks:
            try:
                self._call("transact_write_items", TransactItems=chunk)
            except ClientError as exc:
                reasons = exc.response.get("CancellationReasons") or []
                codes = [r.get("Code", "None") for r in reasons]
                if chunk is chunks[-1] and codes and codes[-1] == "ConditionalCheckFailed":
                    raise AlreadyCommitted(batch.batch_id) from exc
                if "ConditionalCheckFailed" in codes:
                    raise StateConflict(batch.batch_id) from exc
                if any(c in ("ThrottlingError", "ProvisionedThroughputExceeded") for c in codes):
                    raise StorageUnavailable("DynamoDB throttled the commit", 1, True) from exc
                if "TransactionConflict" in codes:
                    raise StateConflict(batch.batch_id) from exc
                raise

    def _sample_item(self, s: SampleRecord) -> dict[str, Any]:
        e = s.estimate
        return {
            "PK": {"S": f"SESSION#{s.session_id}"},
            "SK": {"S": f"SAMPLE#{s.batch_id}"},
            "RSK": {"S": f"{s.received_at_ms:015d}#{s.batch_id}"},
            "type": {"S": "sample"},
            "session_id": {"S": s.session_id},
            "batch_id": {"S": s.batch_id},
            "received_at_ms": _n(s.received_at_ms),
            "offset_ms": _n(float(e.offset_ms)),
            "lower_ms": _opt_n(e.lower_ms),
            "upper_ms": _opt_n(e.upper_ms),
            "method": {"S": e.method.value},
            "applied": {"BOOL": e.applied},
            "jump": {"BOOL": e.jump},
            "flags": {"L": [{"S": f} for f in e.flags]},
            "span_count": _n(s.span_count),
            "trace_ids": {"L": [{"S": t} for t in s.trace_ids]},
            "segment": _n(s.segment),
            "evidence": {"M": {k: _opt_n(v) for k, v in s.evidence.items()}},
            "ttl": self._ttl(s.received_at_ms),
        }

    def _day_update(self, s: SampleRecord, day_max_abs_ms: float) -> dict[str, Any]:
        """Per session and day: the latest verdict and the largest proven |offset| (day index)."""
        e = s.estimate
        day = day_of(s.received_at_ms)
        magnitude = min(day_max_abs_ms, 1e15)
        # Fleet counters (``skewgate stats``): batches per method, and of those the ones whose
        # interval proves |θ| beyond each threshold. Only counters that grow are written.
        proven = proven_abs_offset_ms(e.lower_ms, e.upper_ms)
        counters = [f"batches_{e.method.value}"] + [
            f"over_{name}_{e.method.value}" for name, bound in SKEW_THRESHOLDS if proven > bound
        ]
        names = {"#type": "type", "#method": "method", "#ttl": "ttl"}
        names.update({f"#c{i}": counter for i, counter in enumerate(counters)})
        counter_updates = "".join(
            f", #c{i} = if_not_exists(#c{i}, :zero) + :one" for i in range(len(counters))
        )
        return {
            "TableName": self.table,
            "Key": {"PK": {"S": f"SESSION#{s.session_id}"}, "SK": {"S": f"DAY#{day}"}},
            "UpdateExpression": (
                "SET #type = :type, session_id = :sid, DPK = :dpk, last_received_at_ms = :recv,"
                " first_received_at_ms = if_not_exists(first_received_at_ms, :recv),"
                " offset_ms = :off, lower_ms = :lo, upper_ms = :up, #method = :method,"
                " applied = :applied, #ttl = :ttl,"
                " batches = if_not_exists(batches, :zero) + :one,"
                " jumps = if_not_exists(jumps, :zero) + :jump,"
                " corrected_batches = if_not_exists(corrected_batches, :zero) + :corrected,"
                " max_proven_abs_offset_ms = :mag, DSK = :dsk" + counter_updates
            ),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": {
                ":type": {"S": "session_day"},
                ":sid": {"S": s.session_id},
                ":dpk": {"S": f"DAY#{day}"},
                ":recv": _n(s.received_at_ms),
                ":off": _n(float(e.offset_ms)),
                ":lo": _opt_n(e.lower_ms),
                ":up": _opt_n(e.upper_ms),
                ":method": {"S": e.method.value},
                ":applied": {"BOOL": e.applied},
                ":ttl": self._ttl(s.received_at_ms),
                ":zero": _n(0),
                ":one": _n(1),
                ":jump": _n(1 if e.jump else 0),
                ":corrected": _n(1 if e.applied else 0),
                ":mag": _n(float(magnitude)),
                ":dsk": {"S": f"{magnitude:020.3f}#{s.session_id}"},
            },
        }

    def _state_put(
        self,
        sample: SampleRecord,
        state: SessionClock,
        previous: StateRow | None,
        day_peak_ms: float,
        ttl: dict[str, str],
    ) -> dict[str, Any]:
        version = None if previous is None else previous.version
        put: dict[str, Any] = {
            "TableName": self.table,
            "Item": {
                "PK": {"S": f"SESSION#{sample.session_id}"},
                "day": {"S": day_of(sample.received_at_ms)},
                "day_max_proven_abs_ms": _n(float(day_peak_ms)),
                "SK": {"S": "STATE"},
                "type": {"S": "state"},
                "version": _n((version or 0) + 1),
                "segment": _n(state.segment),
                "lower_ms": _opt_n(state.lower_ms),
                "upper_ms": _opt_n(state.upper_ms),
                "at_ms": _n(float(state.at_ms)),
                "method": {"S": state.method.value},
                "samples": _n(state.samples),
                "best_sync_offset_ms": _opt_n(state.best_sync_offset_ms),
                "best_sync_delay_ms": _opt_n(state.best_sync_delay_ms),
                "best_sync_at_ms": _opt_n(state.best_sync_at_ms),
                "ttl": ttl,
            },
        }
        if version is None:
            put["ConditionExpression"] = "attribute_not_exists(PK)"
        else:
            put["ConditionExpression"] = "version = :v"
            put["ExpressionAttributeValues"] = {":v": _n(version)}
        return put

    # --- reads ---------------------------------------------------------------------------

    def session_samples(
        self, session_id: str, *, limit: int | None = None, cursor: dict[str, Any] | None = None
    ) -> tuple[list[SampleRecord], dict[str, Any] | None]:
        """Samples in receipt order (consistent: a 200 is readable at once)."""
        samples: list[SampleRecord] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": SAMPLE_INDEX,
            "KeyConditionExpression": "PK = :pk",
            "ExpressionAttributeValues": {":pk": {"S": f"SESSION#{session_id}"}},
            "ConsistentRead": True,
        }
        if cursor:
            kwargs["ExclusiveStartKey"] = cursor
        while True:
            if limit is not None:
                kwargs["Limit"] = limit - len(samples)
            response = self._call("query", **kwargs)
            samples.extend(decode_sample(item) for item in response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            if last is None or (limit is not None and len(samples) >= limit):
                return samples, last
            kwargs["ExclusiveStartKey"] = last

    def day_sessions(
        self,
        day: str,
        *,
        min_abs_offset_ms: float | None = None,
        limit: int | None = None,
        cursor: dict[str, Any] | None = None,
    ) -> tuple[list[SessionDayRecord], dict[str, Any] | None]:
        """A day's sessions, largest proven |offset| first (GSI ``ByDay``, descending; no Scan).

        ``min_abs_offset_ms`` is a key condition on the zero-padded ``DSK``, so every page
        holds only matching sessions. The GSI is eventually consistent (a batch shows up here
        within about a second, in the skew history at once).
        """
        values: dict[str, Any] = {":dpk": {"S": f"DAY#{day}"}}
        condition = "DPK = :dpk"
        if min_abs_offset_ms is not None and min_abs_offset_ms > 0:
            condition += " AND DSK >= :dsk"
            values[":dsk"] = {"S": f"{min(min_abs_offset_ms, 1e15):020.3f}#"}
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": DAY_INDEX,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
        }
        if cursor:
            kwargs["ExclusiveStartKey"] = cursor
        sessions: list[SessionDayRecord] = []
        while True:
            if limit is not None:
                kwargs["Limit"] = limit - len(sessions)
            response = self._call("query", **kwargs)
            sessions.extend(decode_session_day(item) for item in response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            if last is None or (limit is not None and len(sessions) >= limit):
                return sessions, last
            kwargs["ExclusiveStartKey"] = last

    def session_exists(self, session_id: str) -> bool:
        return bool(self.get_states([session_id]))

    def trace_items(self, trace_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "PK = :pk AND begins_with(SK, :spans)",
            "ExpressionAttributeValues": {
                ":pk": {"S": f"TRACE#{trace_id}"},
                ":spans": {"S": "SPANS#"},
            },
            "ConsistentRead": True,
        }
        while True:
            response = self._call("query", **kwargs)
            items.extend(response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return items
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
