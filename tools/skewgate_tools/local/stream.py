"""The local runner's event source mapping: DynamoDB Local's stream → the forward handler.

It uses the real DynamoDB Streams API (``dynamodbstreams`` at the same endpoint as the table)
and behaves like Lambda's mapping, so the forward handler sees what it would see deployed:

- records come as Lambda delivers them (``{"Records": [{"eventID", "eventName",
  "eventSource": "aws:dynamodb", "dynamodb": {"Keys", "NewImage", "SequenceNumber", ...},
  "eventSourceARN"}]}``, binary values base64-encoded), at most ``batch_size`` per call, and
  only those that match :data:`skewgate.forward.FILTER_PATTERN` (the template's FilterCriteria);
- per shard, one batch at a time, in order; a batch's ``batchItemFailures`` make it retry from
  the lowest failed sequence number (with backoff), an exception retries the whole batch; after
  ``max_retries`` retries the batch's description goes to the dead-letter file (Lambda's
  ``OnFailure`` destination) and the shard moves on;
- shards are followed through their lineage: shards open at start are read from ``LATEST``
  (the iterators are taken before :func:`start_stream_forwarder` returns, i.e. before the local
  API serves its first request, so nothing written after ``make run`` starts is missed, and an
  existing table's old records are not re-sent); shards that appear later are read from
  ``TRIM_HORIZON``, a child only after its parent is drained.

Errors (the database restarting, throttling, a handler bug) are logged and retried; the poller
only stops when its stop event is set.

Example:
    >>> stop = start_stream_forwarder()  # doctest: +SKIP
    >>> stop.set()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skewgate.aws.forward import (
    FILTER_PATTERN,
    build_forward_app,
    matches_filter,
    to_lambda_record,
)

__all__ = ["LocalContext", "StreamPoller", "start_stream_forwarder"]

logger = logging.getLogger("skewgate.local.stream")

Handler = Callable[[dict[str, Any], Any], Mapping[str, Any]]


class LocalContext:
    """The parts of Lambda's context object the handlers use, with a real time budget."""

    def __init__(self, timeout_s: float = 60.0, function_name: str = "skewgate-forward") -> None:
        self._deadline = time.monotonic() + timeout_s
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:local:000000000000:function:{function_name}"
        self.memory_limit_in_mb = 512
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass(slots=True)
class _Shard:
    shard_id: str
    parent_id: str | None
    iterator: str | None = None
    started: bool = False
    finished: bool = False
    pending: list[dict[str, Any]] = field(default_factory=list)
    last_sequence: str | None = None  # the last record read (to resume an expired iterator)
    attempts: int = 0
    retry_at: float = 0.0


class StreamPoller:
    """Reads a table's stream and feeds the handler like Lambda's event source mapping."""

    def __init__(
        self,
        handler: Handler,
        table_name: str,
        *,
        dynamodb: Any,
        streams: Any,
        region: str = "us-east-1",
        batch_size: int = 100,
        poll_interval_s: float = 1.0,
        max_retries: int = 10,
        function_timeout_s: float = 60.0,
        on_failure: Callable[[dict[str, Any]], Any] | None = None,
        stop: threading.Event | None = None,
        start_at_latest: bool = True,
    ) -> None:
        self.handler = handler
        self.table_name = table_name
        self.dynamodb = dynamodb
        self.streams = streams
        self.region = region
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.max_retries = max_retries
        self.function_timeout_s = function_timeout_s
        self.on_failure = on_failure
        self.stop = stop if stop is not None else threading.Event()
        self.start_at_latest = start_at_latest
        self.stream_arn: str | None = None
        self.shards: dict[str, _Shard] = {}
        self._last_describe = 0.0
        self.invocations = 0

    # --- shards ----------------------------------------------------------------------------

    def _describe(self) -> list[dict[str, Any]]:
        assert self.stream_arn is not None
        shards: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn}
        while True:
            description = self.streams.describe_stream(**kwargs)["StreamDescription"]
            shards.extend(description.get("Shards", []))
            last = description.get("LastEvaluatedShardId")
            if not last:
                return shards
            kwargs["ExclusiveStartShardId"] = last

    def open(self) -> None:
        """Find the stream and take iterators for its open shards (``LATEST`` by default)."""
        table = self.dynamodb.describe_table(TableName=self.table_name)["Table"]
        arn = table.get("LatestStreamArn")
        if not arn:
            raise RuntimeError(f"table {self.table_name} has no stream (StreamSpecification)")
        self.stream_arn = arn
        for shard in self._describe():
            sid = shard["ShardId"]
            closed = "EndingSequenceNumber" in shard.get("SequenceNumberRange", {})
            state = _Shard(sid, shard.get("ParentShardId"))
            if closed and self.start_at_latest:
                state.finished = True  # history from before we started
            elif self.start_at_latest:
                state.iterator = self.streams.get_shard_iterator(
                    StreamArn=arn, ShardId=sid, ShardIteratorType="LATEST"
                )["ShardIterator"]
                state.started = True
            self.shards[sid] = state
        self._last_describe = time.monotonic()

    def _refresh(self) -> None:
        """Discover new shards (lineage) and start the ones whose parent is drained."""
        assert self.stream_arn is not None
        now = time.monotonic()
        if now - self._last_describe >= 10 * self.poll_interval_s or not any(
            s.iterator for s in self.shards.values()
        ):
            self._last_describe = now
            for shard in self._describe():
                sid = shard["ShardId"]
                if sid not in self.shards:
                    self.shards[sid] = _Shard(sid, shard.get("ParentShardId"))
        for state in self.shards.values():
            if state.started or state.finished:
                continue
            parent = self.shards.get(state.parent_id) if state.parent_id else None
            if parent is not None and not parent.finished:
                continue
            state.iterator = self.streams.get_shard_iterator(
                StreamArn=self.stream_arn, ShardId=state.shard_id,
                ShardIteratorType="TRIM_HORIZON",
            )["ShardIterator"]
            state.started = True

    # --- records ---------------------------------------------------------------------------

    def _fetch(self, state: _Shard) -> bool:
        """Read the next records of a shard into ``pending``; True if any record was read."""
        if state.iterator is None:
            return False
        try:
            response = self.streams.get_records(ShardIterator=state.iterator, Limit=self.batch_size)
        except Exception as exc:
            if "Expired" not in type(exc).__name__:
                raise
            logger.warning("stream: iterator of %s expired, resuming", state.shard_id)
            assert self.stream_arn is not None
            where: dict[str, str] = {"ShardIteratorType": "TRIM_HORIZON"}
            if state.last_sequence:
                where = {
                    "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                    "SequenceNumber": state.last_sequence,
                }
            state.iterator = self.streams.get_shard_iterator(
                StreamArn=self.stream_arn, ShardId=state.shard_id, **where
            )["ShardIterator"]
            return True
        records = response.get("Records", [])
        state.iterator = response.get("NextShardIterator")
        if records:
            state.last_sequence = records[-1]["dynamodb"]["SequenceNumber"]
        if state.iterator is None:
            state.finished = True
        assert self.stream_arn is not None
        state.pending = [
            rec
            for rec in (to_lambda_record(r, self.stream_arn, self.region) for r in records)
            if matches_filter(rec, FILTER_PATTERN)
        ]
        return bool(records)

    def _invoke(self, state: _Shard) -> None:
        batch = state.pending
        self.invocations += 1
        try:
            response = self.handler({"Records": batch}, LocalContext(self.function_timeout_s))
            failures = [f["itemIdentifier"] for f in response.get("batchItemFailures", [])]
            reason = "batchItemFailures"
        except Exception as exc:
            logger.exception("stream: forward handler failed")
            failures = [batch[0]["dynamodb"]["SequenceNumber"]]
            reason = f"{type(exc).__name__}: {exc}"
        if not failures:
            state.pending, state.attempts, state.retry_at = [], 0, 0.0
            return
        sequence = [r["dynamodb"]["SequenceNumber"] for r in batch]
        positions = [sequence.index(f) for f in failures if f in sequence]
        first = min(positions) if positions else 0
        state.pending = batch[first:]
        state.attempts += 1
        if state.attempts > self.max_retries:
            self._give_up(state, reason)
            return
        state.retry_at = time.monotonic() + min(0.5 * 2 ** (state.attempts - 1), 10.0)
        logger.info(
            "stream: %d record(s) of %s to retry (attempt %d of %d)",
            len(state.pending), state.shard_id, state.attempts, self.max_retries,
        )

    def _give_up(self, state: _Shard, reason: str) -> None:
        """Like Lambda's OnFailure destination: describe the batch, then move on."""
        records = state.pending
        message = {
            "source": "skewgate.local.stream",
            "requestContext": {"condition": "RetryAttemptsExhausted", "reason": reason},
            "DDBStreamBatchInfo": {
                "shardId": state.shard_id,
                "startSequenceNumber": records[0]["dynamodb"]["SequenceNumber"],
                "endSequenceNumber": records[-1]["dynamodb"]["SequenceNumber"],
                "batchSize": len(records),
                "streamArn": self.stream_arn,
            },
            "keys": [
                {k: v.get("S") for k, v in r["dynamodb"].get("Keys", {}).items()} for r in records
            ],
        }
        logger.error("stream: giving up on %d record(s): %s", len(records), message)
        if self.on_failure is not None:
            try:
                self.on_failure(message)
            except Exception:
                logger.exception("stream: cannot record the failed batch")
        state.pending, state.attempts, state.retry_at = [], 0, 0.0

    def poll_once(self) -> int:
        """One pass over the shards; returns the number of records handed to the handler."""
        if self.stream_arn is None:
            self.open()
        self._refresh()
        handed = 0
        for state in list(self.shards.values()):
            if self.stop.is_set():
                break
            # Skip pages whose records the filter drops, without waiting for the next poll.
            while not state.pending and not state.finished and state.started:
                if not self._fetch(state) or self.stop.is_set():
                    break
            if state.pending and time.monotonic() >= state.retry_at:
                handed += len(state.pending)
                self._invoke(state)
        return handed

    def run(self) -> None:
        """Poll until the stop event is set; never raises."""
        last_error, last_logged = "", 0.0
        while not self.stop.is_set():
            try:
                self.poll_once()
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                if error != last_error or time.monotonic() - last_logged > 30:
                    logger.warning("stream: %s (retrying)", error)
                    last_error, last_logged = error, time.monotonic()
                if self.stream_arn is not None and "ResourceNotFound" in type(exc).__name__:
                    self.stream_arn = None  # table re-created: find its new stream
                    self.shards.clear()
            self.stop.wait(self.poll_interval_s)


def start_stream_forwarder(
    table_name: str | None = None,
    *,
    endpoint_url: str | None = None,
    poll_interval_s: float = 1.0,
    environ: Mapping[str, str] | None = None,
    announce: Callable[[str], Any] = print,
) -> threading.Event:
    """Start the poller in a daemon thread; set the returned event to stop it.

    The shards' iterators are taken before this returns. With ``FORWARD_TARGET=none`` nothing
    is started (the event is returned all the same). The local dead-letter file is
    ``FORWARD_DLQ_FILE`` (default ``<tmp>/skewgate-forward-dlq.jsonl``): permanent failures and
    batches whose retries ran out are appended to it as JSON lines.
    """
    from skewgate.aws.client import LOCAL_REGION, aws_client

    env = dict(os.environ if environ is None else environ)
    stop = threading.Event()
    table = table_name or env["TABLE_NAME"]
    endpoint = endpoint_url or env.get("AWS_ENDPOINT_URL_DYNAMODB_STREAMS")
    table_endpoint = env.get("AWS_ENDPOINT_URL_DYNAMODB")
    # DynamoDB Local serves both APIs on one port; real AWS has a separate streams endpoint.
    if endpoint is None and table_endpoint and "amazonaws.com" not in table_endpoint:
        endpoint = table_endpoint
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    # The local dead-letter file, unless an SQS queue is configured.
    if not env.get("FORWARD_DLQ_URL") and not env.get("FORWARD_DLQ_FILE"):
        env["FORWARD_DLQ_FILE"] = str(Path(tempfile.gettempdir()) / "skewgate-forward-dlq.jsonl")
    app = build_forward_app(env)
    if app.settings.forward_target == "none":
        announce(f"Forwarding       {app.settings.describe()}")
        return stop
    dead_letters = app.dead_letters
    # The loopback rule of every client (dummy credentials for DynamoDB Local only); a missing
    # credential or region for real AWS raises MissingAwsConfig, naming it.
    dynamodb = aws_client("dynamodb", endpoint_url=table_endpoint, region=region)
    streams = aws_client("dynamodbstreams", endpoint_url=endpoint, region=region)
    poller = StreamPoller(
        app.handle,
        table,
        dynamodb=dynamodb,
        streams=streams,
        region=region or dynamodb.meta.region_name or LOCAL_REGION,
        poll_interval_s=poll_interval_s,
        on_failure=(lambda m: dead_letters.send([m])) if dead_letters is not None else None,
        stop=stop,
    )
    try:
        poller.open()
    except Exception as exc:  # keep the runner up: the thread retries
        logger.warning("stream: cannot open the stream yet: %s", exc)
    thread = threading.Thread(target=poller.run, name="skewgate-stream", daemon=True)
    thread.start()
    where = dead_letters.describe() if dead_letters is not None else "none"
    announce(f"Forwarding       {app.settings.describe()}")
    announce(f"Forward DLQ      {where}")
    return stop
