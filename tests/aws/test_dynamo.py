"""The functions' own DynamoDB caller: signed as botocore signs, aimed where botocore aims,
errors as DynamoDB gives them, and no boto3 on the ingest path."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotocoreCredentials
from support import REPO

from skewgate.aws.client import dynamodb_client
from skewgate.aws.dynamo import (
    Credentials,
    DynamoDBError,
    DynamoDBUnreachable,
    LeanDynamoDB,
    default_endpoint,
    sign,
)


@pytest.mark.parametrize("token", [None, "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJH"])
@pytest.mark.parametrize(
    "url", ["https://dynamodb.eu-west-1.amazonaws.com", "http://127.0.0.1:8000",
            "https://dynamodb.eu-west-1.amazonaws.com:443", "http://[::1]:8123/"],
)
@pytest.mark.parametrize("body", [b"", b'{"TableName":"t"}', '{"S":"ünï ☃"}'.encode()])
def test_the_signature_is_botocores(token: str | None, url: str, body: bytes) -> None:
    headers = {"Content-Type": "application/x-amz-json-1.0",
               "X-Amz-Target": "DynamoDB_20120810.TransactWriteItems"}
    request = AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
    SigV4Auth(BotocoreCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                  token), "dynamodb", "eu-west-1").add_auth(request)
    lean = LeanDynamoDB(url, "eu-west-1", lambda: Credentials("x", "y"),
                        connect_timeout=1, read_timeout=1)
    ours = sign(
        host=lean._pool.host_header, headers=headers, body=body,
        credentials=Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token),
        region="eu-west-1", amz_date=request.headers["X-Amz-Date"], path=lean._pool.path,
    )
    assert ours["Authorization"] == request.headers["Authorization"]
    assert ours.get("X-Amz-Security-Token") == request.headers.get("X-Amz-Security-Token")


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1", "ap-southeast-7", "mx-central-1",
                                    "il-central-1", "cn-north-1", "cn-northwest-1",
                                    "us-gov-west-1"])
def test_the_default_endpoint_is_botocores(region: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
        monkeypatch.delenv(name, raising=False)
    client = boto3.client("dynamodb", region_name=region)
    assert default_endpoint(region) == client.meta.endpoint_url


def test_the_ingest_path_imports_no_boto3(dynamodb_endpoint: str, table_name: str) -> None:
    """What a cold start pays: the commit's calls against DynamoDB Local, boto3 never loaded."""
    code = f"""
import sys
from skewgate.aws.client import dynamodb_client
from skewgate.aws.store import Store
client = dynamodb_client()
store = Store(client, {table_name!r})
assert store.get_batch_and_states("nope", ["s1"]) == (None, {{}})
client.batch_write_item(RequestItems={{{table_name!r}: [{{"PutRequest": {{"Item": {{
    "PK": {{"S": "X#1"}}, "SK": {{"S": "Y"}}, "b": {{"B": b"\\x00\\xff"}}}}}}}}]}})
item = client.get_item(TableName={table_name!r}, Key={{"PK": {{"S": "X#1"}}, "SK": {{"S": "Y"}}}},
                       ConsistentRead=True)["Item"]
assert item["b"]["B"] == b"\\x00\\xff", item
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("boto3", "botocore", "urllib3"))
assert not loaded, loaded
"""
    env = {**os.environ, "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_endpoint}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=REPO, timeout=60)


def test_errors_are_dynamodbs_own(ddb_client: Any, table_name: str) -> None:
    key = {"PK": {"S": "X#2"}, "SK": {"S": "Y"}}
    put = {"Put": {"TableName": table_name, "Item": key,
                   "ConditionExpression": "attribute_not_exists(PK)"}}
    ddb_client.transact_write_items(TransactItems=[put])
    with pytest.raises(DynamoDBError) as raised:
        ddb_client.transact_write_items(TransactItems=[put])
    assert raised.value.code == "TransactionCanceledException"
    assert [r["Code"] for r in raised.value.response["CancellationReasons"]] == [
        "ConditionalCheckFailed"]
    with pytest.raises(DynamoDBError) as raised:
        ddb_client.get_item(TableName="no-such-table", Key=key)
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # The boto3 client behind it answers everything else, on the same table.
    assert ddb_client.describe_table(TableName=table_name)["Table"]["TableName"] == table_name


def test_without_environment_credentials_boto3_resolves_them(
    dynamodb_endpoint: str, table_name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    client = dynamodb_client()  # loopback: the dummy credentials DynamoDB Local accepts
    response = client.query(
        TableName=table_name, KeyConditionExpression="PK = :pk",
        ExpressionAttributeValues={":pk": {"S": "none"}},
    )
    assert response["Items"] == []


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.server.requests += 1
        if self.server.mode == "hang":
            time.sleep(3)
            return
        body = b'{"Responses":{}}'
        mode = self.server.mode
        crc = zlib.crc32(body) + (1 if mode == "bad-crc" else 0)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("x-amz-crc32", str(crc))
        if mode == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (body[:5], body[5:]):
                self.wfile.write(b"%x;ext=1\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\nX-Trailer: t\r\n\r\n")
        elif mode == "close":  # no length: the body ends with the connection
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        self.wfile.flush()
        if mode == "close":
            return
        # Keep-alive promised, then dropped, as DynamoDB drops idle connections.
        self.close_connection = self.server.mode == "drop"

    def log_message(self, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    mode = "ok"
    requests = 0
    connections = 0

    def get_request(self) -> tuple[socket.socket, Any]:
        self.connections += 1
        return super().get_request()


@contextmanager
def fake_dynamodb(mode: str) -> Iterator[tuple[_Server, LeanDynamoDB]]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.mode = mode
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    client = LeanDynamoDB(url, "us-east-1", lambda: Credentials("local", "local"),
                          connect_timeout=0.5, read_timeout=0.5)
    try:
        yield server, client
    finally:
        client.close()
        server.shutdown()
        server.server_close()


def test_connections_are_kept_and_a_dropped_one_is_replaced() -> None:
    with fake_dynamodb("ok") as (server, client):
        for _ in range(5):
            assert client.batch_get_item(RequestItems={}) == {"Responses": {}}
        assert (server.requests, server.connections) == (5, 1)
    with fake_dynamodb("drop") as (server, client):
        for _ in range(3):
            assert client.batch_get_item(RequestItems={}) == {"Responses": {}}
            time.sleep(0.05)  # the server's FIN arrives while the connection is idle
        assert (server.requests, server.connections) == (3, 3)


@pytest.mark.parametrize(("mode", "connections"), [("chunked", 1), ("close", 3)])
def test_chunked_and_close_delimited_responses_are_read(mode: str, connections: int) -> None:
    with fake_dynamodb(mode) as (server, client):
        for _ in range(3):
            assert client.batch_get_item(RequestItems={}) == {"Responses": {}}
        assert (server.requests, server.connections) == (3, connections)


def test_no_answer_is_unreachable_within_the_timeouts() -> None:
    with fake_dynamodb("hang") as (server, client):
        started = time.monotonic()
        with pytest.raises(DynamoDBUnreachable, match="timed out"):
            client.transact_write_items(TransactItems=[])
        assert time.monotonic() - started < 2.0
        assert server.requests == 1  # sent once: nothing is resent behind the caller's back
    with fake_dynamodb("bad-crc") as (_, client), pytest.raises(DynamoDBUnreachable, match="CRC"):
        client.batch_get_item(RequestItems={})
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"  # bound, never listening
        client = LeanDynamoDB(closed, "us-east-1", lambda: Credentials("a", "b"),
                              connect_timeout=0.5, read_timeout=0.5)
        with pytest.raises(DynamoDBUnreachable, match="Connection"):
            client.query(TableName="t")


def test_the_store_reads_lean_errors(ddb_client: Any) -> None:
    from skewgate.aws.store import StorageUnavailable, Store

    with pytest.raises(StorageUnavailable, match="not found"):
        Store(ddb_client, "no-such-table").get_states(["s"])
    unreachable = LeanDynamoDB("http://127.0.0.1:9", "us-east-1", lambda: Credentials("a", "b"),
                               connect_timeout=0.5, read_timeout=0.5)
    with pytest.raises(StorageUnavailable) as raised:
        Store(unreachable, "t").get_states(["s"])
    assert raised.value.retry_after_s >= 1
    assert json.dumps(str(raised.value))  # one printable line
