"""All DynamoDB I/O of the gateway: the commit of a batch, its reads, and the error mapping.

Item shapes and keys are :mod:`skewgate.aws.codec`'s; this module only talks to DynamoDB.

A batch commits in one transaction: its marker (condition: not yet there), and per session
the sample, the day counters and the next state (condition: the version it was estimated
from). Its body chunks and trace index items are written before, outside the transaction
(half the write cost), under keys nothing reads without the marker: body chunks are named by
the attempt, which only a committed marker points at, and index items only lead to a marker.
So nothing of a batch is visible to reads or to the stream (which forwards markers) until it
commits, and a racing retry never rewrites what another attempt committed.

Every call is bounded in time: the client has short timeouts and no retries of its own, and
no call starts that could not finish before the caller's deadline, so a stalled table is a
``503`` with ``Retry-After`` well inside the function's timeout.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any, Final

from skewgate.aws.codec import (
    DAY_INDEX,
    SAMPLE_INDEX,
    batch_item,
    batch_key,
    body_items,
    body_prefix,
    day_update,
    from_item,
    sample_from_item,
    sample_item,
    sample_trace_ids,
    session_day_from_item,
    state_key,
    state_put,
    trace_index_items,
)
from skewgate.aws.dynamo import DynamoDBError, DynamoDBUnreachable
from skewgate.clock.plan import BatchPlan
from skewgate.clock.records import BatchRecord, SessionDay, SessionState, SkewSample
from skewgate.wire.blob import unpack

__all__ = [
    "CALL_BUDGET_S",
    "AlreadyCommitted",
    "StateConflict",
    "StorageUnavailable",
    "Store",
]

#: The longest one DynamoDB call may take (the client's connect + read timeout): a call is
#: not started with less time than this left before the deadline.
CALL_BUDGET_S: Final = 3.5
# Parallel BatchWriteItem calls per request: enough to hide round trips, few enough not to
# burst a new on-demand table's partitions.
_WRITE_WORKERS: Final = 8
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
    """The batch marker exists: this batch was stored before (by another attempt)."""


def service_error(exc: BaseException) -> dict[str, Any] | None:
    """The error response DynamoDB answered with, from the lean caller or a boto3 client."""
    if isinstance(exc, DynamoDBError):
        return exc.response
    botocore = sys.modules.get("botocore.exceptions")  # loaded whenever a boto3 client exists
    if botocore is not None and isinstance(exc, botocore.ClientError):
        response: dict[str, Any] = exc.response
        return response
    return None


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says DynamoDB did not answer at all."""
    if isinstance(exc, DynamoDBUnreachable):
        return True
    botocore = sys.modules.get("botocore.exceptions")
    return botocore is not None and isinstance(exc, botocore.BotoCoreError)


class Store:
    """All DynamoDB I/O of the gateway, through one low-level boto3 client.

    Example:
        >>> import boto3  # doctest: +SKIP
        >>> store = Store(boto3.client("dynamodb"), "skewgate")  # doctest: +SKIP
    """

    def __init__(
        self,
        client: Any,
        table_name: str,
        retention_seconds: int = 30 * 86_400,
        *,
        call_budget_s: float = CALL_BUDGET_S,
        index_traces: bool = True,
    ) -> None:
        self.client = client
        self.table = table_name
        self.retention_seconds = retention_seconds
        self.call_budget_s = call_budget_s
        self.index_traces = index_traces  # write TRACE# items (TRACE_INDEX)
        self._writer_pool: Any = None

    # --- error mapping -------------------------------------------------------------------

    def _call(self, operation: str, deadline: float | None = None, **kwargs: Any) -> Any:
        if deadline is not None and time.monotonic() + self.call_budget_s > deadline:
            raise StorageUnavailable("no time left to store the batch before the deadline", 2)
        try:
            return getattr(self.client, operation)(**kwargs)
        except Exception as exc:
            response = service_error(exc)
            if response is None:
                if unreachable(exc):  # refused, reset, timed out, DNS: storage is down
                    raise StorageUnavailable(f"DynamoDB {operation}: {exc}", 5) from exc
                raise
            code = response.get("Error", {}).get("Code", "")
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

    def _ttl(self, received_at_ms: float) -> int:
        return int(received_at_ms / 1000) + self.retention_seconds

    # --- ingest --------------------------------------------------------------------------

    def get_batch(self, batch_id: str) -> BatchRecord | None:
        return self.get_batch_and_states(batch_id, [])[0]

    def get_states(self, session_ids: Iterable[str]) -> dict[str, SessionState]:
        """Current state and version of each session that has one (consistent reads)."""
        return self.get_batch_and_states(None, session_ids)[1]

    def get_batch_and_states(
        self, batch_id: str | None, session_ids: Iterable[str], deadline: float | None = None
    ) -> tuple[BatchRecord | None, dict[str, SessionState]]:
        """The batch's marker, if committed, and the sessions' states: one round trip."""
        keys = [state_key(sid) for sid in dict.fromkeys(session_ids)]
        if batch_id is not None:
            keys.insert(0, batch_key(batch_id))
        record: BatchRecord | None = None
        states: dict[str, SessionState] = {}
        for start in range(0, len(keys), 100):
            pending: dict[str, Any] = {
                self.table: {"Keys": keys[start : start + 100], "ConsistentRead": True}
            }
            while pending:
                response = self._call("batch_get_item", deadline, RequestItems=pending)
                for item in response.get("Responses", {}).get(self.table, []):
                    if item["SK"]["S"] == "BATCH":
                        record = from_item(BatchRecord, item)
                    else:
                        state = from_item(SessionState, item)
                        states[state.session_id] = state
                pending = response.get("UnprocessedKeys") or {}
        return record, states

    def write_batch(
        self, plan: BatchPlan, deadline: float | None = None, *, body_written: bool = False
    ) -> None:
        """The body chunks and trace index items (unless ``index_traces`` is off), then the
        commit transaction.

        ``body_written``: this attempt's chunks are already there (a re-plan that kept them).
        """
        ttl = self._ttl(plan.received_at_ms)
        items = trace_index_items(plan.batch_id, plan.trace_ids, ttl) if self.index_traces else []
        if not body_written:
            items = body_items(plan.batch_id, plan.attempt, plan.chunks, ttl) + items
        self.put_items(items, deadline)
        try:
            self.commit(plan, deadline)
        except AlreadyCommitted:
            self._forget_body(plan, deadline)
            raise

    def put_items(self, items: Sequence[dict[str, Any]], deadline: float | None = None) -> None:
        """BatchWriteItem in 25s, resubmitting unprocessed items until all are written.

        Several calls go out in parallel (boto3 clients are thread-safe); none starts that
        could not finish before ``deadline`` (monotonic s).
        """
        chunks = [items[i : i + 25] for i in range(0, len(items), 25)]
        if not chunks:
            return
        futures = [self._writers().submit(self._write_chunk, c, deadline) for c in chunks[1:]]
        error: BaseException | None = None
        try:
            self._write_chunk(chunks[0], deadline)  # this thread writes one chunk itself
        except BaseException as exc:
            error = exc
            for future in futures:
                future.cancel()  # the batch will not commit: start no more of it
        for future in futures:  # none left running behind the answer
            if future.cancelled():
                continue
            try:
                future.result()
            except BaseException as exc:
                error = error or exc
        if error is not None:
            raise error  # the first failure; the batch is not committed

    def _writers(self) -> Any:
        """The writer threads, started once per container (a thread per request costs CPU)."""
        if self._writer_pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._writer_pool = ThreadPoolExecutor(
                max_workers=_WRITE_WORKERS - 1, thread_name_prefix="skewgate-writer"
            )
        return self._writer_pool

    def _write_chunk(self, chunk: Sequence[dict[str, Any]], deadline: float | None) -> None:
        pending = [{"PutRequest": {"Item": it}} for it in chunk]
        delay = 0.02
        attempts = 0
        while pending:
            response = self._call("batch_write_item", deadline, RequestItems={self.table: pending})
            pending = response.get("UnprocessedItems", {}).get(self.table, [])
            if pending:
                attempts += 1
                if attempts > 6:
                    raise StorageUnavailable("DynamoDB kept items unprocessed", 2, True)
                time.sleep(delay)
                delay *= 2

    def commit(self, plan: BatchPlan, deadline: float | None = None) -> None:
        """The marker, and per session its sample, day counters and next state, atomically.

        A session state whose version moved raises ``StateConflict``, an existing marker
        ``AlreadyCommitted``.
        """
        ttl = self._ttl(plan.received_at_ms)
        expires = {"N": str(ttl)}
        actions: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": batch_item(plan.record, ttl=ttl),
                    "ConditionExpression": "attribute_not_exists(PK)",
                }
            }
        ]
        for session in plan.sessions:
            sample, state = session.sample, session.next_state
            if sample is None or state is None:
                continue
            actions.append(
                {"Put": {"TableName": self.table,
                         "Item": sample_item(sample, self.retention_seconds)}}
            )
            actions.append(
                {"Update": day_update(self.table, sample, state.day_max_proven_abs_ms,
                                      self.retention_seconds)}
            )
            actions.append({"Put": state_put(self.table, state, session.basis, expires)})
        try:
            self._call("transact_write_items", deadline, TransactItems=actions)
        except Exception as exc:
            response = service_error(exc)
            if response is None:
                raise
            reasons = response.get("CancellationReasons") or []
            codes = [r.get("Code", "None") for r in reasons]
            if codes and codes[0] == "ConditionalCheckFailed":
                raise AlreadyCommitted(plan.batch_id) from exc
            if "ConditionalCheckFailed" in codes or "TransactionConflict" in codes:
                raise StateConflict(plan.batch_id) from exc
            if any(c in ("ThrottlingError", "ProvisionedThroughputExceeded") for c in codes):
                raise StorageUnavailable("DynamoDB throttled the commit", 1, True) from exc
            raise

    def _forget_body(self, plan: BatchPlan, deadline: float | None) -> None:
        """Best effort: the chunks of an attempt that lost its race (TTL removes them anyway)."""
        pk, prefix = body_prefix(plan.batch_id, plan.attempt)
        requests = [
            {"DeleteRequest": {"Key": {"PK": pk, "SK": {"S": f"{prefix}{i:04d}"}}}}
            for i in range(len(plan.chunks))
        ]
        try:
            for start in range(0, len(requests), 25):
                self._call(
                    "batch_write_item", deadline,
                    RequestItems={self.table: requests[start : start + 25]},
                )
        except Exception:
            return

    # --- bodies --------------------------------------------------------------------------

    def batch_body(self, record: BatchRecord) -> tuple[bytes, bytes | None]:
        """A committed batch's body as received and its adjusted copy (``None``: not shifted)."""
        if record.body is None:
            raise ValueError(f"batch {record.batch_id} has no stored body (format 1)")
        pk, prefix = body_prefix(record.batch_id, record.attempt)
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "PK = :pk AND begins_with(SK, :prefix)",
            "ExpressionAttributeValues": {":pk": pk, ":prefix": {"S": prefix}},
            "ConsistentRead": True,
        }
        parts: list[bytes] = []
        while True:
            response = self._call("query", **kwargs)
            parts.extend(bytes(item["b"]["B"]) for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        if len(parts) != record.chunks:
            raise ValueError(f"batch {record.batch_id}: {len(parts)} of {record.chunks} chunks")
        return unpack(b"".join(parts), record.body)

    def get_batches(self, batch_ids: Iterable[str]) -> dict[str, BatchRecord]:
        """The committed markers among ``batch_ids`` (consistent reads)."""
        keys = [batch_key(bid) for bid in dict.fromkeys(batch_ids)]
        found: dict[str, BatchRecord] = {}
        for start in range(0, len(keys), 100):
            pending: dict[str, Any] = {
                self.table: {"Keys": keys[start : start + 100], "ConsistentRead": True}
            }
            while pending:
                response = self._call("batch_get_item", RequestItems=pending)
                for item in response.get("Responses", {}).get(self.table, []):
                    record = from_item(BatchRecord, item)
                    found[record.batch_id] = record
                pending = response.get("UnprocessedKeys") or {}
        return found

    # --- reads ---------------------------------------------------------------------------

    def _samples_query(self, session_id: str) -> dict[str, Any]:
        """A session's samples in receipt order, read consistently (a 200 is readable)."""
        return {
            "TableName": self.table,
            "IndexName": SAMPLE_INDEX,
            "KeyConditionExpression": "PK = :pk",
            "ExpressionAttributeValues": {":pk": {"S": f"SESSION#{session_id}"}},
            "ConsistentRead": True,
        }

    def session_samples(
        self, session_id: str, *, limit: int | None = None, cursor: dict[str, Any] | None = None
    ) -> tuple[list[SkewSample], dict[str, Any] | None]:
        """Samples in receipt order (consistent: a 200 is readable at once)."""
        samples: list[SkewSample] = []
        kwargs = self._samples_query(session_id)
        if cursor:
            kwargs["ExclusiveStartKey"] = cursor
        while True:
            if limit is not None:
                kwargs["Limit"] = limit - len(samples)
            response = self._call("query", **kwargs)
            samples.extend(sample_from_item(item) for item in response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            if last is None or (limit is not None and len(samples) >= limit):
                return samples, last
            kwargs["ExclusiveStartKey"] = last

    def session_batches_with(self, session_id: str, trace_id: str) -> set[str]:
        """The batches of a session whose sample lists ``trace_id``, or may hold it (a sample
        lists its first traces and counts the rest)."""
        found: set[str] = set()
        kwargs = self._samples_query(session_id)
        kwargs["ProjectionExpression"] = "batch_id, trace_ids, more_traces"
        while True:
            response = self._call("query", **kwargs)
            for item in response.get("Items", []):
                counted = int(item.get("more_traces", {}).get("N", "0"))
                if counted or trace_id in sample_trace_ids(item.get("trace_ids")):
                    found.add(item["batch_id"]["S"])
            last = response.get("LastEvaluatedKey")
            if last is None:
                return found
            kwargs["ExclusiveStartKey"] = last

    def day_sessions(
        self,
        day: str,
        *,
        min_abs_offset_ms: float | None = None,
        limit: int | None = None,
        cursor: dict[str, Any] | None = None,
    ) -> tuple[list[SessionDay], dict[str, Any] | None]:
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
        sessions: list[SessionDay] = []
        while True:
            if limit is not None:
                kwargs["Limit"] = limit - len(sessions)
            response = self._call("query", **kwargs)
            sessions.extend(session_day_from_item(item) for item in response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            if last is None or (limit is not None and len(sessions) >= limit):
                return sessions, last
            kwargs["ExclusiveStartKey"] = last

    def session_exists(self, session_id: str) -> bool:
        return bool(self.get_states([session_id]))

    def trace_items(self, trace_id: str) -> list[dict[str, Any]]:
        """Everything under ``TRACE#<trace>``: format 2 index items and format 1 span items."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "PK = :pk",
            "ExpressionAttributeValues": {":pk": {"S": f"TRACE#{trace_id}"}},
            "ConsistentRead": True,
        }
        while True:
            response = self._call("query", **kwargs)
            items.extend(response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return items
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
