"""All DynamoDB I/O of the gateway: reads, the writes that make a batch durable, and errors.

Item shapes and keys are :mod:`skewgate.aws.codec`'s; this module only talks to DynamoDB.
The batch marker, the samples and the state updates go in one transaction, written after the
span chunks: the marker is the commit point, so a 200 is only sent once everything is stored,
and a retry of a committed batch writes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any, Final

from skewgate.aws.codec import (
    DAY_INDEX,
    SAMPLE_INDEX,
    batch_item,
    batch_key,
    day_update,
    from_item,
    sample_item,
    session_day_from_item,
    span_items,
    state_key,
    state_put,
)
from skewgate.clock.plan import BatchPlan
from skewgate.clock.records import BatchRecord, SessionDay, SessionState, SkewSample

__all__ = [
    "AlreadyCommitted",
    "StateConflict",
    "StorageUnavailable",
    "Store",
]

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
    """The batch marker exists: this batch was stored before."""


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
        return {"N": str(int(received_at_ms / 1000) + self.retention_seconds)}

    # --- ingest --------------------------------------------------------------------------

    def get_batch(self, batch_id: str) -> BatchRecord | None:
        item = self._call(
            "get_item", TableName=self.table, Key=batch_key(batch_id), ConsistentRead=True
        ).get("Item")
        return None if item is None else from_item(BatchRecord, item)

    def get_states(self, session_ids: Iterable[str]) -> dict[str, SessionState]:
        """Current state and version of each session that has one (consistent reads)."""
        keys = [state_key(sid) for sid in set(session_ids)]
        found: dict[str, SessionState] = {}
        for start in range(0, len(keys), 100):
            pending: dict[str, Any] = {
                self.table: {"Keys": keys[start : start + 100], "ConsistentRead": True}
            }
            while pending:
                response = self._call("batch_get_item", RequestItems=pending)
                for item in response.get("Responses", {}).get(self.table, []):
                    state = from_item(SessionState, item)
                    found[state.session_id] = state
                pending = response.get("UnprocessedKeys") or {}
        return found

    def write_batch(self, plan: BatchPlan, deadline: float | None = None) -> None:
        """Span chunks first, then the commit transaction (see ``commit``)."""
        items: list[dict[str, Any]] = []
        for session in plan.sessions:
            items.extend(
                span_items(
                    plan.batch_id, session.session_id, plan.received_at_ms, session.estimate,
                    session.chunks, self.retention_seconds,
                )
            )
        self.put_items(items, deadline)
        self.commit(plan)

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

    def commit(self, plan: BatchPlan) -> None:
        """Write samples, state updates and the batch marker atomically.

        A session state whose version moved raises ``StateConflict``, an existing marker
        ``AlreadyCommitted``.
        """
        from botocore.exceptions import ClientError

        ttl = self._ttl(plan.received_at_ms)
        per_session: list[list[dict[str, Any]]] = []
        for session in plan.sessions:
            sample, state = session.sample, session.next_state
            if sample is None or state is None:
                continue
            per_session.append(
                [
                    {"Put": {"TableName": self.table,
                             "Item": sample_item(sample, self.retention_seconds)}},
                    {"Update": day_update(self.table, sample, state.day_max_proven_abs_ms,
                                          self.retention_seconds)},
                    {"Put": state_put(self.table, state, session.basis, ttl)},
                ]
            )
        marker = {
            "Put": {
                "TableName": self.table,
                "Item": batch_item(plan.record, ttl=int(ttl["N"])),
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
                    raise AlreadyCommitted(plan.batch_id) from exc
                if "ConditionalCheckFailed" in codes:
                    raise StateConflict(plan.batch_id) from exc
                if any(c in ("ThrottlingError", "ProvisionedThroughputExceeded") for c in codes):
                    raise StorageUnavailable("DynamoDB throttled the commit", 1, True) from exc
                if "TransactionConflict" in codes:
                    raise StateConflict(plan.batch_id) from exc
                raise

    # --- reads ---------------------------------------------------------------------------

    def session_samples(
        self, session_id: str, *, limit: int | None = None, cursor: dict[str, Any] | None = None
    ) -> tuple[list[SkewSample], dict[str, Any] | None]:
        """Samples in receipt order (consistent: a 200 is readable at once)."""
        samples: list[SkewSample] = []
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
            samples.extend(from_item(SkewSample, item) for item in response.get("Items", []))
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
