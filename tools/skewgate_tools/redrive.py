"""Redrive dead letters: once the cause is fixed, forward what the DLQ holds again.

The forward DLQ holds two kinds of message, both pointers rather than spans:

- ``"source": "skewgate.forward"`` — a permanent failure written by the function: the item's
  key (``keys``), the reason, the stream sequence number. The spans are re-read from the table
  (they stay there until the item's TTL, ``RETENTION_DAYS``).
- ``"DDBStreamBatchInfo"`` — Lambda's ``OnFailure`` record (or the local poller's): a shard
  and a sequence-number range. The records are re-read from the stream, which keeps them for
  24 hours; after that, use the keys logged with the failures.

Each message's records are fed to the same handler, with no dead-letter sink: a message is
removed (SQS) or dropped from the file only when everything it points at was delivered.

Usage (the ``FORWARD_*`` variables configure the target, as for the function)::

    python -m skewgate_tools.redrive --queue-url https://sqs.../skewgate-ForwardDeadLetterQueue
    python -m skewgate_tools.redrive --file /tmp/skewgate-forward-dlq.jsonl --table skewgate
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from skewgate.aws.forward import ForwardApp, build_forward_app, jsonable, to_lambda_record

__all__ = ["main", "records_for", "redrive_file", "redrive_message", "redrive_queue"]

logger = logging.getLogger("skewgate.forward.redrive")


def records_for(
    message: Mapping[str, Any], *, dynamodb: Any, streams: Any, table_name: str | None
) -> list[dict[str, Any]]:
    """The stream records (Lambda's shape) a dead letter points at."""
    info = message.get("DDBStreamBatchInfo")
    if info is not None:
        arn = info["streamArn"]
        region = arn.split(":")[3] if arn.count(":") >= 4 else ""
        end = int(info["endSequenceNumber"])
        iterator = streams.get_shard_iterator(
            StreamArn=arn,
            ShardId=info["shardId"],
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            SequenceNumber=info["startSequenceNumber"],
        )["ShardIterator"]
        out: list[dict[str, Any]] = []
        while iterator:
            response = streams.get_records(ShardIterator=iterator, Limit=1000)
            records = response.get("Records", [])
            for record in records:
                if int(record["dynamodb"]["SequenceNumber"]) > end:
                    return out
                out.append(to_lambda_record(record, arn, region))
            if not records:
                return out
            iterator = response.get("NextShardIterator")
        return out
    if table_name is None:
        raise ValueError("a skewgate.forward dead letter needs the table name (--table)")
    keys = {k: {"S": v} for k, v in message["keys"].items()}
    item = dynamodb.get_item(TableName=table_name, Key=keys, ConsistentRead=True).get("Item")
    if item is None:
        raise LookupError(f"item {message['keys']} is gone (TTL or deleted)")
    return [
        {
            "eventID": message.get("eventID") or "redrive",
            "eventName": "MODIFY",
            "eventSource": "aws:dynamodb",
            "eventVersion": "1.1",
            "eventSourceARN": message.get("eventSourceARN") or "redrive",
            "dynamodb": {
                "Keys": keys,
                "NewImage": jsonable(item),
                "SequenceNumber": message.get("sequenceNumber") or "0",
                "StreamViewType": "NEW_IMAGE",
            },
        }
    ]


def redrive_message(
    app: ForwardApp, message: Mapping[str, Any], *, dynamodb: Any, streams: Any,
    table_name: str | None,
) -> bool:
    """Forward what one dead letter points at; True when all of it was delivered."""
    try:
        records = records_for(message, dynamodb=dynamodb, streams=streams, table_name=table_name)
    except Exception as exc:
        logger.error("redrive: cannot re-read %s: %s", message.get("keys") or "batch", exc)
        return False
    if not records:
        return True
    response = app.handle({"Records": records})
    return not response["batchItemFailures"]


def _app(environ: Mapping[str, str] | None) -> ForwardApp:
    env = dict(os.environ if environ is None else environ)
    env.pop("FORWARD_DLQ_URL", None)
    env.pop("FORWARD_DLQ_FILE", None)
    # No dead-letter sink: what still fails stays where it is instead of being queued again.
    return build_forward_app(env)


def redrive_file(
    path: Path, app: ForwardApp, *, dynamodb: Any, streams: Any, table_name: str | None
) -> tuple[int, int]:
    """Redrive a local JSON-lines DLQ; keeps the lines that still fail. (delivered, kept)"""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    kept: list[str] = []
    for line in lines:
        ok = redrive_message(
            app, json.loads(line), dynamodb=dynamodb, streams=streams, table_name=table_name
        )
        if not ok:
            kept.append(line)
    path.write_text("".join(f"{line}\n" for line in kept))
    return len(lines) - len(kept), len(kept)


def redrive_queue(
    queue_url: str, app: ForwardApp, *, sqs: Any, dynamodb: Any, streams: Any,
    table_name: str | None,
) -> tuple[int, int]:
    """Redrive an SQS DLQ until it is empty; failing messages become visible again later."""
    delivered = failed = 0
    while True:
        response = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=300
        )
        messages: Sequence[dict[str, Any]] = response.get("Messages", [])
        if not messages:
            return delivered, failed
        for message in messages:
            body = json.loads(message["Body"])
            if redrive_message(
                app, body, dynamodb=dynamodb, streams=streams, table_name=table_name
            ):
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
                delivered += 1
            else:
                failed += 1


def main(argv: list[str] | None = None) -> int:
    from skewgate.aws.client import MissingAwsConfig, aws_client, is_loopback

    parser = argparse.ArgumentParser(prog="skewgate-forward-redrive", description=__doc__)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--queue-url")
    where.add_argument("--file", type=Path)
    parser.add_argument("--table", default=os.environ.get("TABLE_NAME"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(message)s")
    for noisy in ("botocore", "boto3", "urllib3"):  # endpoint chatter per client
        logging.getLogger(noisy).setLevel(logging.WARNING)
    app = _app(None)
    if app.forwarder is None:
        print("FORWARD_TARGET=none: nothing to redrive to", file=sys.stderr)
        return 2
    # The loopback rule of every tool (skewgate.aws.client): DynamoDB Local needs no account.
    try:
        # DynamoDB Local serves its stream on the table's port; AWS has a streams endpoint.
        table_endpoint = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")
        local = table_endpoint if is_loopback(table_endpoint) else None
        if os.environ.get("AWS_ENDPOINT_URL_DYNAMODB_STREAMS"):
            local = None
        clients = {
            "dynamodb": aws_client("dynamodb"),
            "streams": aws_client("dynamodbstreams", endpoint_url=local),
            "table_name": args.table,
        }
        sqs = aws_client("sqs") if args.queue_url else None
    except MissingAwsConfig as exc:
        print(f"skewgate-forward-redrive: {exc}", file=sys.stderr)
        return 2
    if args.file is not None:
        delivered, kept = redrive_file(args.file, app, **clients)
    else:
        delivered, kept = redrive_queue(args.queue_url, app, sqs=sqs, **clients)
    print(f"redriven: {delivered}, still failing: {kept}")
    return 0 if kept == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
