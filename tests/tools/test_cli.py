"""The ``skewgate`` CLI against DynamoDB Local: every command, --json equal to the read routes,
empty results, unknown ids, bad usage, plots.

Uses the seeded table of ``conftest.py``: browsers with known clock errors on 2026-01-01 and
the views' hard cases on 2026-01-05.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
from scenarios import ACROSS, D1, D2, EMPTY_DAY, PER_SESSION
from views_data import (
    DEEP_NAMES,
    LATE_NAME,
    LONG_SESSION,
    MANY_TRACES,
    STRESS_DAY,
    UUID_SESSION,
    deep_trace_id,
)

from skewgate.aws.read import (
    ReadApp,
    SessionsDocument,
    SkewDocument,
    StatsDocument,
    TraceDocument,
)
from skewgate.aws.store import Store
from skewgate_tools.cli import main
from skewgate_tools.cli_format import fmt_ns_time
from skewgate_tools.local.dynamodb import free_port
from skewgate_tools.local.server import build_event
from skewgate_tools.plot import plot_skew


@pytest.fixture(autouse=True)
def _wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "220")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def route_body(ddb_client: Any, table: str, target: str) -> str:
    response = ReadApp(Store(ddb_client, table)).handle(build_event("GET", target, [], b"", 0))
    assert response["statusCode"] == 200, response
    body: str = response["body"]
    return body


def first_trace(capsys: pytest.CaptureFixture[str], table: str, session: str) -> str:
    code, out, _ = run(capsys, "--table", table, "skew", session, "--json")
    assert code == 0
    trace: str = json.loads(out)["samples"][0]["trace_ids"][0]
    return trace


def test_sessions_table(capsys: pytest.CaptureFixture[str], seeded_table: str) -> None:
    code, out, err = run(capsys, "--table", seeded_table, "sessions", "--day", D1)
    assert code == 0, err
    assert f"Sessions on {D1} (UTC), most skewed first" in out
    lines = [line for line in out.splitlines() if "demo-" in line]
    assert len(lines) == 6
    assert "demo-behind-2d" in lines[0] and "+2.00 d" in lines[0] and "send_time" in lines[0]
    assert "demo-jump-3h" in lines[1]
    assert f"{PER_SESSION}/{PER_SESSION}" in lines[0]
    synced = next(line for line in lines if "demo-in-sync" in line)
    assert "causality" in synced and f"0/{PER_SESSION}" in synced and "0 ms" in synced


@pytest.mark.parametrize(
    ("argv", "target"),
    [
        (["sessions", "--day", D1], f"/v1/sessions?day={D1}"),
        (["sessions", "--day", D2], f"/v1/sessions?day={D2}"),
        (["sessions", "--day", D1, "--min-offset-ms", "1000"],
         f"/v1/sessions?day={D1}&min_offset_ms=1000"),
        (["sessions", "--day", D1, "--limit", "2"], f"/v1/sessions?day={D1}&limit=2"),
        (["sessions", "--day", EMPTY_DAY], f"/v1/sessions?day={EMPTY_DAY}"),
        (["skew", "demo-jump-3h"], "/v1/sessions/demo-jump-3h/skew"),
        (["skew", ACROSS.session_id], f"/v1/sessions/{ACROSS.session_id}/skew"),
        (["stats", "--day", D1], f"/v1/stats?day={D1}"),
        (["stats", "--day", EMPTY_DAY], f"/v1/stats?day={EMPTY_DAY}"),
    ],
)
def test_json_is_the_read_routes_json(
    capsys: pytest.CaptureFixture[str], ddb_client: Any, seeded_table: str, argv: list[str],
    target: str,
) -> None:
    expected = route_body(ddb_client, seeded_table, target) + "\n"
    code, out, _ = run(capsys, "--table", seeded_table, *argv, "--json")
    assert code == 0 and out == expected
    code, out, _ = run(capsys, "--json", "--table", seeded_table, *argv)
    assert code == 0 and out == expected


def test_trace_json_is_the_route_json(
    capsys: pytest.CaptureFixture[str], ddb_client: Any, seeded_table: str
) -> None:
    trace = first_trace(capsys, seeded_table, "demo-behind-2d")
    code, out, _ = run(capsys, "--table", seeded_table, "trace", trace, "--json")
    assert code == 0
    assert out == route_body(ddb_client, seeded_table, f"/v1/traces/{trace}") + "\n"
    # Through its session (how a table written with TRACE_INDEX=false is read): the same.
    code, by_session, _ = run(capsys, "--table", seeded_table, "trace", trace, "--session",
                              "demo-behind-2d", "--json")
    assert code == 0 and by_session == out
    assert by_session == route_body(
        ddb_client, seeded_table, f"/v1/traces/{trace}?session=demo-behind-2d"
    ) + "\n"


def test_documents_match_the_models(
    capsys: pytest.CaptureFixture[str], ddb_client: Any, seeded_table: str
) -> None:
    trace = first_trace(capsys, seeded_table, "demo-jump-3h")
    for model, target in [
        (SessionsDocument, f"/v1/sessions?day={D1}&limit=2"),
        (SkewDocument, "/v1/sessions/demo-jump-3h/skew"),
        (SkewDocument, "/v1/sessions/demo-jump-3h/skew?limit=3"),
        (TraceDocument, f"/v1/traces/{trace}"),
        (StatsDocument, f"/v1/stats?day={D1}"),
    ]:
        document = json.loads(route_body(ddb_client, seeded_table, target))
        assert msgspec.to_builtins(msgspec.convert(document, model)) == document


def test_sessions_filter_and_cursor(capsys: pytest.CaptureFixture[str], seeded_table: str) -> None:
    code, out, _ = run(capsys, "--table", seeded_table, "sessions", "--day", D1,
                       "--min-offset-ms", "3600000")
    assert code == 0
    assert [line for line in out.splitlines() if "demo-" in line][1].count("demo-jump-3h") == 1
    assert "demo-ahead-800ms" not in out
    code, out, _ = run(capsys, "--table", seeded_table, "sessions", "--day", D1, "--limit", "4")
    assert code == 0
    more = [line for line in out.splitlines() if line.startswith("more: ")]
    assert len(more) == 1
    cursor = more[0].split("--cursor ")[1].strip()
    code, rest, _ = run(capsys, "--table", seeded_table, "sessions", "--day", D1, "--cursor",
                        cursor)
    assert code == 0
    first = {line.split()[0] for line in out.splitlines() if line.startswith("demo-")}
    second = {line.split()[0] for line in rest.splitlines() if line.startswith("demo-")}
    assert len(first) == 4 and len(second) == 2 and not first & second


def test_empty_results_say_so(capsys: pytest.CaptureFixture[str], seeded_table: str) -> None:
    code, out, err = run(capsys, "--table", seeded_table, "sessions", "--day", EMPTY_DAY)
    assert (code, out.strip(), err) == (0, f"no sessions on {EMPTY_DAY}", "")
    code, out, _ = run(capsys, "--table", seeded_table, "sessions", "--day", D1,
                       "--min-offset-ms", "1e12")
    assert code == 0 and out.startswith(f"no sessions on {D1} with max proven |θ| >= ")
    code, out, _ = run(capsys, "--table", seeded_table, "stats", "--day", EMPTY_DAY)
    assert (code, out.strip()) == (0, f"no sessions on {EMPTY_DAY}")


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_unknown_ids_exit_1(
    capsys: pytest.CaptureFixture[str], seeded_table: str, json_flag: list[str]
) -> None:
    code, out, err = run(capsys, "--table", seeded_table, "skew", "never-seen", *json_flag)
    assert (code, out) == (1, "")
    assert err.strip() == f"skewgate: unknown session 'never-seen' in table '{seeded_table}'"
    code, out, err = run(capsys, "--table", seeded_table, "trace", "f" * 32, *json_flag)
    assert (code, out) == (1, "")
    assert "unknown trace 'ffffffff" in err and "TRACE_INDEX=false" in err and "--session" in err
    code, out, err = run(capsys, "--table", seeded_table, "trace", "f" * 32, "--session",
                         "demo-behind-2d", *json_flag)
    assert (code, out) == (1, "")
    assert f"in session 'demo-behind-2d' in table '{seeded_table}'" in err


def test_skew_table(capsys: pytest.CaptureFixture[str], seeded_table: str) -> None:
    code, out, _ = run(capsys, "--table", seeded_table, "skew", "demo-jump-3h")
    assert code == 0
    assert f"Skew of session demo-jump-3h: {PER_SESSION} samples in receipt order" in out
    rows = [line for line in out.splitlines() if "send_time" in line]
    assert len(rows) == PER_SESSION
    assert sum("jump" in row for row in rows) >= 1
    assert "-7" in rows[0] and " ms " in rows[0]  # about 800 ms ahead: θ ≈ -780 ms
    assert "+3.00 h" in rows[-1]
    code, out, _ = run(capsys, "--table", seeded_table, "skew", ACROSS.session_id)
    assert "2026-01-01 23:58:30.000" in out and "2026-01-02 00:00:00.000" in out


def test_trace_table(capsys: pytest.CaptureFixture[str], seeded_table: str) -> None:
    trace = first_trace(capsys, seeded_table, "demo-behind-2d")
    code, out, _ = run(capsys, "--table", seeded_table, "trace", trace)
    assert code == 0
    assert f"Trace {trace}: 3 spans" in out and "session demo-behind-2d" in out
    rows = [line for line in out.splitlines() if "page-load" in line or "fetch /api" in line]
    assert len(rows) == 3
    for row in rows:
        # Raw times two days before the corrected ones, moved by θ ≈ +2 d.
        assert "12-30 08:59" in row and "01-01 08:59" in row and row.count("+2.00 d") == 2
    assert rows[0].startswith("page-load ")
    assert rows[1].startswith("  fetch /api/")  # children indented under the root


def test_stats_table(capsys: pytest.CaptureFixture[str], seeded_table: str) -> None:
    code, out, _ = run(capsys, "--table", seeded_table, "stats", "--day", D1)
    assert code == 0
    assert f"Sessions on {D1} (UTC) proven skewed beyond" in out
    assert f"Batches on {D1} (UTC) proven skewed beyond" in out
    assert "> 100 ms" in out and "> 1 h" in out
    batches_all = [line for line in out.splitlines() if line.startswith("all ")][1]
    assert re.match(rf"all\s+{5 * PER_SESSION + 3}\s", batches_all), batches_all
    assert "jumps: 1" in out


@pytest.mark.parametrize("suffix", [".png", ".svg", ".html"])
def test_skew_plot(
    capsys: pytest.CaptureFixture[str], seeded_table: str, tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"jump{suffix}"
    code, out, err = run(capsys, "--table", seeded_table, "skew", "demo-jump-3h", "--plot",
                         str(path))
    assert code == 0 and f"wrote {path}" in err and "Skew of session" in out
    data = path.read_bytes()
    if suffix == ".png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000
    else:
        text = data.decode()
        assert "Clock offset of session demo-jump-3h" in text
        assert "<svg" in text
        if suffix == ".html":
            assert text.startswith("<!doctype html>") and text.count("<tr>") == PER_SESSION + 1
            for external in ("<script", "<link", "src=", "@import", "url(http"):
                assert external not in text  # self-contained


def test_plot_of_unbounded_and_single_samples(tmp_path: Path) -> None:
    base = {"offset_ms": 40.0, "method": "none", "applied": False, "jump": False, "flags": [],
            "span_count": 1, "trace_ids": ["a" * 32]}
    doc = {"session_id": "s", "samples": [
        {**base, "received_at_ms": 1_767_258_000_000, "lower_ms": None, "upper_ms": 50.0},
        {**base, "received_at_ms": 1_767_258_030_000, "lower_ms": -60_000.0, "upper_ms": None},
        {**base, "received_at_ms": 1_767_258_060_000, "lower_ms": None, "upper_ms": None,
         "jump": True},
    ]}
    svg = plot_skew(doc, tmp_path / "u.svg").read_text()
    assert "unbounded side (clipped)" in svg and "clock jump" in svg
    plot_skew({"session_id": "s", "samples": doc["samples"][:1]}, tmp_path / "one.png")
    with pytest.raises(ValueError, match="no samples"):
        plot_skew({"session_id": "s", "samples": []}, tmp_path / "none.png")


def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str], seeded_table: str) -> None:
    for argv in (["sessions", "--day", "2026-13-01"], ["sessions", "--limit", "0"],
                 ["sessions", "--min-offset-ms", "-5"], ["skew", "x", "--plot", "x.pdf"],
                 ["nope"], []):
        with pytest.raises(SystemExit) as exc:
            main(["--table", seeded_table, *argv])
        assert exc.value.code == 2, argv
    capsys.readouterr()
    code, _, err = run(capsys, "--table", seeded_table, "sessions", "--day", D1, "--cursor", "!")
    assert code == 2 and "malformed cursor" in err


def test_storage_errors_exit_1(capsys: pytest.CaptureFixture[str], seeded_table: str) -> None:
    code, out, err = run(capsys, "--table", "no-such-table", "sessions")
    assert (code, out) == (1, "")
    assert "table 'no-such-table' not found" in err
    endpoint = f"http://127.0.0.1:{free_port()}"
    code, out, err = run(capsys, "--endpoint-url", endpoint, "--table", seeded_table, "stats")
    assert (code, out) == (1, "")
    assert f"is `make run` / DynamoDB Local running at {endpoint}?" in err


def test_connection_defaults(
    capsys: pytest.CaptureFixture[str], seeded_table: str, monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # No credentials, no region, no AWS config: a loopback endpoint still works...
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("TABLE_NAME", seeded_table)
    code, out, _ = run(capsys, "sessions", "--day", D2, "--json")
    assert code == 0 and json.loads(out)["sessions"][0]["session_id"] == ACROSS.session_id
    # ... while a real AWS endpoint needs a region.
    code, _, err = run(capsys, "--endpoint-url", "https://dynamodb.example.invalid", "sessions")
    assert code == 2 and "no AWS region" in err


def test_console_script_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "skewgate_tools.cli", "--help"], capture_output=True, text=True,
        timeout=60, check=False,
    )
    assert result.returncode == 0
    for command in ("sessions", "skew", "trace", "stats", "dashboard"):
        assert command in result.stdout


@pytest.mark.parametrize(
    "name",
    ["skewgate_tools.cli_format", "skewgate_tools.demo", "skewgate_tools.plot"],
)
def test_docstring_examples(name: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# --- an 80-column terminal -----------------------------------------------------------------


def narrow(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *argv: str
           ) -> str:
    """The output at COLUMNS=80; fails if any line is wider."""
    from rich.cells import cell_len

    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    wide = [line for line in out.splitlines() if cell_len(line) > 80]
    assert not wide, "\n".join(wide)
    return out


def first_column(out: str) -> str:
    """The first column's text, folded lines joined: where a folded id is read back whole."""
    body = out.split("─\n", 1)[1]
    return "".join(line.split("  ", 1)[0] for line in body.splitlines()
                   if line and not line.startswith(" "))


@pytest.mark.parametrize("day", [D1, D2, STRESS_DAY])
def test_sessions_fit_80_columns(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, seeded_table: str,
    day: str,
) -> None:
    out = narrow(capsys, monkeypatch, "--table", seeded_table, "sessions", "--day", day)
    document = json.loads(run(capsys, "--table", seeded_table, "sessions", "--day", day,
                              "--json")[1])
    ids = first_column(out)
    for s in document["sessions"]:
        assert s["session_id"] in ids  # folded over lines, never cut
        assert f"{s['corrected_batches']}/{s['batches']}" in out
        assert s["method"] in out
    if day == D1:
        row = next(line for line in out.splitlines() if line.startswith("demo-behind-2d"))
        assert "2.00 d" in row and "+2.00 d" in row and "09:03:30" in row
        assert "…" not in out


def test_skew_fits_80_columns_with_every_trace_and_flag(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, seeded_table: str,
) -> None:
    for session in (UUID_SESSION, "demo-jump-3h", ACROSS.session_id):
        out = narrow(capsys, monkeypatch, "--table", seeded_table, "skew", session)
        document = json.loads(run(capsys, "--table", seeded_table, "skew", session, "--json")[1])
        lines = out.splitlines()
        for s in document["samples"]:
            for trace in s["trace_ids"]:
                assert any(trace in line for line in lines), trace  # whole, to paste
            for flag in s["flags"]:
                assert any(flag in line for line in lines), flag
        assert "…" not in out
    out = narrow(capsys, monkeypatch, "--table", seeded_table, "skew", UUID_SESSION)
    assert "inconsistent_send_time" in out and "implausible_sync" in out
    assert sum(len(line.split()) == 1 and len(line.strip()) == 32 for line in out.splitlines()
               ) == MANY_TRACES - 1  # the batch's further traces, one per line
    out = narrow(capsys, monkeypatch, "--table", seeded_table, "skew", ACROSS.session_id)
    assert "23:58:30.000" in out and "00:00:00.000" in out and "01-02" in out
    out = narrow(capsys, monkeypatch, "--table", seeded_table, "skew", "demo-jump-3h")
    assert "+3.00 h" in out and "jump" in out


def test_trace_fits_80_columns(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, seeded_table: str,
) -> None:
    trace = deep_trace_id()
    out = narrow(capsys, monkeypatch, "--table", seeded_table, "trace", trace)
    document = json.loads(run(capsys, "--table", seeded_table, "trace", trace, "--json")[1])
    words = " ".join(out.split())
    assert f"{len(DEEP_NAMES) + 1} spans" in out
    assert "θ = -760 ms in [-10.74 s, -740 ms] (send_time), spans shifted by -760 ms" in words
    assert "(send_time), spans left alone" in words  # the later batch, causality alone
    assert "0 (left)" in out
    for span in document["spans"]:
        assert fmt_ns_time(span["raw_start_time_unix_nano"]) in out
        assert fmt_ns_time(span["start_time_unix_nano"]) in out
    header = next(line for line in out.splitlines() if line.startswith("span "))
    width = header.index("raw start")  # the names' column, up to the next one
    names = "".join(line[:width].strip() for line in out.split("─\n", 1)[1].splitlines())
    for name in [*DEEP_NAMES, LATE_NAME]:  # wrapped at spaces or folded, never cut
        assert name.replace(" ", "") in names.replace(" ", "")
    behind = first_trace(capsys, seeded_table, "demo-behind-2d")
    out = narrow(capsys, monkeypatch, "--table", seeded_table, "trace", behind)
    assert "12-30" in out and "01-01" in out and "+2.00 d" in out


def test_stats_fit_80_columns(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, seeded_table: str,
) -> None:
    out = narrow(capsys, monkeypatch, "--table", seeded_table, "stats", "--day", D1)
    assert "> 1 h" in out and "corrected batches: " in out


def test_counts_are_singular_for_one(
    capsys: pytest.CaptureFixture[str], seeded_table: str
) -> None:
    code, out, _ = run(capsys, "--table", seeded_table, "skew", LONG_SESSION)
    assert code == 0 and f"Skew of session {LONG_SESSION}: 1 sample in receipt order" in out
    trace = first_trace(capsys, seeded_table, LONG_SESSION)
    code, out, _ = run(capsys, "--table", seeded_table, "trace", trace)
    assert code == 0 and f"Trace {trace}: 1 span," in out
    code, out, _ = run(capsys, "--table", seeded_table, "sessions", "--day", D2)
    assert code == 0 and "most skewed first: 1 session\n" in out
