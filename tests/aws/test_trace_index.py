"""``TRACE_INDEX``: with it off a batch writes no trace index item, and its traces are still
read, raw and corrected, through their session (the samples list their batches' traces, the
ones beyond a sample's 256 included); the bare route says how to ask."""

from __future__ import annotations

import json
from typing import Any

import pytest

from benchmarks.pipeline import otel_js_body
from skewgate.aws.ingest import IngestApp
from skewgate.aws.read import ReadApp
from skewgate.aws.settings import ConfigError, IngestSettings, ReadSettings
from skewgate.aws.store import Store
from skewgate_tools.local.server import build_event


def ingest(ddb_client: Any, table_name: str, body: bytes, sent_ms: float, *,
           index: bool) -> None:
    settings = IngestSettings.from_env(
        {"TABLE_NAME": table_name, "TRACE_INDEX": "true" if index else "false"}
    )
    assert settings.trace_index is index
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


@pytest.mark.parametrize("value", ["off", "no", "maybe"])
def test_a_trace_index_that_is_not_true_or_false_fails_at_start(value: str) -> None:
    with pytest.raises(ConfigError, match="TRACE_INDEX"):
        ReadSettings.from_env({"TABLE_NAME": "skewgate", "TRACE_INDEX": value})
