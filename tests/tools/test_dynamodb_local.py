"""DynamoDB Local and the table definition taken from template.yaml."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from skewgate_tools.local import dynamodb as ddb


def _key_schema(spec: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(k["AttributeName"], k["KeyType"]) for k in spec]


# --- the table made from template.yaml ------------------------------------------------------


def test_table_from_template_has_indexes_stream_and_ttl(ddb_client: Any, table_name: str) -> None:
    table = ddb_client.describe_table(TableName=table_name)["Table"]

    assert table["TableStatus"] == "ACTIVE"
    assert _key_schema(table["KeySchema"]) == [("PK", "HASH"), ("SK", "RANGE")]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]} == {
        "PK": "S",
        "SK": "S",
        "RSK": "S",
        "DPK": "S",
        "DSK": "S",
    }

    (lsi,) = table["LocalSecondaryIndexes"]
    assert lsi["IndexName"] == "ByReceipt"
    assert _key_schema(lsi["KeySchema"]) == [("PK", "HASH"), ("RSK", "RANGE")]
    assert lsi["Projection"]["ProjectionType"] == "ALL"

    (gsi,) = table["GlobalSecondaryIndexes"]
    assert gsi["IndexName"] == "ByDay"
    assert _key_schema(gsi["KeySchema"]) == [("DPK", "HASH"), ("DSK", "RANGE")]
    assert gsi["Projection"]["ProjectionType"] == "ALL"
    assert gsi["IndexStatus"] == "ACTIVE"

    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    assert table["LatestStreamArn"]

    ttl = ddb_client.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "ttl"}


def test_ensure_table_is_idempotent(ddb_client: Any, table_name: str, template_path: Path) -> None:
    ddb_client.put_item(TableName=table_name, Item={"PK": {"S": "p"}, "SK": {"S": "s"}})
    again = ddb.ensure_table(ddb_client, table_name, template_path)
    assert again["TableName"] == table_name
    assert ddb_client.get_item(TableName=table_name, Key={"PK": {"S": "p"}, "SK": {"S": "s"}})[
        "Item"
    ]
    ttl = ddb_client.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "ENABLED"


def test_indexes_and_stream_work(ddb_client: Any, table_name: str, dynamodb_endpoint: str) -> None:
    item = {
        "PK": {"S": "S#session-1"},
        "SK": {"S": "B#0001"},
        "RSK": {"S": "R#1700000000000"},
        "DPK": {"S": "D#2026-11-26"},
        "DSK": {"S": "0000123"},
        "ttl": {"N": str(int(time.time()) + 3600)},
    }
    ddb_client.put_item(TableName=table_name, Item=item)

    by_receipt = ddb_client.query(
        TableName=table_name,
        IndexName="ByReceipt",
        KeyConditionExpression="PK = :pk AND begins_with(RSK, :r)",
        ExpressionAttributeValues={":pk": item["PK"], ":r": {"S": "R#"}},
    )
    assert by_receipt["Items"] == [item]
    by_day = ddb_client.query(
        TableName=table_name,
        IndexName="ByDay",
        KeyConditionExpression="DPK = :d",
        ExpressionAttributeValues={":d": item["DPK"]},
    )
    assert by_day["Items"] == [item]

    # The stream poller of the local runner reads DynamoDB Local's stream the same way.
    streams = boto3.client("dynamodbstreams", endpoint_url=dynamodb_endpoint)
    arn = ddb_client.describe_table(TableName=table_name)["Table"]["LatestStreamArn"]
    (shard,) = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = streams.get_records(ShardIterator=iterator)["Records"]
    assert [r["eventName"] for r in records] == ["INSERT"]
    assert records[0]["dynamodb"]["NewImage"] == item
    assert records[0]["dynamodb"]["StreamViewType"] == "NEW_IMAGE"


# --- load_table_definition ------------------------------------------------------------------


def test_load_table_definition_from_repo_template(template_path: Path) -> None:
    definition = ddb.load_table_definition(template_path)
    assert definition["logical_id"] == "Table"
    assert definition["table_name"] is None
    assert definition["ttl_attribute"] == "ttl"
    kwargs = definition["create_table"]
    assert set(kwargs) == {
        "AttributeDefinitions",
        "KeySchema",
        "BillingMode",
        "LocalSecondaryIndexes",
        "GlobalSecondaryIndexes",
        "StreamSpecification",
    }
    assert kwargs["BillingMode"] == "PAY_PER_REQUEST"
    assert kwargs["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}


def test_load_table_definition_rejects_template_without_table(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(
        textwrap.dedent(
            """
            Transform: AWS::Serverless-2016-10-31
            Resources:
              Bucket:
                Type: AWS::S3::Bucket
                Properties:
                  BucketName: !Sub "${AWS::StackName}-data"
            Outputs:
              Arn:
                Value: !GetAtt Bucket.Arn
            """
        )
    )
    with pytest.raises(ddb.TableDefinitionError, match=r"defines no AWS::DynamoDB::Table"):
        ddb.load_table_definition(template)


def test_load_table_definition_rejects_missing_resources_and_bad_yaml(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("Parameters: {}\n")
    with pytest.raises(ddb.TableDefinitionError, match="no Resources section"):
        ddb.load_table_definition(empty)
    broken = tmp_path / "broken.yaml"
    broken.write_text("Resources: [unclosed\n")
    with pytest.raises(ddb.TableDefinitionError, match="not valid YAML"):
        ddb.load_table_definition(broken)
    with pytest.raises(ddb.TableDefinitionError, match="cannot read template"):
        ddb.load_table_definition(tmp_path / "missing.yaml")


def test_short_form_tags_and_unresolvable_intrinsics(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(
        textwrap.dedent(
            """
            Conditions:
              IsProd: !Equals [!Ref Env, prod]
            Resources:
              T:
                Type: AWS::DynamoDB::Table
                Properties:
                  TableName: !Sub "${AWS::StackName}-t"
                  BillingMode: PROVISIONED
                  ProvisionedThroughput: { ReadCapacityUnits: "5", WriteCapacityUnits: 5 }
                  AttributeDefinitions: [{ AttributeName: id, AttributeType: S }]
                  KeySchema: [{ AttributeName: id, KeyType: HASH }]
                  PointInTimeRecoverySpecification:
                    PointInTimeRecoveryEnabled: !If [IsProd, true, false]
                  Tags: [{ Key: arn, Value: !GetAtt Other.Arn }]
              U:
                Type: AWS::DynamoDB::Table
                Properties:
                  BillingMode: PAY_PER_REQUEST
                  AttributeDefinitions: [{ AttributeName: !Ref KeyName, AttributeType: S }]
                  KeySchema: [{ AttributeName: id, KeyType: HASH }]
            """
        )
    )
    raw = ddb.load_template(template)
    assert raw["Conditions"]["IsProd"] == {"Fn::Equals": [{"Ref": "Env"}, "prod"]}
    tags = raw["Resources"]["T"]["Properties"]["Tags"]
    assert tags == [{"Key": "arn", "Value": {"Fn::GetAtt": ["Other", "Arn"]}}]

    with pytest.raises(ddb.TableDefinitionError, match="several"):
        ddb.load_table_definition(template)

    t = ddb.load_table_definition(template, "T")
    assert t["table_name"] is None  # an intrinsic, not a literal name
    assert t["ttl_attribute"] is None
    assert t["create_table"] == {
        "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        "BillingMode": "PROVISIONED",
        "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
    }

    with pytest.raises(ddb.TableDefinitionError, match=r"U\.Properties\.AttributeDefinitions.*Ref"):
        ddb.load_table_definition(template, "U")
    with pytest.raises(ddb.TableDefinitionError, match="no AWS::DynamoDB::Table resource named"):
        ddb.load_table_definition(template, "Nope")


# --- finding and running the jar ------------------------------------------------------------


def test_find_jar(repo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ddb.JAR_ENV, raising=False)
    jar = ddb.find_jar(repo_root)
    assert jar.name == "DynamoDBLocal.jar"
    assert (jar.parent / "DynamoDBLocal_lib").is_dir()

    with pytest.raises(ddb.DynamoDBLocalError, match="make venv"):
        ddb.find_jar(tmp_path)


def test_start_reports_output_when_java_dies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bogus = tmp_path / "DynamoDBLocal.jar"
    bogus.write_text("not a jar")
    monkeypatch.setenv(ddb.JAR_ENV, str(bogus))
    with pytest.raises(ddb.DynamoDBLocalError, match=r"(?s)exited with status.*jarfile"):
        ddb.start_dynamodb_local(ddb.free_port(), log_path=tmp_path / "out.log", timeout=20)


def test_start_refuses_a_busy_port(repo_root: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ddb.DynamoDBLocalError, match="already in use"):
            ddb.start_dynamodb_local(port, repo_root=repo_root)


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_dynamodb_local_dies_with_its_parent(repo_root: Path, tmp_path: Path) -> None:
    """Even a SIGKILLed parent (no atexit) must not leave a Java process behind."""
    script = textwrap.dedent(
        f"""
        import sys, time
        from skewgate_tools.local import dynamodb as ddb
        proc = ddb.start_dynamodb_local(ddb.free_port(), repo_root={str(repo_root)!r},
                                        log_path={str(tmp_path / "child.log")!r})
        print(proc.pid, flush=True)
        time.sleep(120)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        assert line.strip().isdigit(), f"child did not start DynamoDB Local: {line!r}"
        java_pid = int(line)
        assert not _gone(java_pid)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 10
    while not _gone(java_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    survived = not _gone(java_pid)
    if survived:
        os.kill(java_pid, signal.SIGKILL)
    assert not survived, f"DynamoDB Local (pid {java_pid}) outlived its parent"
