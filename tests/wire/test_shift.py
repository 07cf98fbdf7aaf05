"""The adjusted copy of a JSON body, held to an oracle that edits the parsed document: the
split patch, the streamed pieces of large bodies, and their way back when a patch cannot be
trusted."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from benchmarks.pipeline import otel_js_body
from skewgate.clock import PlanConfig, RequestFacts, plan_batch
from skewgate.wire import JSON, Limits
from skewgate.wire.blob import unpack
from skewgate.wire.decode import decode_json
from skewgate.wire.scan import scan_request
from skewgate.wire.shift import (
    STREAM_ABOVE,
    PatchMismatch,
    shift_json,
    shifted_json_pieces,
    time_counts,
)

FACTS = [[("clock_skew.offset_ms", -800.0), ("clock_skew.method", "send_time")]]


def expected(body: bytes, shift: int, facts: list[list[tuple[str, Any]]]) -> Any:
    """What the adjusted copy must parse to: every non-zero time moved (never below 0), each
    resource's facts first in its attributes."""
    doc = copy.deepcopy(json.loads(body))

    def moved(value: str | int) -> str | int:
        n = int(value)
        out = max(n + shift, 0) if n else 0
        return str(out) if isinstance(value, str) else out

    for rs, resource_facts in zip(doc["resourceSpans"], facts, strict=True):
        kvs = []
        for key, value in resource_facts:
            kind = "doubleValue" if isinstance(value, float) else "stringValue"
            kvs.append({"key": key, "value": {kind: value}})
        rs["resource"]["attributes"][:0] = kvs
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for key in ("startTimeUnixNano", "endTimeUnixNano"):
                    span[key] = moved(span[key])
                for event in span["events"]:
                    event["timeUnixNano"] = moved(event["timeUnixNano"])
    return doc


def times_of(body: bytes) -> tuple[int, int]:
    counts, total = time_counts(decode_json(body))
    return sum(counts), total


@pytest.mark.parametrize("piece_bytes", [1, 700, 1 << 16])
@pytest.mark.parametrize("shift", [-800_000_000, 3_600_000_000_000, -(10**30)])
def test_pieces_are_the_adjusted_copy(piece_bytes: int, shift: int) -> None:
    body, _ = otel_js_body(40)
    pieces = list(shifted_json_pieces(body, shift, FACTS, times_of(body),
                                      piece_bytes=piece_bytes))
    assert len(pieces) > 1 or piece_bytes > len(body)
    adjusted = b"".join(pieces)
    assert json.loads(adjusted) == expected(body, shift, FACTS)
    # The split patch of small bodies writes the very same bytes.
    assert adjusted == shift_json(body, shift, FACTS, times=times_of(body))


def test_zero_times_stay_zero_and_no_facts_insert_nothing() -> None:
    body, _ = otel_js_body(8)
    doc = json.loads(body)
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["startTimeUnixNano"] = "0"
    body = json.dumps(doc, separators=(",", ":")).encode()
    adjusted = b"".join(shifted_json_pieces(body, 5, [[]], times_of(body)))
    assert json.loads(adjusted) == expected(body, 5, [[]])


def test_a_time_the_scan_did_not_count_is_a_mismatch() -> None:
    body, _ = otel_js_body(8)
    count, total = times_of(body)
    with pytest.raises(PatchMismatch):
        list(shifted_json_pieces(body, 5, FACTS, (count + 1, total)))
    with pytest.raises(PatchMismatch):  # two resources' facts for a body that has one
        list(shifted_json_pieces(body, 5, FACTS * 2, (count, total)))


def plan_large(body: bytes, sent_ms: float) -> tuple[bytes, bytes]:
    limits = Limits(max_spans=20_000)
    facts = RequestFacts(received_at_ms=sent_ms - 770.0, sent_at=repr(sent_ms))
    plan = plan_batch(scan_request(body, JSON, limits), facts, {},
                      PlanConfig(limits=limits, max_traces=1_000))
    assert plan.record.body is not None
    raw, adjusted = unpack(b"".join(plan.chunks), plan.record.body)
    assert raw == body and adjusted is not None
    return adjusted, json.dumps(plan.record.sessions[0].offset_ms).encode()


def test_a_large_body_is_streamed_into_the_blob_and_reads_back_shifted() -> None:
    body, sent = otel_js_body(2_000)
    assert len(body) > STREAM_ABOVE
    adjusted, offset = plan_large(body, sent)
    shift = round(float(offset) * 1e6)
    facts = json.loads(adjusted)["resourceSpans"][0]["resource"]["attributes"][:3]
    assert facts[0] == {"key": "clock_skew.offset_ms", "value": {"doubleValue": float(offset)}}
    as_expected = expected(body, shift, [[]])
    as_expected["resourceSpans"][0]["resource"]["attributes"][:0] = [
        kv for kv in json.loads(adjusted)["resourceSpans"][0]["resource"]["attributes"]
        if kv["key"].startswith("clock_skew.")
    ]
    assert json.loads(adjusted) == as_expected


def test_a_large_body_with_a_stray_time_key_takes_the_decoding_way() -> None:
    body, sent = otel_js_body(2_000)
    # A field outside the model spelled like a time: the scan ignores it, the patch would not.
    body = body.replace(
        b'"flags":257}', b'"flags":257,"cpuTimeUnixNano":"1234567890123456789"}', 1
    )
    adjusted, offset = plan_large(body, sent)
    doc = json.loads(adjusted)
    first = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    raw_first = json.loads(body)["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    shift = round(float(offset) * 1e6)
    assert shift != 0
    assert int(first["startTimeUnixNano"]) == int(raw_first["startTimeUnixNano"]) + shift
    assert "cpuTimeUnixNano" not in first  # re-encoded from the model, which has no such field


def test_a_stray_key_the_quoted_patch_cannot_mistake_stays_as_received() -> None:
    # Not 19 digits: no model time looks like it, so the patch leaves it and shifts the rest.
    body, _ = otel_js_body(8)
    body = body.replace(b'"flags":257}', b'"flags":257,"cpuTimeUnixNano":"77"}', 1)
    adjusted = shift_json(body, -5, FACTS, times=times_of(body))
    assert adjusted.count(b'"cpuTimeUnixNano":"77"') == 1
    doc = json.loads(adjusted)
    del doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["cpuTimeUnixNano"]
    assert doc == expected(json.dumps(json.loads(body.replace(
        b',"cpuTimeUnixNano":"77"', b""))).encode(), -5, FACTS)


@pytest.mark.parametrize("quote", [b'"', b""])
def test_other_spellings_of_a_time_take_the_general_patch(quote: bytes) -> None:
    body, _ = otel_js_body(8)
    key = b'"startTimeUnixNano":"'
    first = body.index(key)
    end = body.index(b'"', first + len(key))
    digits = body[first + len(key) : end]
    # A space after the colon, or the time as a JSON number.
    body = body[:first] + b'"startTimeUnixNano": ' + quote + digits + quote + body[end + 1 :]
    adjusted = shift_json(body, 3_000, FACTS, times=times_of(body))
    assert json.loads(adjusted) == expected(body, 3_000, FACTS)


def test_per_span_shifts_move_each_span_by_its_own() -> None:
    # Two resources (two sessions' spans) shifted differently, one span of each left alone.
    first, _ = otel_js_body(6, session="a")
    second, _ = otel_js_body(4, session="b")
    doc = json.loads(first)
    doc["resourceSpans"] += json.loads(second)["resourceSpans"]
    body = json.dumps(doc, separators=(",", ":")).encode()
    shifts = [-800_000_000] * 5 + [0] + [3_000_000_000] * 3 + [0]
    counts, total = time_counts(decode_json(body))
    adjusted = shift_json(body, shifts, [[], []], times=(sum(counts), total), counts=counts)
    assert len(adjusted) == len(body)  # same bytes but the digits, which keep their width
    spans = [span for rs in json.loads(adjusted)["resourceSpans"] for span in
             rs["scopeSpans"][0]["spans"]]
    raw = [span for rs in doc["resourceSpans"] for span in rs["scopeSpans"][0]["spans"]]
    for span, before, shift in zip(spans, raw, shifts, strict=True):
        assert int(span["startTimeUnixNano"]) == int(before["startTimeUnixNano"]) + shift
        assert int(span["endTimeUnixNano"]) == int(before["endTimeUnixNano"]) + shift
        assert [int(e["timeUnixNano"]) for e in span["events"]] == [
            int(e["timeUnixNano"]) + shift for e in before["events"]
        ]
        assert {k: v for k, v in span.items() if "Time" not in k and k != "events"} == {
            k: v for k, v in before.items() if "Time" not in k and k != "events"
        }
