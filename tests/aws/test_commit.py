"""The commit is atomic and bounded in time, against DynamoDB Local.

* a batch answered 503 leaves nothing readable and nothing on the stream to forward;
* racing attempts of one batch (a retry with a fresh ``X-Sent-At`` while the first is still
  in flight) store one body and one offset, whichever wins;
* a stalled DynamoDB (the process stopped with SIGSTOP) gets a 503 with ``Retry-After`` well
  inside the function's timeout, not API Gateway's.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from support import FIXTURES, REPO

from skewgate.aws.client import dynamodb_client
from skewgate.aws.codec import from_item
from skewgate.aws.dynamo import DynamoDBError
from skewgate.aws.forward import build_forward_app
from skewgate.aws.forward.records import to_lambda_record
from skewgate.aws.ingest import IngestApp
from skewgate.aws.read import ReadApp
from skewgate.aws.settings import IngestSettings
from skewgate.aws.store import Store
from skewgate.clock.records import BatchRecord
from skewgate_tools.local import dynamodb as ddb
from skewgate_tools.local.server import build_event

SESSION = "6f1c2d9a-browser-session"  # fixtures 1-4: a browser 800 ms ahead


def fixture_event(n: int, **headers: str) -> dict[str, Any]:
    data = json.loads((FIXTURES / f"export-{n}.json").read_text())
    all_headers = {"content-type": "application/json", **data["headers"], **headers}
    return build_event(
        "POST", "/v1/traces", list(all_headers.items()), json.dumps(data["body"]).encode(),
        data["received_at_ms"],
    )


def trace_id_of(n: int) -> str:
    data = json.loads((FIXTURES / f"export-{n}.json").read_text())
    return str(data["body"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"])


def get(read: ReadApp, path: str) -> tuple[int, Any]:
    response = read.handle(build_event("GET", path, [], b"", 0))
    return response["statusCode"], json.loads(response["body"])


class FailingCommits:
    """A real DynamoDB client whose commit transaction fails as DynamoDB fails under load."""

    def __init__(self, client: Any, error: str) -> None:
        self._client = client
        self._error = error
        self.transactions = 0

    def transact_write_items(self, **kwargs: Any) -> Any:
        self.transactions += 1
        if self._error == "lean":  # what the functions' own caller raises
            raise DynamoDBError("TransactWriteItems", 500, {
                "__type": "com.amazonaws.dynamodb.v20120810#InternalServerError",
                "message": "injected"})
        raise ClientError(  # what a boto3 client raises
            {"Error": {"Code": "InternalServerError", "Message": "injected"}},
            "TransactWriteItems",
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def stream_records(ddb_client: Any, table: str) -> list[dict[str, Any]]:
    streams = boto3.client("dynamodbstreams", endpoint_url=os.environ["AWS_ENDPOINT_URL_DYNAMODB"])
    arn = ddb_client.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    out = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            response = streams.get_records(ShardIterator=iterator, Limit=1000)
            out.extend(to_lambda_record(r, arn, "us-east-1") for r in response["Records"])
            if not response["Records"]:
                break
            iterator = response.get("NextShardIterator")
    return out


class Recorder:
    """A transport that records what the forwarder would send."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def post(self, url: str, body: bytes, headers: Any, timeout: float) -> Any:
        from skewgate.aws.forward.send import HttpResult

        self.bodies.append(body)
        return HttpResult(200, {}, b"")


@pytest.mark.parametrize("error", ["lean", "boto3"])
def test_a_503_batch_leaves_nothing_readable_or_forwarded(
    ddb_client: Any, table_name: str, error: str
) -> None:
    settings = IngestSettings.from_env({"TABLE_NAME": table_name})
    failing = FailingCommits(ddb_client, error)
    ingest = IngestApp(settings, Store(failing, table_name))
    response = ingest.handle(fixture_event(1), remaining_ms=lambda: 15_000)
    assert response["statusCode"] == 503 and int(response["headers"]["retry-after"]) >= 1
    assert failing.transactions == 1
    read = ReadApp(Store(ddb_client, table_name))
    # Its body and trace index were written before the commit, but lead nowhere.
    assert get(read, f"/v1/traces/{trace_id_of(1)}")[0] == 404
    assert get(read, f"/v1/sessions/{SESSION}/skew")[0] == 404
    records = stream_records(ddb_client, table_name)
    assert records, "the body and index items are on the stream"
    recorder = Recorder()
    app = build_forward_app(
        {"FORWARD_TARGET": "otlp", "FORWARD_ENDPOINT": "http://127.0.0.1:9/v1/traces",
         "TABLE_NAME": table_name},
        transport=recorder,
    )
    assert app.handle({"Records": records}) == {"batchItemFailures": []}
    assert recorder.bodies == []  # nothing of it is forwarded
    # The exporter's retry commits it, and only then is it read and forwarded.
    retry = IngestApp(settings, Store(ddb_client, table_name))
    assert retry.handle(fixture_event(1), remaining_ms=lambda: 15_000)["statusCode"] == 200
    assert get(read, f"/v1/traces/{trace_id_of(1)}")[0] == 200
    app.handle({"Records": stream_records(ddb_client, table_name)})
    assert len(recorder.bodies) == 1


def markers(ddb_client: Any, table: str) -> list[BatchRecord]:
    items = ddb_client.scan(
        TableName=table, FilterExpression="#t = :b", ExpressionAttributeNames={"#t": "type"},
        ExpressionAttributeValues={":b": {"S": "batch"}}, ConsistentRead=True,
    )["Items"]
    return [from_item(BatchRecord, item) for item in items]


@pytest.mark.parametrize("trial", range(6))
def test_racing_attempts_store_one_body_and_one_offset(
    ddb_client: Any, table_name: str, trial: int
) -> None:
    settings = IngestSettings.from_env({"TABLE_NAME": table_name})
    store = Store(ddb_client, table_name)
    ingest = IngestApp(settings, store)
    first = fixture_event(1)
    retry = fixture_event(1)  # the same spans: the same batch
    # Sent 3 s later by the same clock: another send time, so another offset would result.
    retry["headers"]["x-sent-at"] = str(int(first["headers"]["x-sent-at"]) + 3_000)
    retry["requestContext"]["timeEpoch"] += 3_000 + 7 * trial
    results: list[dict[str, Any]] = []
    barrier = threading.Barrier(2)

    def send(event: dict[str, Any]) -> None:
        barrier.wait()
        results.append(ingest.handle(event, remaining_ms=lambda: 15_000))

    threads = [threading.Thread(target=send, args=(e,)) for e in (first, retry)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r["statusCode"] for r in results] == [200, 200]
    (record,) = markers(ddb_client, table_name)
    (shift,) = record.sessions
    read = ReadApp(store)
    status, doc = get(read, f"/v1/sessions/{SESSION}/skew")
    assert status == 200 and len(doc["samples"]) == 1
    assert doc["samples"][0]["offset_ms"] == shift.offset_ms
    status, trace = get(read, f"/v1/traces/{trace_id_of(1)}")
    assert status == 200
    assert {s["offset_ms"] for s in trace["spans"]} == {shift.offset_ms}
    assert len({s["span_id"] for s in trace["spans"]}) == len(trace["spans"])
    # Only the committed attempt's body remains (the loser's was removed, or never written).
    chunks = ddb_client.query(
        TableName=table_name, KeyConditionExpression="PK = :pk AND begins_with(SK, :b)",
        ExpressionAttributeValues={":pk": {"S": f"BATCH#{record.batch_id}"},
                                   ":b": {"S": "BODY#"}},
        ConsistentRead=True,
    )["Items"]
    assert {c["SK"]["S"].split("#")[1] for c in chunks} == {record.attempt}


def test_a_stalled_dynamodb_is_a_503_well_before_the_deadline(tmp_path: Path) -> None:
    port = ddb.free_port()
    process = ddb.start_dynamodb_local(port, repo_root=REPO, log_path=tmp_path / "ddb.log")
    try:
        endpoint = ddb.endpoint_url(port)
        client = dynamodb_client(endpoint_url=endpoint)  # what the function runs
        ddb.ensure_table(client, "stalled", REPO / "template.yaml")
        settings = IngestSettings.from_env({"TABLE_NAME": "stalled"})
        ingest = IngestApp(settings, Store(client, "stalled"))
        assert ingest.handle(fixture_event(5), remaining_ms=lambda: 20_000)["statusCode"] == 200
        os.kill(process.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            # The function's timeout is 20 s (template.yaml); API Gateway gives up at 30 s.
            response = ingest.handle(fixture_event(1), remaining_ms=lambda: 20_000)
            elapsed = time.monotonic() - started
        finally:
            os.kill(process.pid, signal.SIGCONT)
        assert response["statusCode"] == 503
        assert int(response["headers"]["retry-after"]) >= 1
        body = json.loads(response["body"])
        assert body["code"] == 14 and "retry" in body["message"]
        assert elapsed < 8.0, f"the 503 took {elapsed:.1f} s"
        # Once DynamoDB answers again, the exporter's retry is stored.
        assert ingest.handle(fixture_event(1), remaining_ms=lambda: 20_000)["statusCode"] == 200
    finally:
        ddb.stop_dynamodb_local(process)
