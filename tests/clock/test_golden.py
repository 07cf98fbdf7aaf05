"""The outgoing copy of a batch is byte for byte what the format-1 encoder wrote.

``tests/golden`` holds requests and, for four verdicts each, the raw and corrected span
messages the encoder of commit 1809f84 produced (tests/golden/README.md). The same requests,
checked by the ingest's scan, read back by :func:`skewgate.clock.read_back` under the same
verdicts and encoded by :func:`skewgate.clock.corrected_request`, must give the very same
spans under the very same resources and scopes, and reject the same spans.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from support import REPO

from skewgate.clock import Grouping, Method, SessionShift, corrected_request, read_back
from skewgate.wire import JSON, PROTOBUF, Limits
from skewgate.wire.protobuf import iter_fields
from skewgate.wire.scan import scan_request

GOLDEN = REPO / "tests" / "golden"
CASES: list[dict[str, Any]] = json.loads(
    gzip.decompress((GOLDEN / "expected.json.gz").read_bytes())
)["cases"]


def spans_of(request: bytes) -> Counter[tuple[bytes, bytes, bytes]]:
    """(resource field, scope field, span message) of every span of a serialized request."""
    out: Counter[tuple[bytes, bytes, bytes]] = Counter()
    for number, _fs, vs, ve in iter_fields(request):
        assert number == 1
        resource = b""
        scopes = []
        for n, fs, svs, sve in iter_fields(request, vs, ve):
            if n == 1:
                resource += request[fs:sve]
            elif n == 2:
                scopes.append((svs, sve))
        for svs, sve in scopes:
            scope = b""
            spans = []
            for n, fs, pvs, pve in iter_fields(request, svs, sve):
                if n == 1:
                    scope += request[fs:pve]
                elif n == 2:
                    spans.append(request[pvs:pve])
            for span in spans:
                out[(resource, scope, span)] += 1
    return out


def body_of(name: str) -> tuple[bytes, str]:
    path = next(GOLDEN.glob(f"{name}.*"))
    return path.read_bytes(), JSON if path.suffix == ".json" else PROTOBUF


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['input']}-{c['estimate_name']}")
def test_outgoing_spans_are_the_golden_ones(case: dict[str, Any]) -> None:
    body, kind = body_of(case["input"])
    limits = Limits()
    scan = scan_request(body, kind, limits)
    grouping = Grouping()
    groups = grouping.groups(scan)
    assert scan.rejected_spans == case["rejected_spans"]
    assert sorted(g.session_id or "" for g in groups) == sorted(
        g["session_id"] or "" for g in case["groups"]
    )
    for group in case["groups"]:
        mine = next(g for g in groups if g.session_id == group["session_id"])
        assert [scan.span_ids[i] for i in mine.indices] == group["span_ids"]
    e = case["estimate"]
    shifts = {
        g.session_id: SessionShift(
            session_id=g.session_id, offset_ms=e["offset_ms"], lower_ms=e["lower_ms"],
            upper_ms=e["upper_ms"], method=Method(e["method"]), applied=e["applied"],
        )
        for g in groups
    }
    ours = spans_of(corrected_request(read_back(body, kind, grouping, limits, shifts)))
    expected: Counter[tuple[bytes, bytes, bytes]] = Counter()
    for group in case["groups"]:
        for chunk in group["chunks"]:
            sent = chunk["corrected"] if e["applied"] else chunk["raw"]
            expected += spans_of(bytes.fromhex(sent))
    assert ours == expected


def test_the_golden_set_covers_what_it_claims() -> None:
    names = {c["input"] for c in CASES}
    assert {"rich-json", "rich-protobuf", "rich-protobuf-unvalidated"} <= names
    assert len([n for n in names if n.startswith("otel-js-")]) == 8
    assert {c["estimate_name"] for c in CASES} == {
        "shift-ahead", "shift-behind-days", "not-shifted", "no-upper"
    }
    assert any(c["rejected_spans"] for c in CASES)
    assert Path(GOLDEN / "README.md").is_file()
