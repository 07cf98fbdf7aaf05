"""Fleet metrics: the EMF lines the ingest writes to stdout (CloudWatch reads them from the
function's log), checked against the EMF specification and against what the batch measured."""

from __future__ import annotations

import json
from typing import Any

import pytest

from skewgate.aws.ingest import BatchOutcome, IngestApp
from skewgate.aws.metrics import OFFSET_BUCKETS, EmfMetricsSink, offset_bucket
from skewgate.aws.settings import IngestSettings
from skewgate.aws.store import Store
from skewgate.clock import Flag, Method, SkewEstimate
from skewgate_tools.demo import SCENARIOS, scenario_events

AHEAD = SkewEstimate(-800.0, -10_780.0, -780.0, Method.SEND_TIME, applied=True)
SYNCED_CAUSALITY = SkewEstimate(4_980.0, -55_000.0, 5_000.0, Method.CAUSALITY, applied=False)
JUMPED = SkewEstimate(10_800_000.0, 10_790_000.0, 10_800_020.0, Method.NTP, applied=True,
                      jump=True, flags=(Flag.CLOCK_DRIFT, Flag.JUMP))


def emf_lines(text: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in text.splitlines() if line.startswith('{"_aws"')]
    for line in lines:
        assert_valid_emf(line)
    return lines


def assert_valid_emf(blob: dict[str, Any]) -> None:
    """The parts of the EMF specification CloudWatch enforces on a log line."""
    meta = blob["_aws"]
    assert isinstance(meta["Timestamp"], int) and meta["Timestamp"] > 1_600_000_000_000
    (directive,) = meta["CloudWatchMetrics"]
    assert directive["Namespace"] == "Skewgate"
    for dimension_set in directive["Dimensions"]:
        assert 1 <= len(dimension_set) <= 30
        for name in dimension_set:
            assert isinstance(blob[name], str) and blob[name]
    assert len(directive["Metrics"]) <= 100
    for metric in directive["Metrics"]:
        value = blob[metric["Name"]]
        values = value if isinstance(value, list) else [value]
        assert values and all(isinstance(v, int | float) for v in values)
        assert metric["Unit"] in ("Count", "Milliseconds")


@pytest.fixture(autouse=True)
def _service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "skewgate")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Skewgate")
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)


def test_one_line_per_session_with_every_metric(capsys: pytest.CaptureFixture[str]) -> None:
    outcome = BatchOutcome("b1", 7, 0, estimates=[("s1", AHEAD), ("s2", SYNCED_CAUSALITY),
                                                 ("s3", JUMPED)])
    EmfMetricsSink().record_batch(outcome)
    lines = emf_lines(capsys.readouterr().out)
    assert len(lines) == 3
    for line in lines:
        (directive,) = line["_aws"]["CloudWatchMetrics"]
        # One dimension set: the three low-cardinality dimensions and Powertools' service.
        assert directive["Dimensions"] == [["method", "corrected", "offset_bucket", "service"]]
        assert [m["Name"] for m in directive["Metrics"]] == [
            "Batches", "AbsOffsetMs", "Jumps", "ClockDrifts", "Spans"
        ]
        assert "session" not in json.dumps(line) and "s1" not in line.values()
    ahead, synced, jumped = lines
    assert (ahead["method"], ahead["corrected"], ahead["offset_bucket"]) == (
        "send_time", "true", "100ms_1s"
    )
    assert ahead["Batches"] == [1.0] and ahead["AbsOffsetMs"] == [800.0]
    assert ahead["Jumps"] == [0.0] and ahead["Spans"] == [7.0]
    # In sync, causality only: the point estimate (~5 s of queueing) is not skew.
    assert (synced["method"], synced["corrected"], synced["offset_bucket"]) == (
        "causality", "false", "lt_50ms"
    )
    assert synced["Spans"] == [0.0]  # the batch's spans are counted once, on its first line
    assert (jumped["offset_bucket"], jumped["Jumps"]) == ("ge_1h", [1.0])
    # Drift (the companion saw its clocks disagree, or spans far older than the send time) is
    # counted beside the jump, per session line.
    assert jumped["ClockDrifts"] == [1.0] and ahead["ClockDrifts"] == [0.0]
    assert sum(line["Spans"][0] for line in lines) == outcome.span_count


def test_sleep_drift_counts_as_drift(capsys: pytest.CaptureFixture[str]) -> None:
    drifted = SkewEstimate(-5.0, None, -5.0, Method.CAUSALITY, applied=False,
                           flags=(Flag.SLEEP_DRIFT,))
    EmfMetricsSink().record_batch(BatchOutcome("b2", 1, 0, estimates=[("s", drifted)]))
    (line,) = emf_lines(capsys.readouterr().out)
    assert line["ClockDrifts"] == [1.0] and line["Jumps"] == [0.0]


@pytest.mark.parametrize(
    ("lower", "upper", "bucket"),
    [
        (None, None, "lt_50ms"),
        (-55_000.0, 5_000.0, "lt_50ms"),
        (-10_040.0, -40.0, "lt_50ms"),
        (50.0, 80.0, "50ms_100ms"),
        (-10_099.0, -99.9, "50ms_100ms"),
        (100.5, 130.0, "100ms_1s"),
        (None, -999.0, "100ms_1s"),
        (1_000.0, None, "1s_1h"),
        (-7_200_000.0, -3_599_999.0, "1s_1h"),
        (3_600_000.0, 3_600_020.0, "ge_1h"),
        (172_790_000.0, 172_800_000.0, "ge_1h"),
    ],
)
def test_offset_bucket_is_the_proven_offset(lower: float | None, upper: float | None,
                                            bucket: str) -> None:
    assert offset_bucket(lower, upper) == bucket
    assert bucket in OFFSET_BUCKETS


def test_ingest_emits_metrics_for_stored_batches_only(
    capsys: pytest.CaptureFixture[str], ddb_client: Any, table_name: str
) -> None:
    settings = IngestSettings.from_env({"TABLE_NAME": table_name})
    ingest = IngestApp(settings, Store(ddb_client, table_name), metrics=EmfMetricsSink())
    behind = SCENARIOS[2]  # two days behind, X-Sent-At
    events = scenario_events(behind, start_ms=1_767_258_000_000, count=2)
    for event in events:
        assert ingest.handle(event)["statusCode"] == 200
    lines = emf_lines(capsys.readouterr().out)
    assert len(lines) == 2
    for line in lines:
        assert (line["method"], line["corrected"], line["offset_bucket"]) == (
            "send_time", "true", "ge_1h"
        )
        assert line["Spans"] == [3.0]
        assert abs(line["AbsOffsetMs"][0] - 2 * 86_400_000) < 1_000
    # A retry of a stored batch is answered from its marker: no second count.
    assert ingest.handle(events[0])["statusCode"] == 200
    assert emf_lines(capsys.readouterr().out) == []


def test_a_metrics_failure_never_fails_the_batch(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(self: Any, *args: Any, **kwargs: Any) -> list[str]:
        raise RuntimeError("boom")

    monkeypatch.setattr(EmfMetricsSink, "lines", broken)
    EmfMetricsSink().record_batch(BatchOutcome("b2", 1, 0, estimates=[("s", AHEAD)]))
    assert "could not emit EMF metrics for batch b2" in caplog.text
    assert capsys.readouterr().out == ""


def test_metrics_can_be_disabled(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    EmfMetricsSink().record_batch(BatchOutcome("b3", 1, 0, estimates=[("s", AHEAD)]))
    assert emf_lines(capsys.readouterr().out) == []


def test_spans_are_counted_per_session(capsys: pytest.CaptureFixture[str]) -> None:
    outcome = BatchOutcome(
        "b4", 7, 0, estimates=[("s1", AHEAD), ("s2", SYNCED_CAUSALITY)], session_spans=[5, 2]
    )
    EmfMetricsSink().record_batch(outcome)
    first, second = emf_lines(capsys.readouterr().out)
    assert first["Spans"] == [5.0] and second["Spans"] == [2.0]
