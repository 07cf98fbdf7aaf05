"""The two storage switches, against DynamoDB Local.

``TRACE_INDEX``: with it off a batch writes no trace index item, and its traces are still
read, raw and corrected, through their session (the samples list their batches' traces, the
ones beyond a sample's 256 included); the bare route says how to ask.

``STORE_ADJUSTED_COPY``: with it off a shifted batch stores its raw body alone, and reads give
the very same corrected spans, derived from raw + the stored shifts."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from support import REPO

from benchmarks.pipeline import otel_js_body
from skewgate.aws.ingest import IngestApp
from skewgate.aws.read import ReadApp
from skewgate.aws.settings import ConfigError, IngestSettings, ReadSettings
from skewgate.aws.store import Store
from skewgate.wire import decode_request
from skewgate.wire.blob import unpack
from skewgate.wire.decode import Limits
from skewgate.wire.encode import encode_request
from skewgate_tools.local import dynamodb as ddb
from skewgate_tools.local.server import build_event


def ingest(ddb_client: Any, table_name: str, body: bytes, sent_ms: float, *,
           index: bool, adjusted: bool = True) -> None:
    settings = IngestSettings.from_env({
        "TABLE_NAME": table_name, "TRACE_INDEX": str(index).lower(),
        "STORE_ADJUSTED_COPY": str(adjusted).lower(),
    })
    assert settings.trace_index is index and settings.store_adjusted_copy is adjusted
    store = Store(ddb_client, table_name, settings.retention_seconds,
                  index_traces=settings.trace_index)
    event = build_event("POST", "/v1/traces", [("content-type", "application/json"),
                                               ("x-sent-at", repr(sent_ms))],
                        body, int(sent_ms - 770))
    response = IngestApp(settings, store).handle(event)
    assert response["statusCode"] == 200, response


def trace_items(ddb_client: Any, table_name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table_name}
    while True:
        page = ddb_client.scan(**kwargs)
        items += [i for i in page["Items"] if i["PK"]["S"].startswith("TRACE#")]
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def get(read: ReadApp, target: str) -> tuple[int, Any]:
    response = read.handle(build_event("GET", target, [], b"", 0))
    return response["statusCode"], json.loads(response["body"])


def trace_ids_of(body: bytes) -> list[str]:
    spans = json.loads(body)["resourceSpans"][0]["scopeSpans"][0]["spans"]
    return list(dict.fromkeys(s["traceId"] for s in spans))


def test_without_the_index_a_trace_is_read_through_its_session(
    ddb_client: Any, table_name: str
) -> None:
    body, sent = otel_js_body(64, session="s-off")
    ingest(ddb_client, table_name, body, sent, index=False)
    assert trace_items(ddb_client, table_name) == []
    read = ReadApp(Store(ddb_client, table_name, index_traces=False))
    trace = trace_ids_of(body)[1]

    status, answer = get(read, f"/v1/traces/{trace}")
    assert status == 404
    assert "TRACE_INDEX=false" in answer["message"] and "?session=" in answer["message"]

    status, doc = get(read, f"/v1/traces/{trace}?session=s-off")
    assert status == 200
    assert [s["span_id"] for s in doc["spans"]] == [
        s["spanId"] for s in json.loads(body)["resourceSpans"][0]["scopeSpans"][0]["spans"]
        if s["traceId"] == trace
    ]
    for span in doc["spans"]:  # the clock was 800 ms ahead: corrected times moved back
        assert span["applied"] and span["session_id"] == "s-off"
        assert int(span["start_time_unix_nano"]) < int(span["raw_start_time_unix_nano"])

    status, answer = get(read, f"/v1/traces/{trace}?session=another")
    assert status == 404 and "in session 'another'" in answer["message"]


def test_the_traces_a_sample_only_counts_are_found_too(ddb_client: Any, table_name: str) -> None:
    body, sent = otel_js_body(300, spans_per_trace=1, session="s-many")
    ingest(ddb_client, table_name, body, sent, index=False)
    read = ReadApp(Store(ddb_client, table_name, index_traces=False))
    status, skew = get(read, "/v1/sessions/s-many/skew")
    assert status == 200 and skew["samples"][0]["more_traces"] == 300 - 256
    listed = set(skew["samples"][0]["trace_ids"])
    unlisted = [t for t in trace_ids_of(body) if t not in listed]
    assert len(unlisted) == 300 - 256
    status, doc = get(read, f"/v1/traces/{unlisted[-1]}?session=s-many")
    assert status == 200 and len(doc["spans"]) == 1


def test_with_the_index_a_trace_is_read_by_id_alone_or_with_any_session(
    ddb_client: Any, table_name: str
) -> None:
    body, sent = otel_js_body(32, session="s-on")
    ingest(ddb_client, table_name, body, sent, index=True)
    assert len(trace_items(ddb_client, table_name)) == 2
    read = ReadApp(Store(ddb_client, table_name))
    trace = trace_ids_of(body)[0]
    alone, by_session = get(read, f"/v1/traces/{trace}"), get(read, f"/v1/traces/{trace}?session=x")
    assert alone[0] == 200 and alone == by_session
    status, answer = get(read, f"/v1/traces/{'ab' * 16}")
    assert status == 404 and answer["message"] == f"unknown trace {'ab' * 16!r}"


def stored_body(ddb_client: Any, table_name: str) -> tuple[bytes, bytes | None]:
    store = Store(ddb_client, table_name)
    (item,) = [i for i in ddb_client.scan(TableName=table_name)["Items"]
               if i["SK"]["S"] == "BATCH"]
    record = store.get_batch(item["PK"]["S"].removeprefix("BATCH#"))
    assert record is not None and record.sessions[0].applied
    return unpack(b"".join(
        bytes(i["b"]["B"]) for i in sorted(
            (i for i in ddb_client.scan(TableName=table_name)["Items"]
             if i["SK"]["S"].startswith("BODY#")), key=lambda i: i["SK"]["S"])
    ), record.body)


@pytest.mark.parametrize("kind", ["json", "protobuf"])
def test_without_the_adjusted_copy_reads_give_the_same_corrected_spans(
    ddb_client: Any, kind: str
) -> None:
    body, sent = otel_js_body(48, session="s-copy")
    content_type = "application/json"
    if kind == "protobuf":
        body = encode_request(decode_request(body, content_type, None, Limits()).request)
        content_type = "application/x-protobuf"
    documents = []
    for adjusted in (True, False):
        table = f"skewgate-copy-{uuid.uuid4().hex[:12]}"
        ddb.ensure_table(ddb_client, table, REPO / "template.yaml")
        try:
            settings = IngestSettings.from_env(
                {"TABLE_NAME": table, "STORE_ADJUSTED_COPY": str(adjusted).lower()})
            event = build_event("POST", "/v1/traces", [("content-type", content_type),
                                                       ("x-sent-at", repr(sent))],
                                body, int(sent - 770))
            response = IngestApp(settings, Store(ddb_client, table)).handle(event)
            assert response["statusCode"] == 200, response
            raw, copy = stored_body(ddb_client, table)
            assert raw == body and (copy is not None) is adjusted
            read = ReadApp(Store(ddb_client, table))
            trace = get(read, "/v1/sessions/s-copy/skew")[1]["samples"][0]["trace_ids"][0]
            documents.append(get(read, f"/v1/traces/{trace}"))
        finally:
            ddb_client.delete_table(TableName=table)
    stored, derived = documents
    assert stored[0] == 200 and stored == derived
    assert all(int(s["start_time_unix_nano"]) < int(s["raw_start_time_unix_nano"])
               for s in derived[1]["spans"])


@pytest.mark.parametrize("name", ["TRACE_INDEX", "STORE_ADJUSTED_COPY"])
@pytest.mark.parametrize("value", ["off", "no", "maybe"])
def test_a_switch_that_is_not_true_or_false_fails_at_start(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        IngestSettings.from_env({"TABLE_NAME": "skewgate", name: value})
    if name == "TRACE_INDEX":
        with pytest.raises(ConfigError, match=name):
            ReadSettings.from_env({"TABLE_NAME": "skewgate", name: value})


def test_samples_keep_their_trace_ids_packed_and_older_lists_still_read(
    ddb_client: Any, table_name: str
) -> None:
    body, sent = otel_js_body(48, session="s-packed")
    ingest(ddb_client, table_name, body, sent, index=False)
    (sample,) = [i for i in ddb_client.scan(TableName=table_name)["Items"]
                 if i["SK"]["S"].startswith("SAMPLE#")]
    assert len(bytes(sample["trace_ids"]["B"])) == 16 * 3  # 3 traces, 16 bytes each
    read = ReadApp(Store(ddb_client, table_name, index_traces=False))
    before = get(read, "/v1/sessions/s-packed/skew")
    assert before[1]["samples"][0]["trace_ids"] == sorted(trace_ids_of(body))
    # An item written before samples packed them holds a list of strings: the same reads.
    sample["trace_ids"] = {"L": [{"S": t} for t in sorted(trace_ids_of(body))]}
    ddb_client.put_item(TableName=table_name, Item=sample)
    assert get(read, "/v1/sessions/s-packed/skew") == before
    status, doc = get(read, f"/v1/traces/{trace_ids_of(body)[2]}?session=s-packed")
    assert status == 200 and len(doc["spans"]) == 16
