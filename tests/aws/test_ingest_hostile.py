"""Hostile headers and ids through the real handler and DynamoDB Local: never a 500."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skewgate.aws.ingest import IngestApp
from skewgate.aws.settings import IngestSettings
from skewgate.aws.store import Store
from skewgate_tools.local.server import build_event

header_text = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60),
    st.sampled_from(["1e300", "-1e300", "nan", "inf", "0", "-5", "1795651409984.5", ""]),
    st.builds(
        lambda a, b, c, d: f"t0={a};t1={b};t2={c};t3={d}",
        *[st.sampled_from(["1", "1e300", "-1e300", "nan", "1795651409000", "x"])] * 4,
    ),
)


def batch(session_id: str, n: int) -> bytes:
    """One span; ``n`` makes its ids, so no example is a retry of an earlier one."""
    return json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [{"key": "session.id", "value": {"stringValue": session_id}}]
                    },
                    "scopeSpans": [
                        {
                            "spans": [
                                {
                                    "traceId": "0af7651916cd43dd8448eb211c80319c",
                                    "spanId": f"{n + 1:016x}",
                                    "startTimeUnixNano": "1795651409000000000",
                                    "endTimeUnixNano": "1795651409500000000",
                                }
                            ]
                        }
                    ],
                }
            ]
        }
    ).encode()


def test_hostile_headers_and_session_ids_never_500(ddb_client: Any, table_name: str) -> None:
    counter: list[int] = []
    settings_ = IngestSettings.from_env({"TABLE_NAME": table_name})
    app = IngestApp(settings_, Store(ddb_client, table_name))

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        sent_at=header_text,
        sync=header_text,
        session=st.one_of(st.text(max_size=30), st.just("s" * 5000)),
        header_session=header_text,
    )
    def check(sent_at: str, sync: str, session: str, header_session: str) -> None:
        counter.append(1)
        event = build_event(
            "POST",
            "/v1/traces",
            [
                ("content-type", "application/json"),
                ("x-sent-at", sent_at),
                ("x-clock-sync", sync),
                ("x-session-id", header_session),
            ],
            batch(session, len(counter)),
            1_795_651_410_000,
        )
        response = app.handle(event)
        assert response["statusCode"] == 200, response

    check()


def test_a_session_id_too_long_for_a_key_is_stored_without_session(
    ddb_client: Any, table_name: str
) -> None:
    from skewgate.aws.read import ReadApp

    store = Store(ddb_client, table_name)
    app = IngestApp(IngestSettings.from_env({"TABLE_NAME": table_name}), store)
    event = build_event(
        "POST", "/v1/traces", [("content-type", "application/json")], batch("s" * 5000, 7), 10_000
    )
    assert app.handle(event)["statusCode"] == 200
    trace = ReadApp(store).handle(
        build_event("GET", "/v1/traces/0af7651916cd43dd8448eb211c80319c", [], b"", 0)
    )
    assert trace["statusCode"] == 200
    assert json.loads(trace["body"])["spans"][0]["session_id"] is None


def test_a_send_time_decades_away_is_ignored_and_flagged(ddb_client: Any, table_name: str) -> None:
    from skewgate.aws.read import ReadApp

    store = Store(ddb_client, table_name)
    app = IngestApp(IngestSettings.from_env({"TABLE_NAME": table_name}), store)
    for n, sent in enumerate(("1e300", "-1e300", "nan")):
        event = build_event(
            "POST",
            "/v1/traces",
            [("content-type", "application/json"), ("x-sent-at", sent)],
            batch("decades", 100 + n),
            1_795_651_410_000 + n,
        )
        assert app.handle(event)["statusCode"] == 200
    skew = ReadApp(store).handle(build_event("GET", "/v1/sessions/decades/skew", [], b"", 0))
    for sample in json.loads(skew["body"])["samples"]:
        assert "bad_sent_at" in sample["flags"]
        assert sample["method"] == "causality"
