"""tests/fixtures/otel-js/: what its README promises, and the capture that made it still works.

The committed exports are checked against the capture's own checks (no browser needed); then
the capture runs again into a temporary directory (real OTel JS in headless Chromium, ~15 s)
and must produce files of the same shape: same names, headers, resource, spans, attributes
and events — only ids and times differ.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import capture_fixtures
import pytest
from capture_fixtures import CASES, UNITS, CaptureError, check, faketime_lib
from support import CHROMIUM, FIXTURES


def load(directory: Path) -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(directory.glob("export-*.json"))}


def test_committed_fixtures_keep_their_promises() -> None:
    files = load(FIXTURES)
    assert sorted(files) == [f"export-{n}.json" for n in range(1, 9)]
    for case in CASES:
        check(case, [files[f"export-{case.first + i}.json"] for i in range(UNITS)])
    readme = (FIXTURES / "README.md").read_text()
    assert "make fixtures" in readme and "capture_fixtures.py" in readme


def shape(value: Any) -> Any:
    """``value`` with ids, times and other run-specific strings replaced by their kind."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in ("traceId", "spanId", "parentSpanId") or key.endswith("UnixNano"):
                out[key] = type(item).__name__
            elif key in ("received_at_ms", "x-sent-at", "origin", "user-agent"):
                out[key] = "<run>"
            else:
                out[key] = shape(item)
        return out
    if isinstance(value, list):
        return [shape(item) for item in value]
    return value


def test_capture_reproduces_the_committed_shape(tmp_path: Path) -> None:
    missing = None
    if not os.access(CHROMIUM, os.X_OK):
        missing = f"{CHROMIUM} not found (Debian package chromium)"
    elif faketime_lib() is None:
        missing = "libfaketime not found (Debian package faketime)"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing} (.ci/run installs it)")
        pytest.skip(missing)
    try:
        written = capture_fixtures.capture(tmp_path)
    except CaptureError as exc:
        pytest.fail(str(exc))
    assert len(written) == 8
    fresh, committed = load(tmp_path), load(FIXTURES)
    assert sorted(fresh) == sorted(committed)
    for name in committed:
        assert shape(fresh[name]) == shape(committed[name]), name
