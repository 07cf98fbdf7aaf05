"""The ingest and read handlers against DynamoDB Local, fed API Gateway v2 events."""

from __future__ import annotations

import base64
import copy
import gzip
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)
from support import EVENTS, FIXTURES

from skewgate.aws.codec import from_item
from skewgate.aws.ingest import IngestApp
from skewgate.aws.read import ReadApp
from skewgate.aws.settings import IngestSettings
from skewgate.aws.store import Store
from skewgate.clock import sign_clock_reading
from skewgate.clock.records import BatchRecord
from skewgate.wire import Limits, decode_request
from skewgate.wire.blob import unpack
from skewgate.wire.encode import encode_request
from skewgate_tools.local.server import build_event

SESSION = "6f1c2d9a-browser-session"


def make_app(
    ddb_client: Any, table_name: str, clock_ms: Callable[[], float] | None = None, **env: str
) -> tuple[IngestApp, ReadApp]:
    settings = IngestSettings.from_env({"TABLE_NAME": table_name, **env})
    store = Store(ddb_client, table_name, settings.retention_seconds)
    if clock_ms is None:
        return IngestApp(settings, store), ReadApp(store)
    return IngestApp(settings, store, clock_ms=clock_ms), ReadApp(store)


def fixture(n: int) -> dict[str, Any]:
    return json.loads((FIXTURES / f"export-{n}.json").read_text())


def post(
    body: bytes,
    *,
    received_ms: int,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
) -> dict[str, Any]:
    pairs = [("content-type", content_type), *(headers or {}).items()]
    return build_event("POST", "/v1/traces", pairs, body, received_ms)


def fixture_event(n: int, **extra_headers: str) -> dict[str, Any]:
    fx = fixture(n)
    headers = {k: v for k, v in fx["headers"].items() if k != "content-type"}
    headers.update(extra_headers)
    return post(
        json.dumps(fx["body"]).encode(), received_ms=int(fx["received_at_ms"]), headers=headers
    )


def skew(read: ReadApp, session: str) -> tuple[int, dict[str, Any]]:
    response = read.handle(build_event("GET", f"/v1/sessions/{session}/skew", [], b"", 0))
    return response["statusCode"], json.loads(response["body"])


def stored_spans(read: ReadApp, trace_id: str) -> list[dict[str, Any]]:
    response = read.handle(build_event("GET", f"/v1/traces/{trace_id}", [], b"", 0))
    assert response["statusCode"] == 200, response
    spans: list[dict[str, Any]] = json.loads(response["body"])["spans"]
    return spans


def test_800ms_ahead_is_measured_and_corrected(ddb_client: Any, table_name: str) -> None:
    ingest, read = make_app(ddb_client, table_name)
    for n in (1, 2, 3, 4):
        response = ingest.handle(fixture_event(n))
        assert response["statusCode"] == 200, response
        assert json.loads(response["body"]) == {}
    status, doc = skew(read, SESSION)
    assert status == 200
    assert doc["session_id"] == SESSION
    assert len(doc["samples"]) == 4
    times = [s["received_at_ms"] for s in doc["samples"]]
    assert times == sorted(times)
    for sample in doc["samples"]:
        # Truth ≈ −800 ms (the browser's clock was set 800 ms ahead).
        assert sample["lower_ms"] <= -800 <= sample["upper_ms"] + 10, sample
        assert sample["applied"] is True
        assert sample["method"] == "send_time"
        assert abs(sample["offset_ms"] + 800) < 50
    trace_id = doc["samples"][0]["trace_ids"][0]
    for span in stored_spans(read, trace_id):
        shift_ns = int(span["start_time_unix_nano"]) - int(span["raw_start_time_unix_nano"])
        assert shift_ns == round(span["offset_ms"] * 1e6)
        assert int(span["end_time_unix_nano"]) - int(span["raw_end_time_unix_nano"]) == shift_ns


def test_synced_clock_is_not_corrected(ddb_client: Any, table_name: str) -> None:
    ingest, read = make_app(ddb_client, table_name)
    sessions = set()
    for n in (5, 6, 7, 8):
        event = fixture_event(n)
        assert ingest.handle(event)["statusCode"] == 200
        body = json.loads(event["body"])
        for rs in body["resourceSpans"]:
            for kv in rs["resource"]["attributes"]:
                if kv["key"] == "session.id":
                    sessions.add(kv["value"]["stringValue"])
    assert sessions
    for session in sessions:
        status, doc = skew(read, session)
        assert status == 200
        for sample in doc["samples"]:
            assert sample["applied"] is False
            assert sample["method"] == "causality"
            assert sample["lower_ms"] <= 0 <= sample["upper_ms"]
            trace_id = sample["trace_ids"][0]
            for span in stored_spans(read, trace_id):
                assert int(span["start_time_unix_nano"]) == int(span["raw_start_time_unix_nano"])


def table_items(ddb_client: Any, table_name: str, pk: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = ddb_client.query(
        TableName=table_name, KeyConditionExpression="PK = :pk",
        ExpressionAttributeValues={":pk": {"S": pk}}, ConsistentRead=True,
    )["Items"]
    return items


def test_dynamodb_holds_the_body_as_received_and_its_adjusted_copy(
    ddb_client: Any, table_name: str
) -> None:
    ingest, _ = make_app(ddb_client, table_name)
    event = fixture_event(1)
    assert ingest.handle(event)["statusCode"] == 200
    body = fixture(1)["body"]
    trace_id = body["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"]
    # The trace's index item: keys only (and its TTL), pointing at the batch.
    (index,) = table_items(ddb_client, table_name, f"TRACE#{trace_id}")
    assert set(index) == {"PK", "SK", "ttl"} and index["SK"]["S"].startswith("B#")
    batch_id = index["SK"]["S"][2:]
    items = table_items(ddb_client, table_name, f"BATCH#{batch_id}")
    marker = next(i for i in items if i["SK"]["S"] == "BATCH")
    record = from_item(BatchRecord, marker)
    assert record.format == 2 and record.chunks == 1 and record.body is not None
    (session,) = record.sessions
    assert session.applied and session.method == "send_time"
    chunks = [i for i in items if i["SK"]["S"].startswith(f"BODY#{record.attempt}#")]
    assert len(chunks) == 1 and "type" not in chunks[0]  # never on the forwarder's filter
    raw, adjusted = unpack(bytes(chunks[0]["b"]["B"]), record.body)
    assert raw == event["body"].encode()  # the body exactly as received
    assert adjusted is not None
    shift = round(session.offset_ms * 1e6)
    raw_doc, adjusted_doc = json.loads(raw), json.loads(adjusted)
    raw_spans = raw_doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    adjusted_spans = adjusted_doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    for before, after in zip(raw_spans, adjusted_spans, strict=True):
        assert int(after["startTimeUnixNano"]) == int(before["startTimeUnixNano"]) + shift
        assert int(after["endTimeUnixNano"]) == int(before["endTimeUnixNano"]) + shift
        for b_event, a_event in zip(before["events"], after["events"], strict=True):
            assert int(a_event["timeUnixNano"]) == int(b_event["timeUnixNano"]) + shift
            a_event["timeUnixNano"] = b_event["timeUnixNano"]
        # Same content otherwise: only the times differ.
        assert {k: v for k, v in after.items() if "TimeUnixNano" not in k} == {
            k: v for k, v in before.items() if "TimeUnixNano" not in k
        }
    facts = {kv["key"]: kv["value"] for kv in adjusted_doc["resourceSpans"][0]["resource"][
        "attributes"] if kv["key"].startswith("clock_skew.")}
    assert facts["clock_skew.offset_ms"]["doubleValue"] == session.offset_ms
    assert facts["clock_skew.method"]["stringValue"] == "send_time"
    assert int(marker["ttl"]["N"]) > record.received_at_ms // 1000


def test_an_unshifted_batch_stores_no_second_copy(ddb_client: Any, table_name: str) -> None:
    ingest, _ = make_app(ddb_client, table_name)
    assert ingest.handle(fixture_event(5))["statusCode"] == 200  # in sync: nothing moves
    markers = ddb_client.scan(
        TableName=table_name, FilterExpression="#t = :b",
        ExpressionAttributeNames={"#t": "type"}, ExpressionAttributeValues={":b": {"S": "batch"}},
    )["Items"]
    (record,) = [from_item(BatchRecord, m) for m in markers]
    assert record.body is not None and record.body.adjusted_size == 0
    assert not any(s.applied for s in record.sessions)


def test_retry_with_fresh_send_time_is_stored_once(ddb_client: Any, table_name: str) -> None:
    ingest, read = make_app(ddb_client, table_name)
    first = fixture_event(1)
    assert ingest.handle(first)["statusCode"] == 200
    retry = fixture_event(1)
    retry["headers"]["x-sent-at"] = str(int(retry["headers"]["x-sent-at"]) + 3000)
    retry["requestContext"]["timeEpoch"] += 3100
    assert ingest.handle(retry)["statusCode"] == 200
    _, doc = skew(read, SESSION)
    assert len(doc["samples"]) == 1
    assert doc["samples"][0]["received_at_ms"] == first["requestContext"]["timeEpoch"]


def test_batch_with_two_sessions_yields_one_sample_each(ddb_client: Any, table_name: str) -> None:
    ingest, read = make_app(ddb_client, table_name)
    body = copy.deepcopy(fixture(1)["body"])
    second = copy.deepcopy(body["resourceSpans"][0])
    for kv in second["resource"]["attributes"]:
        if kv["key"] == "session.id":
            kv["value"]["stringValue"] = "other-session"
    for span in second["scopeSpans"][0]["spans"]:
        span["spanId"] = span["spanId"][::-1]
        span["traceId"] = span["traceId"][::-1]
        span.pop("parentSpanId", None)
    body["resourceSpans"].append(second)
    event = post(json.dumps(body).encode(), received_ms=int(fixture(1)["received_at_ms"]))
    assert ingest.handle(event)["statusCode"] == 200
    for session in (SESSION, "other-session"):
        status, doc = skew(read, session)
        assert status == 200 and len(doc["samples"]) == 1
        assert doc["samples"][0]["span_count"] == 3


def test_header_session_is_a_fallback(ddb_client: Any, table_name: str) -> None:
    ingest, read = make_app(ddb_client, table_name)
    body = json.dumps(
        {
            "resourceSpans": [
                {
                    "scopeSpans": [
                        {
                            "spans": [
                                {
                                    "traceId": "1" * 32,
                                    "spanId": "2" * 16,
                                    "startTimeUnixNano": "1",
                                    "endTimeUnixNano": "2",
                                }
                            ]
                        }
                    ]
                }
            ]
        }
    ).encode()
    event = post(body, received_ms=10_000, headers={"x-session-id": "hdr-session"})
    assert ingest.handle(event)["statusCode"] == 200
    status, doc = skew(read, "hdr-session")
    assert status == 200 and doc["samples"][0]["span_count"] == 1


def test_partial_success_rejects_bad_spans_alone(ddb_client: Any, table_name: str) -> None:
    ingest, read = make_app(ddb_client, table_name)
    body = copy.deepcopy(fixture(1)["body"])
    spans = body["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[0]["traceId"] = "0" * 32
    spans[1]["endTimeUnixNano"] = "1"
    event = post(json.dumps(body).encode(), received_ms=int(fixture(1)["received_at_ms"]))
    response = ingest.handle(event)
    assert response["statusCode"] == 200
    partial = json.loads(response["body"])["partialSuccess"]
    assert partial["rejectedSpans"] == "2"
    assert "all-zero traceId" in partial["errorMessage"]
    _, doc = skew(read, SESSION)
    assert doc["samples"][0]["span_count"] == 1


def test_protobuf_request_gets_protobuf_response(ddb_client: Any, table_name: str) -> None:
    ingest, read = make_app(ddb_client, table_name)
    event = json.loads((EVENTS / "post-traces-protobuf.json").read_text())
    response = ingest.handle(event)
    assert response["statusCode"] == 200
    assert response["headers"]["content-type"] == "application/x-protobuf"
    assert response["isBase64Encoded"] is True
    ExportTraceServiceResponse.FromString(base64.b64decode(response["body"]))
    status, doc = skew(read, SESSION)
    assert status == 200 and doc["samples"][0]["applied"] is True


def test_gzip_protobuf(ddb_client: Any, table_name: str) -> None:
    ingest, _ = make_app(ddb_client, table_name)
    fx = fixture(5)
    batch = decode_request(json.dumps(fx["body"]).encode(), "application/json", None, Limits())
    body = gzip.compress(encode_request(batch.request))
    event = post(
        body,
        received_ms=int(fx["received_at_ms"]),
        content_type="application/x-protobuf",
        headers={"content-encoding": "gzip"},
    )
    assert ingest.handle(event)["statusCode"] == 200


def _status(response: dict[str, Any]) -> Status:
    if response["isBase64Encoded"]:
        return Status.FromString(base64.b64decode(response["body"]))
    body = json.loads(response["body"])
    return Status(code=body["code"], message=body["message"])


@pytest.mark.parametrize(
    ("body", "content_type", "encoding", "status", "code"),
    [
        (b"{oops", "application/json", None, 400, 3),
        (b"\x0a\xff\xff", "application/x-protobuf", None, 400, 3),
        (b"{}", "text/plain", None, 415, 3),
        (gzip.compress(b"\0" * (21 * 1024 * 1024)), "application/json", "gzip", 413, 8),
        (b"garbage", "application/json", "gzip", 400, 3),
        (b"{}", "application/json", "br", 415, 3),
    ],
)
def test_bad_input_gets_a_status_body(
    ddb_client: Any,
    table_name: str,
    body: bytes,
    content_type: str,
    encoding: str | None,
    status: int,
    code: int,
) -> None:
    ingest, _ = make_app(ddb_client, table_name)
    headers = {"content-encoding": encoding} if encoding else {}
    response = ingest.handle(post(body, received_ms=1, headers=headers, content_type=content_type))
    assert response["statusCode"] == status
    parsed = _status(response)
    assert parsed.code == code and parsed.message
    if content_type == "application/x-protobuf":
        assert response["headers"]["content-type"] == "application/x-protobuf"


def test_body_over_limit_is_413(ddb_client: Any, table_name: str) -> None:
    ingest, _ = make_app(ddb_client, table_name, MAX_BODY_BYTES="1000")
    response = ingest.handle(post(b" " * 1001, received_ms=1))
    assert response["statusCode"] == 413


def test_unsupported_method_is_405_and_unknown_path_404(ddb_client: Any, table_name: str) -> None:
    ingest, _ = make_app(ddb_client, table_name)
    response = ingest.handle(build_event("GET", "/v1/traces", [], b"", 1))
    assert response["statusCode"] == 405
    assert "POST" in response["headers"]["allow"]
    response = ingest.handle(build_event("DELETE", "/v1/clock", [], b"", 1))
    assert response["statusCode"] == 405
    assert ingest.handle(build_event("GET", "/nope", [], b"", 1))["statusCode"] == 404


def test_origin_allow_list_and_preflight(ddb_client: Any, table_name: str) -> None:
    ingest, _ = make_app(
        ddb_client, table_name, ALLOWED_ORIGINS="https://shop.example, http://127.0.0.1:34645"
    )
    preflight = json.loads((EVENTS / "options-traces.json").read_text())
    response = ingest.handle(preflight)
    assert response["statusCode"] == 204
    headers = response["headers"]
    assert headers["access-control-allow-origin"] == "http://127.0.0.1:34645"
    for name in ("X-Sent-At", "X-Clock-Sync", "X-Session-Id", "X-Ingest-Key"):
        assert name in headers["access-control-allow-headers"]
    for origin in ("https://evil.example", "null"):
        bad = build_event("OPTIONS", "/v1/traces", [("origin", origin)], b"", 1)
        assert ingest.handle(bad)["statusCode"] == 403
        event = fixture_event(1, origin=origin)
        assert ingest.handle(event)["statusCode"] == 403
    no_origin = fixture_event(5)
    no_origin["headers"].pop("origin", None)
    assert ingest.handle(no_origin)["statusCode"] == 200


def test_ingest_keys_are_required_for_every_request(ddb_client: Any, table_name: str) -> None:
    ingest, _ = make_app(ddb_client, table_name, INGEST_KEYS="pk_live_1,pk_live_2")
    event = fixture_event(5)
    event["headers"].pop("origin", None)
    assert ingest.handle(event)["statusCode"] == 401
    event["headers"]["x-ingest-key"] = "wrong"
    assert ingest.handle(event)["statusCode"] == 401
    event["headers"]["x-ingest-key"] = "pk_live_2"
    assert ingest.handle(event)["statusCode"] == 200
    by_query = fixture_event(6)
    by_query["queryStringParameters"] = {"key": "pk_live_1"}
    assert ingest.handle(by_query)["statusCode"] == 200


def test_storage_down_is_503_with_retry_after() -> None:
    import boto3
    from botocore.config import Config

    from skewgate_tools.local.dynamodb import free_port

    client = boto3.client(
        "dynamodb",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(connect_timeout=1, read_timeout=1, retries={"max_attempts": 1}),
    )
    ingest, _ = make_app(client, "skewgate-down")
    response = ingest.handle(fixture_event(1))
    assert response["statusCode"] == 503
    assert int(response["headers"]["retry-after"]) >= 1
    assert json.loads(response["body"])["code"] == 14


def test_missing_table_is_503_not_500(ddb_client: Any) -> None:
    ingest, _ = make_app(ddb_client, "skewgate-no-such-table")
    assert ingest.handle(fixture_event(1))["statusCode"] == 503


def test_clock_endpoint_and_token(ddb_client: Any, table_name: str) -> None:
    ingest, _ = make_app(ddb_client, table_name, CLOCK_SYNC_KEY="s3cret")
    event = json.loads((EVENTS / "get-clock.json").read_text())
    response = ingest.handle(event)
    assert response["statusCode"] == 200
    assert response["headers"]["cache-control"] == "no-store"
    body = json.loads(response["body"])
    assert body["t1"] == event["requestContext"]["timeEpoch"]
    assert body["t2"] >= body["t1"]
    assert body["token"] == sign_clock_reading(
        b"s3cret", json.dumps(body["t1"]), json.dumps(body["t2"])
    )
    # The companion names its session (a query parameter: the GET stays CORS-simple); the
    # token is bound to it. An id too long to be a session key binds to no session.
    for query, bound in (("?session=tab-1", "tab-1"), ("?session=" + "x" * 300, "")):
        reading = json.loads(
            ingest.handle(build_event("GET", "/v1/clock" + query, [], b"", 1_000))["body"]
        )
        assert reading["token"] == sign_clock_reading(
            b"s3cret", json.dumps(reading["t1"]), json.dumps(reading["t2"]), bound
        )


def test_round_trip_echo_gives_ntp_samples(ddb_client: Any, table_name: str) -> None:
    fx = fixture(1)
    recv = int(fx["received_at_ms"])
    # The fixture's timeline is in the past: our clock reads 0.5 ms after the clock request.
    ingest, read = make_app(ddb_client, table_name, lambda: recv - 999.5, CLOCK_SYNC_KEY="s3cret")
    # A /v1/clock exchange a second before the export: client 800 ms ahead, 40 ms round trip.
    clock = ingest.handle(build_event("GET", f"/v1/clock?session={SESSION}", [], b"", recv - 1000))
    reading = json.loads(clock["body"])
    t0 = reading["t1"] + 800 - 20
    t3 = reading["t2"] + 800 + 20
    header = f"t0={t0};t1={reading['t1']};t2={reading['t2']};t3={t3};token={reading['token']}"
    event = fixture_event(1, **{"x-clock-sync": header})
    assert ingest.handle(event)["statusCode"] == 200
    _, doc = skew(read, SESSION)
    sample = doc["samples"][0]
    assert sample["method"] == "ntp"
    assert sample["lower_ms"] <= -800 <= sample["upper_ms"]
    assert sample["upper_ms"] - sample["lower_ms"] <= 45
    # A forged echo (bad token) is flagged and not used.
    forged = fixture_event(2, **{"x-clock-sync": header.replace(reading["token"], "0" * 32)})
    assert ingest.handle(forged)["statusCode"] == 200
    _, doc = skew(read, SESSION)
    assert "implausible_sync" in doc["samples"][1]["flags"]


def otlp(session: str, *spans: tuple[str, str, int, int]) -> bytes:
    """An OTLP/JSON body: spans (span id, parent id, start ns, end ns) of one trace."""
    return json.dumps({"resourceSpans": [{
        "resource": {"attributes": [{"key": "session.id", "value": {"stringValue": session}}]},
        "scopeSpans": [{"spans": [
            {"traceId": TRACE, "spanId": sid, "parentSpanId": parent, "name": sid, "kind": 1,
             "startTimeUnixNano": str(start), "endTimeUnixNano": str(end)}
            for sid, parent, start, end in spans
        ]}],
    }]}).encode()


TRACE = "5b8efff798038103d269b633813fc60c"


def exchange(ingest: IngestApp, session: str, at: int, theta: float) -> str:
    """A companion's GET /v1/clock at our time ``at``: 20 ms each way, client θ behind."""
    reading = json.loads(
        ingest.handle(build_event("GET", f"/v1/clock?session={session}", [], b"", at))["body"]
    )
    t0, t3 = reading["t1"] - 20 - theta, reading["t2"] + 20 - theta
    return (f"t0={t0};t1={json.dumps(reading['t1'])};t2={json.dumps(reading['t2'])};t3={t3};"
            f"token={reading['token']}")


def test_one_trace_over_batches_keeps_its_gaps_exactly(ddb_client: Any, table_name: str) -> None:
    """SimpleSpanProcessor with the companion: each span its own export, child first."""
    recv = 1_767_225_600_000
    ingest, read = make_app(ddb_client, table_name, lambda: recv - 999.5, CLOCK_SYNC_KEY="k")
    theta = -666  # the browser runs 666 ms ahead
    header = exchange(ingest, "sess-trace", recv - 1_000, theta)
    client = (recv - theta) * 1_000_000  # ns, the client clock at our `recv`
    spans = [  # (id, parent, start, end), exported in this order
        ("00000000000000c2", "00000000000000c1", client + 60_000_000, client + 80_000_000),
        ("00000000000000c1", "00000000000000a1", client + 50_000_000, client + 120_000_000),
        ("00000000000000a1", "", client, client + 300_000_000),
    ]
    for i, span in enumerate(spans):
        at = recv + 400 + 150 * i
        sent = str(at - 30 - theta)
        event = build_event("POST", "/v1/traces", [("content-type", "application/json"),
                            ("x-sent-at", sent), ("x-clock-sync", header)],
                            otlp("sess-trace", span), at)
        assert ingest.handle(event)["statusCode"] == 200
    stored = {s["span_id"]: s for s in stored_spans(read, TRACE)}
    assert len({s["offset_ms"] for s in stored.values()}) == 1
    assert all(s["applied"] for s in stored.values())
    for child, parent in (("00000000000000c1", "00000000000000a1"),
                          ("00000000000000c2", "00000000000000c1")):
        gap = (int(stored[child]["start_time_unix_nano"])
               - int(stored[parent]["start_time_unix_nano"]))
        raw = (int(stored[child]["raw_start_time_unix_nano"])
               - int(stored[parent]["raw_start_time_unix_nano"]))
        assert gap == raw
    _, doc = skew(read, "sess-trace")
    assert not any("shift_moved" in s["flags"] for s in doc["samples"])
    assert [s["method"] for s in doc["samples"]] == ["ntp"] * 3


def test_sync_tokens_are_bound_to_a_session_and_count_once(
    ddb_client: Any, table_name: str
) -> None:
    recv = 1_767_225_600_000
    ingest, read = make_app(ddb_client, table_name, lambda: recv - 999.5, CLOCK_SYNC_KEY="k")
    header = exchange(ingest, "owner", recv - 1_000, -800)
    client = (recv + 800) * 1_000_000

    def post(session: str, span_id: str, at: int, sync: str) -> dict[str, Any]:
        event = build_event("POST", "/v1/traces", [("content-type", "application/json"),
                            ("x-sent-at", str(at + 800 - 30)), ("x-clock-sync", sync)],
                            otlp(session, (span_id, "", client, client + 1_000_000)), at)
        assert ingest.handle(event)["statusCode"] == 200
        _, doc = skew(read, session)
        sample: dict[str, Any] = doc["samples"][-1]
        return sample

    assert post("owner", "0000000000000001", recv, header)["method"] == "ntp"
    # Copied into another session: a bad token there, not counted.
    thief = post("thief", "0000000000000002", recv + 10, header)
    assert "implausible_sync" in thief["flags"] and thief["method"] == "send_time"
    # The same server times with other client times, in the owner's session: a replay.
    t0 = header.split(";")[0].split("=")[1]
    forged = header.replace(f"t0={t0}", f"t0={float(t0) - 300}", 1)
    assert "replayed_sync" in post("owner", "0000000000000003", recv + 20, forged)["flags"]
    # What the companion does on every export, the very same echo: known, not a replay.
    again = post("owner", "0000000000000004", recv + 30, header)
    assert again["method"] == "ntp" and not again["flags"]


def test_unknown_session_is_404(ddb_client: Any, table_name: str) -> None:
    _, read = make_app(ddb_client, table_name)
    status, body = skew(read, "never-seen")
    assert status == 404
    assert "never-seen" in body["message"]


def test_concurrent_batches_of_one_session_lose_nothing(ddb_client: Any, table_name: str) -> None:
    ingest, read = make_app(ddb_client, table_name)
    base = fixture(1)
    events = []
    for i in range(6):
        body = copy.deepcopy(base["body"])
        for span in body["resourceSpans"][0]["scopeSpans"][0]["spans"]:
            span["spanId"] = f"{i + 1:02x}" + span["spanId"][2:]
        events.append(
            post(
                json.dumps(body).encode(),
                received_ms=int(base["received_at_ms"]) + i,
                headers={"x-sent-at": base["headers"]["x-sent-at"]},
            )
        )
    results: list[int] = []

    def send(event: dict[str, Any]) -> None:
        results.append(ingest.handle(event)["statusCode"])

    threads = [threading.Thread(target=send, args=(e,)) for e in events]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 6
    _, doc = skew(read, SESSION)
    assert len(doc["samples"]) == 6
    state = ddb_client.get_item(
        TableName=table_name,
        Key={"PK": {"S": f"SESSION#{SESSION}"}, "SK": {"S": "STATE"}},
        ConsistentRead=True,
    )["Item"]
    assert state["version"]["N"] == "6" and state["clock"]["M"]["samples"]["N"] == "6"


def test_sample_events_from_events_dir(ddb_client: Any, table_name: str) -> None:
    ingest, read = make_app(ddb_client, table_name)
    json_event = json.loads((EVENTS / "post-traces-json.json").read_text())
    assert ingest.handle(json_event)["statusCode"] == 200
    skew_event = json.loads((EVENTS / "get-session-skew.json").read_text())
    response = read.handle(skew_event)
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["samples"][0]["method"] == "send_time"


def test_session_pagination(ddb_client: Any, table_name: str) -> None:
    ingest, read = make_app(ddb_client, table_name)
    for i in range(5):
        body = json.dumps(
            {
                "resourceSpans": [
                    {
                        "scopeSpans": [
                            {
                                "spans": [
                                    {
                                        "traceId": f"{i + 1:032x}",
                                        "spanId": f"{i + 1:016x}",
                                        "startTimeUnixNano": "1",
                                        "endTimeUnixNano": "2",
                                        "attributes": [
                                            {"key": "session.id", "value": {"stringValue": "paged"}}
                                        ],
                                    }
                                ]
                            }
                        ]
                    }
                ]
            }
        ).encode()
        assert ingest.handle(post(body, received_ms=1000 + i))["statusCode"] == 200
    seen: list[int] = []
    cursor = None
    while True:
        query = f"?limit=2&cursor={cursor}" if cursor else "?limit=2"
        response = read.handle(build_event("GET", f"/v1/sessions/paged/skew{query}", [], b"", 0))
        doc = json.loads(response["body"])
        seen += [s["received_at_ms"] for s in doc["samples"]]
        cursor = doc.get("next_cursor")
        if not cursor:
            break
    assert seen == [1000, 1001, 1002, 1003, 1004]


def test_a_span_larger_than_an_item_is_stored_whole(ddb_client: Any, table_name: str) -> None:
    import secrets

    ingest, read = make_app(ddb_client, table_name)
    huge_attrs = [
        {"key": f"blob{i}", "value": {"stringValue": secrets.token_hex(8192)}} for i in range(80)
    ]
    spans = [
        {
            "traceId": "3" * 32,
            "spanId": "4" * 16,
            "startTimeUnixNano": "1",
            "endTimeUnixNano": "2",
            "attributes": huge_attrs,
        },
        {"traceId": "3" * 32, "spanId": "5" * 16, "startTimeUnixNano": "1", "endTimeUnixNano": "2"},
    ]
    body = json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [{"key": "session.id", "value": {"stringValue": "big"}}]
                    },
                    "scopeSpans": [{"spans": spans}],
                }
            ]
        }
    ).encode()
    response = ingest.handle(post(body, received_ms=5_000))
    assert response["statusCode"] == 200 and json.loads(response["body"]) == {}
    _, doc = skew(read, "big")
    assert doc["samples"][0]["span_count"] == 2
    assert sorted(s["span_id"] for s in stored_spans(read, "3" * 32)) == ["4" * 16, "5" * 16]
    marker = ddb_client.get_item(
        TableName=table_name,
        Key={"PK": {"S": f"BATCH#{doc['samples'][0]['batch_id']}"}, "SK": {"S": "BATCH"}},
    )["Item"]
    # 1.3 MB of body, 650 KB compressed: cut at the item limit.
    assert int(marker["chunks"]["N"]) >= 2


def test_past_the_lambda_deadline_is_503_not_a_timeout(ddb_client: Any, table_name: str) -> None:
    ingest, read = make_app(ddb_client, table_name)
    response = ingest.handle(fixture_event(1), remaining_ms=lambda: 1_500)
    assert response["statusCode"] == 503
    assert response["headers"]["retry-after"] == "2"
    assert skew(read, SESSION)[0] == 404  # nothing committed: the retry will store it
    assert ingest.handle(fixture_event(1), remaining_ms=lambda: 15_000)["statusCode"] == 200


def test_traces_beyond_the_cap_are_rejected_the_rest_stored(
    ddb_client: Any, table_name: str
) -> None:
    ingest, read = make_app(ddb_client, table_name)
    spans = [
        {
            "traceId": f"{i + 1:032x}",
            "spanId": f"{i + 1:016x}",
            "name": "fetch",
            "startTimeUnixNano": "1000000",
            "endTimeUnixNano": "2000000",
        }
        for i in range(2_000)
    ]
    body = json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [
                            {"key": "session.id", "value": {"stringValue": "many-traces"}}
                        ]
                    },
                    "scopeSpans": [{"spans": spans}],
                }
            ]
        }
    ).encode()
    response = ingest.handle(post(body, received_ms=50_000), remaining_ms=lambda: 15_000)
    assert response["statusCode"] == 200
    # One index item per trace is what a request writes: beyond 1,000 traces it is refused
    # span by span, and says so (partialSuccess: the exporter does not resend them).
    partial = json.loads(response["body"])["partialSuccess"]
    assert partial["rejectedSpans"] == "1000" and "1000 traces" in partial["errorMessage"]
    _, doc = skew(read, "many-traces")
    sample = doc["samples"][0]
    assert sample["span_count"] == 1_000
    assert len(sample["trace_ids"]) == 256 and sample["more_traces"] == 744
    for i in (0, 999):
        assert len(stored_spans(read, f"{i + 1:032x}")) == 1
    response = read.handle(build_event("GET", f"/v1/traces/{1_001:032x}", [], b"", 0))
    assert response["statusCode"] == 404


def test_the_trace_cap_is_configurable(ddb_client: Any, table_name: str) -> None:
    ingest, read = make_app(ddb_client, table_name, MAX_TRACES_PER_REQUEST="2000")
    spans = [
        {"traceId": f"{i + 1:032x}", "spanId": f"{i + 1:016x}",
         "startTimeUnixNano": "1000000", "endTimeUnixNano": "2000000"}
        for i in range(2_000)
    ]
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).encode()
    response = ingest.handle(post(body, received_ms=50_000), remaining_ms=lambda: 15_000)
    assert response["statusCode"] == 200 and json.loads(response["body"]) == {}
    assert len(stored_spans(read, f"{2_000:032x}")) == 1
