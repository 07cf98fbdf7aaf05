"""Read routes against DynamoDB Local: a day's sessions, stats, skew and traces, pagination.

Traffic comes from ``skewgate_tools.demo``: browsers with known clock errors (800 ms ahead, a
3 h jump, 2 days behind, 120 ms ahead with round trips, in sync with causality only) on
2026-01-01, and one session that runs across midnight into 2026-01-02.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from scenarios import (
    ACROSS,
    D1,
    D1_START,
    D2,
    EMPTY_DAY,
    MIDNIGHT,
    PER_SESSION,
    PagingClient,
    seeded_table_of,
)

from skewgate.aws.ingest import IngestApp
from skewgate.aws.read import ReadApp, SessionsDocument, SkewDocument, StatsDocument, TraceDocument
from skewgate.aws.settings import IngestSettings
from skewgate.aws.store import Store
from skewgate.clock.interval import SKEW_THRESHOLDS, proven_abs_offset_ms
from skewgate.clock.records import day_of
from skewgate_tools.demo import SCENARIOS, batch_body
from skewgate_tools.local.server import build_event


@pytest.fixture(scope="module")
def seeded_table(ddb_client: Any, template_path: Any) -> Iterator[str]:
    """One table with the scenarios, shared by the module's read-only tests."""
    yield from seeded_table_of(ddb_client, template_path)


@pytest.fixture
def apps(ddb_client: Any, seeded_table: str) -> tuple[ReadApp, Store]:
    store = Store(ddb_client, seeded_table)
    return ReadApp(store), store


def get(read: ReadApp, target: str) -> tuple[int, Any]:
    response = read.handle(build_event("GET", target, [], b"", 0))
    assert response["headers"]["content-type"] == "application/json"
    return response["statusCode"], json.loads(response["body"])


def test_sessions_of_a_day_most_skewed_first(apps: Any) -> None:
    read, _ = apps
    status, doc = get(read, f"/v1/sessions?day={D1}")
    assert status == 200
    msgspec.convert(doc, SessionsDocument)
    assert doc["day"] == D1 and "next_cursor" not in doc
    ids = [s["session_id"] for s in doc["sessions"]]
    assert sorted(ids) == sorted([s.session_id for s in SCENARIOS] + [ACROSS.session_id])
    peaks = [s["max_proven_abs_offset_ms"] for s in doc["sessions"]]
    assert peaks == sorted(peaks, reverse=True)
    assert ids[:2] == ["demo-behind-2d", "demo-jump-3h"]
    behind = doc["sessions"][0]
    assert behind["batches"] == behind["corrected_batches"] == PER_SESSION
    assert behind["method"] == "send_time" and behind["applied"] is True
    assert abs(behind["offset_ms"] - 2 * 86_400_000) < 1_000
    assert behind["first_received_at_ms"] == D1_START
    assert behind["last_received_at_ms"] == D1_START + (PER_SESSION - 1) * 30_000
    jump = next(s for s in doc["sessions"] if s["session_id"] == "demo-jump-3h")
    assert jump["jumps"] == 1


def test_a_session_across_midnight_is_listed_on_both_days(apps: Any) -> None:
    read, _ = apps
    by_day = {}
    for day in (D1, D2):
        _, doc = get(read, f"/v1/sessions?day={day}")
        by_day[day] = {s["session_id"]: s for s in doc["sessions"]}
    assert list(by_day[D2]) == [ACROSS.session_id]
    assert by_day[D1][ACROSS.session_id]["batches"] == 3
    assert by_day[D2][ACROSS.session_id]["batches"] == 3
    assert by_day[D2][ACROSS.session_id]["first_received_at_ms"] == MIDNIGHT
    _, skew = get(read, f"/v1/sessions/{ACROSS.session_id}/skew")
    times = [s["received_at_ms"] for s in skew["samples"]]
    assert times == [MIDNIGHT - 90_000 + 30_000 * i for i in range(6)]


def test_empty_day_is_an_empty_list(apps: Any) -> None:
    read, _ = apps
    assert get(read, f"/v1/sessions?day={EMPTY_DAY}") == (
        200, {"day": EMPTY_DAY, "sessions": []}
    )
    status, stats = get(read, f"/v1/stats?day={EMPTY_DAY}")
    assert status == 200 and stats["sessions"]["total"] == 0
    assert stats["batches"]["share"]["100ms"] is None


def test_min_offset_is_a_key_condition(apps: Any, ddb_client: Any, seeded_table: str) -> None:
    paging = PagingClient(ddb_client, page=100)
    read = ReadApp(Store(paging, seeded_table))
    _, doc = get(read, f"/v1/sessions?day={D1}&min_offset_ms=3600000")
    assert [s["session_id"] for s in doc["sessions"]] == ["demo-behind-2d", "demo-jump-3h"]
    assert paging.queries == 1  # no filtering after the fact
    _, doc = get(read, f"/v1/sessions?day={D1}&min_offset_ms=1e15")
    assert doc["sessions"] == []


def test_sessions_paginate_by_cursor_and_across_dynamodb_pages(
    apps: Any, ddb_client: Any, seeded_table: str
) -> None:
    read, _ = apps
    _, whole = get(read, f"/v1/sessions?day={D1}")
    paging = PagingClient(ddb_client, page=2)
    paged_read = ReadApp(Store(paging, seeded_table))
    # One request over several DynamoDB pages.
    _, doc = get(paged_read, f"/v1/sessions?day={D1}")
    assert doc == whole and paging.queries >= 3
    # Page by page through the API cursor.
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        target = f"/v1/sessions?day={D1}&limit=4" + (f"&cursor={cursor}" if cursor else "")
        _, page = get(paged_read, target)
        seen += [s["session_id"] for s in page["sessions"]]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    assert seen == [s["session_id"] for s in whole["sessions"]]


def test_large_session_skew_over_many_dynamodb_pages(
    apps: Any, ddb_client: Any, seeded_table: str
) -> None:
    read, _ = apps
    _, whole = get(read, "/v1/sessions/demo-jump-3h/skew")
    assert len(whole["samples"]) == PER_SESSION and "next_cursor" not in whole
    paging = PagingClient(ddb_client, page=3)
    _, doc = get(ReadApp(Store(paging, seeded_table)), "/v1/sessions/demo-jump-3h/skew")
    assert doc == whole and paging.queries >= 3
    msgspec.convert(doc, SkewDocument)
    assert [s["jump"] for s in doc["samples"]].count(True) == 1


def test_trace_over_many_dynamodb_pages(ddb_client: Any, table_name: str) -> None:
    store = Store(ddb_client, table_name)
    ingest = IngestApp(IngestSettings.from_env({"TABLE_NAME": table_name}), store)
    read = ReadApp(store)
    # One trace whose spans arrive in five batches: five span items under one partition.
    trace_id = "ab" * 16
    for i in range(5):
        body, own_trace = batch_body(f"long-trace-{i}", i, D1_START + i * 1000.0, spans=2)
        event = build_event("POST", "/v1/traces", [("content-type", "application/json")],
                            body.replace(own_trace.encode(), trace_id.encode()),
                            D1_START + i * 1000 + 500)
        assert ingest.handle(event)["statusCode"] == 200
    _, whole = get(read, f"/v1/traces/{trace_id}")
    assert len(whole["spans"]) == 10
    paging = PagingClient(ddb_client, page=1)
    _, doc = get(ReadApp(Store(paging, table_name)), f"/v1/traces/{trace_id.upper()}")
    assert doc == whole and paging.queries >= 5
    msgspec.convert(doc, TraceDocument)


def test_trace_document_has_raw_and_corrected_times(apps: Any) -> None:
    read, _ = apps
    _, skew = get(read, "/v1/sessions/demo-behind-2d/skew")
    sample = skew["samples"][0]
    _, trace = get(read, f"/v1/traces/{sample['trace_ids'][0]}")
    assert len(trace["spans"]) == 3
    for span in trace["spans"]:
        shift = int(span["start_time_unix_nano"]) - int(span["raw_start_time_unix_nano"])
        assert shift == round(sample["offset_ms"] * 1e6)
        assert span["method"] == "send_time" and span["applied"] is True
        assert span["session_id"] == "demo-behind-2d"


def test_stats_match_the_samples(apps: Any) -> None:
    """The day counters agree with the proven |offset| of every stored sample of the day."""
    read, _ = apps
    status, stats = get(read, f"/v1/stats?day={D1}")
    assert status == 200
    msgspec.convert(stats, StatsDocument)
    names = [name for name, _ in SKEW_THRESHOLDS]
    expected_batches = {name: 0 for name in names}
    expected_sessions = {name: 0 for name in names}
    by_method: dict[str, dict[str, int]] = {}
    total = 0
    for session in [s.session_id for s in SCENARIOS] + [ACROSS.session_id]:
        _, doc = get(read, f"/v1/sessions/{session}/skew")
        hit = dict.fromkeys(names, False)
        for sample in doc["samples"]:
            if day_of(sample["received_at_ms"]) != D1:
                continue
            total += 1
            proven = proven_abs_offset_ms(sample["lower_ms"], sample["upper_ms"])
            tally = by_method.setdefault(sample["method"], {"total": 0, **dict.fromkeys(names, 0)})
            tally["total"] += 1
            for name, bound in SKEW_THRESHOLDS:
                if proven > bound:
                    expected_batches[name] += 1
                    tally[name] += 1
                    hit[name] = True
        for name in names:
            expected_sessions[name] += hit[name]
    assert stats["batches"]["total"] == total == 5 * PER_SESSION + 3
    assert stats["batches"]["over"] == expected_batches
    assert stats["sessions"]["total"] == 6
    assert stats["sessions"]["over"] == expected_sessions
    for method, tally in by_method.items():
        got = stats["by_method"][method]["batches"]
        assert got["total"] == tally["total"]
        assert got["over"] == {name: tally[name] for name in names}
    assert stats["batches"]["share"]["1h"] == round(expected_batches["1h"] / total, 6)
    # What the scenarios make certain, whatever the estimator's finer details:
    assert expected_batches["1h"] >= PER_SESSION  # the browser two days behind
    assert stats["by_method"]["causality"]["batches"]["over"]["50ms"] == 0  # in sync
    assert stats["jumps"] == 1 and stats["unclassified_batches"] == 0


def test_day_item_counters(ddb_client: Any, seeded_table: str) -> None:
    item = ddb_client.get_item(
        TableName=seeded_table,
        Key={"PK": {"S": "SESSION#demo-behind-2d"}, "SK": {"S": f"DAY#{D1}"}},
    )["Item"]
    assert item["batches_send_time"]["N"] == str(PER_SESSION)
    for name, _ in SKEW_THRESHOLDS:
        assert item[f"over_{name}_send_time"]["N"] == str(PER_SESSION)
    synced = ddb_client.get_item(
        TableName=seeded_table,
        Key={"PK": {"S": "SESSION#demo-in-sync"}, "SK": {"S": f"DAY#{D1}"}},
    )["Item"]
    assert synced["batches_causality"]["N"] == str(PER_SESSION)
    assert not [k for k in synced if k.startswith("over_")]


@pytest.mark.parametrize(
    "target",
    [
        "/v1/sessions?day=2026-1-1",
        "/v1/sessions?day=2026-02-30",
        "/v1/sessions?min_offset_ms=-1",
        "/v1/sessions?min_offset_ms=nan",
        "/v1/sessions?limit=0",
        "/v1/sessions?limit=1001",
        "/v1/sessions?cursor=!!!",
        "/v1/stats?day=yesterday",
        "/v1/sessions/demo-jump-3h/skew?limit=x",
    ],
)
def test_bad_parameters_are_400(apps: Any, target: str) -> None:
    read, _ = apps
    status, body = get(read, target)
    assert status == 400 and body["code"] == 3 and body["message"]


def test_doctored_cursors_are_400(apps: Any) -> None:
    read, _ = apps

    def cursor(key: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()

    other_day = {"PK": {"S": "SESSION#x"}, "SK": {"S": f"DAY#{D2}"}, "DPK": {"S": f"DAY#{D2}"},
                 "DSK": {"S": "0#x"}}
    status, _ = get(read, f"/v1/sessions?day={D1}&cursor={cursor(other_day)}")
    assert status == 400
    status, _ = get(read, f"/v1/sessions?day={D1}&cursor={cursor({'PK': {'N': '1'}})}")
    assert status == 400
    foreign = {"PK": {"S": "SESSION#other"}, "SK": {"S": "SAMPLE#1"}, "RSK": {"S": "1"}}
    status, _ = get(read, f"/v1/sessions/demo-jump-3h/skew?cursor={cursor(foreign)}")
    assert status == 400


def test_unknown_ids_are_404_and_other_methods_405(apps: Any) -> None:
    read, _ = apps
    status, body = get(read, "/v1/traces/" + "0" * 32)
    assert status == 404 and "0" * 32 in body["message"]
    status, body = get(read, "/v1/sessions/nobody/skew")
    assert status == 404 and "nobody" in body["message"]
    response = read.handle(build_event("POST", "/v1/sessions", [], b"", 0))
    assert response["statusCode"] == 405
    status, _ = get(read, "/v1/nothing")
    assert status == 404


def test_default_day_is_today_utc(apps: Any) -> None:
    from datetime import UTC, datetime

    read, _ = apps
    _, doc = get(read, "/v1/sessions")
    assert doc["day"] == datetime.now(tz=UTC).strftime("%Y-%m-%d")
