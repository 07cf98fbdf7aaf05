"""The read API's JSON is safe for JavaScript and the same, byte for byte, in ``skewgate --json``.

Fed the real OTel JS exports (tests/fixtures/otel-js), every document of every read route:

- ``*_unix_nano`` are decimal strings (OTLP/JSON style): as numbers they are above 2^53 and a
  JavaScript reader would round them;
- no JSON number is an integer beyond 2^53 or a float with more than three decimals:
  milliseconds are kept to the microsecond (no ``172790003.74299997``);
- the CLI's ``--json`` prints exactly the route's body, plus a newline.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from support import FIXTURES

from skewgate.aws.ingest import IngestApp
from skewgate.aws.read import ReadApp
from skewgate.aws.settings import IngestSettings
from skewgate.aws.store import Store
from skewgate_tools.cli import main
from skewgate_tools.local.server import build_event

JS_SAFE = 2**53


def strict_numbers(text: str) -> Any:
    """Parse ``text``, failing on a number JavaScript would not read back exactly."""

    def parse_int(token: str) -> int:
        value = int(token)
        assert abs(value) < JS_SAFE, f"integer {token} is beyond 2^53"
        return value

    def parse_float(token: str) -> float:
        fraction = re.search(r"\.(\d+)", token)
        assert fraction is None or len(fraction[1]) <= 3, f"{token} has more than 3 decimals"
        assert "e" not in token.lower(), f"{token} is in exponent form"
        return float(token)

    return json.loads(text, parse_int=parse_int, parse_float=parse_float)


def walk(value: Any, path: str = "$") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in walk(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in walk(v, f"{path}[{i}]")]
    return [(path, value)]


def check_document(text: str) -> Any:
    document = strict_numbers(text)
    for path, value in walk(document):
        key = re.sub(r"\[\d+\]", "", path).rsplit(".", 1)[-1]
        if key.endswith("_unix_nano"):
            assert isinstance(value, str) and value.isdigit(), (path, value)
        if key.endswith("_ms") and value is not None:
            assert isinstance(value, int | float) and not isinstance(value, bool), (path, value)
    return document


@pytest.fixture
def stored(ddb_client: Any, table_name: str) -> tuple[ReadApp, list[str], list[str], str]:
    settings = IngestSettings.from_env({"TABLE_NAME": table_name})
    store = Store(ddb_client, table_name, settings.retention_seconds)
    ingest = IngestApp(settings, store)
    sessions, traces, days = set(), set(), set()
    for path in sorted(FIXTURES.glob("export-*.json")):
        fx = json.loads(path.read_text())
        headers = [(k, v) for k, v in fx["headers"].items()]
        event = build_event(
            "POST", "/v1/traces", headers, json.dumps(fx["body"]).encode(),
            int(fx["received_at_ms"]),
        )
        assert ingest.handle(event)["statusCode"] == 200
        days.add(datetime.fromtimestamp(fx["received_at_ms"] / 1000, UTC).strftime("%Y-%m-%d"))
        for rs in fx["body"]["resourceSpans"]:
            for kv in rs["resource"]["attributes"]:
                if kv["key"] == "session.id":
                    sessions.add(kv["value"]["stringValue"])
            for ss in rs["scopeSpans"]:
                traces.update(s["traceId"] for s in ss["spans"])
    (day,) = days
    return ReadApp(store), sorted(sessions), sorted(traces), day


def route(read: ReadApp, target: str) -> str:
    response = read.handle(build_event("GET", target, [], b"", 0))
    assert response["statusCode"] == 200, response
    body: str = response["body"]
    return body


def test_read_documents_are_javascript_safe_and_the_cli_prints_them(
    stored: tuple[ReadApp, list[str], list[str], str],
    table_name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    read, sessions, traces, day = stored
    targets = [
        (f"/v1/sessions?day={day}", ["sessions", "--day", day]),
        (f"/v1/stats?day={day}", ["stats", "--day", day]),
        *[(f"/v1/sessions/{s}/skew", ["skew", s]) for s in sessions],
        *[(f"/v1/traces/{t}", ["trace", t]) for t in traces],
    ]
    nanos = 0
    for target, argv in targets:
        body = route(read, target)
        document = check_document(body)
        nanos += sum(1 for p, _ in walk(document) if p.endswith("_unix_nano"))
        assert main(["--table", table_name, *argv, "--json"]) == 0
        out, _ = capsys.readouterr()
        assert out == body + "\n", target
    assert nanos >= 4 * 3 * len(traces)  # raw and corrected start and end of every span


def test_the_checks_catch_what_the_issue_saw() -> None:
    with pytest.raises(AssertionError, match="more than 3 decimals"):
        strict_numbers('{"upper_ms": 172790003.74299997}')
    with pytest.raises(AssertionError, match="beyond 2"):
        strict_numbers('{"start_time_unix_nano": 1795651409407000000}')
    with pytest.raises(AssertionError):
        check_document('{"start_time_unix_nano": 1}')
