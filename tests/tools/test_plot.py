"""The timeline picture (``skewgate skew --plot``), read back from the drawn matplotlib figure.

Documents come from the seeded DynamoDB Local table through the read API's own function.
Each case is also written as a PNG (to the test's tmp dir, and to $SKEWGATE_SCREENSHOT_DIR
when set) to look at.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import msgspec
import pytest
from scenarios import ACROSS
from views_data import LONG_SESSION, UUID_SESSION

from skewgate.aws.read import skew_document
from skewgate.aws.store import Store
from skewgate_tools.plot import hard_sides, plot_skew, skew_figure

# 09:03, 09:03:30, 09:03:30.250, with the date over it where the day changes.
TIME_LABEL = re.compile(r"(\d{2}-\d{2}\n)?\d{2}:\d{2}(:\d{2}(\.\d{3})?)?")
EDGE = "#3d7ab8"


def document(ddb_client: Any, table: str, session: str) -> dict[str, Any]:
    doc = skew_document(Store(ddb_client, table), session)
    assert doc is not None
    built: dict[str, Any] = msgspec.to_builtins(doc)
    return built


def drawn(doc: dict[str, Any], tmp_path: Path, name: str) -> Any:
    fig = skew_figure(doc)
    fig.canvas.draw()
    path = plot_skew(doc, tmp_path / f"{name}.png")
    assert path.read_bytes().startswith(b"\x89PNG")
    keep = os.environ.get("SKEWGATE_SCREENSHOT_DIR")
    if keep:
        shutil.copy(path, Path(keep) / path.name)
    return fig


def tick_labels(axis: Any) -> list[str]:
    return [t.get_text() for t in axis.get_ticklabels() if t.get_text()]


@pytest.mark.parametrize("session", ["demo-jump-3h", "demo-behind-2d", ACROSS.session_id,
                                     LONG_SESSION, "demo-ntp-120ms"])
def test_time_ticks_are_wall_times(
    ddb_client: Any, seeded_table: str, tmp_path: Path, session: str
) -> None:
    fig = drawn(document(ddb_client, seeded_table, session), tmp_path, "ticks")
    labels = tick_labels(fig.axes[0].xaxis)
    assert len(labels) >= 3
    for label in labels:
        assert TIME_LABEL.fullmatch(label), labels  # never a bare "30" or "15.000"
    if session == ACROSS.session_id:
        assert any(label.startswith("01-02\n") for label in labels), labels


def test_a_large_offset_reads_as_days_on_an_absolute_axis(
    ddb_client: Any, seeded_table: str, tmp_path: Path
) -> None:
    doc = document(ddb_client, seeded_table, "demo-behind-2d")
    ax = drawn(doc, tmp_path, "behind-2d").axes[0]
    bottom, top = ax.get_ylim()
    assert bottom <= 0 <= top  # the server's clock is in view
    labels = tick_labels(ax.yaxis)
    assert "+2 d" in labels and "0" in labels, labels
    assert "θ -" not in ax.get_ylabel() and "θ −" not in ax.get_ylabel()
    points = [c for c in ax.collections if c.get_offsets().shape[0] == len(doc["samples"])]
    assert points
    ys = sorted(float(y) for _x, y in points[-1].get_offsets())
    assert ys == sorted(s["offset_ms"] for s in doc["samples"])  # plotted as they are
    assert all(y > 1.9 * 86_400_000 for y in ys)


def test_symlog_and_linear_ticks_are_in_human_units(
    ddb_client: Any, seeded_table: str, tmp_path: Path
) -> None:
    labels = tick_labels(drawn(document(ddb_client, seeded_table, "demo-jump-3h"), tmp_path,
                               "jump").axes[0].yaxis)
    assert {"+1 h", "-1 s", "0"} <= set(labels), labels
    labels = tick_labels(drawn(document(ddb_client, seeded_table, "demo-ntp-120ms"), tmp_path,
                               "ntp").axes[0].yaxis)
    assert all(re.fullmatch(r"0|[+-]\d+(\.\d+)? ms", label) for label in labels), labels


def test_jump_label_inside_the_axes(ddb_client: Any, seeded_table: str, tmp_path: Path) -> None:
    doc = document(ddb_client, seeded_table, "demo-jump-3h")
    # The jump at the very right edge too: the last sample's.
    late = {**doc, "samples": [*doc["samples"][:-1], {**doc["samples"][-1], "jump": True}]}
    for name, case in (("jump", doc), ("late-jump", late)):
        fig = drawn(case, tmp_path, name)
        ax = fig.axes[0]
        renderer = fig.canvas.get_renderer()
        box = ax.get_window_extent(renderer)
        labels = [t for t in ax.texts if t.get_text() == "jump"]
        assert len(labels) == sum(s["jump"] for s in case["samples"])
        for label in labels:
            extent = label.get_window_extent(renderer)
            assert box.x0 <= extent.x0 and extent.x1 <= box.x1, (name, extent, box)
            assert box.y0 <= extent.y0 and extent.y1 <= box.y1, (name, extent, box)


def test_hard_and_assumed_sides_drawn_differently_without_seams(
    ddb_client: Any, seeded_table: str, tmp_path: Path
) -> None:
    for session, expected in (("demo-ahead-800ms", {"-", "--"}), ("demo-ntp-120ms", {"-"})):
        doc = document(ddb_client, seeded_table, session)
        ax = drawn(doc, tmp_path, session).axes[0]
        edges = [line for line in ax.lines if line.get_color() == EDGE]
        assert {line.get_linestyle() for line in edges} == expected, session
        # One filled band per segment, no per-sample strokes across it.
        assert not [c for c in ax.collections if type(c).__name__ == "LineCollection"]
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert any(t.startswith("hard bound") for t in legend)
        assert any(t.startswith("assumed bound") for t in legend) == ("--" in expected)
    assert hard_sides("ntp") == (True, True) and hard_sides("causality") == (False, True)


def test_long_session_ids_fold_in_the_title(
    ddb_client: Any, seeded_table: str, tmp_path: Path
) -> None:
    for session in (LONG_SESSION, UUID_SESSION):
        fig = drawn(document(ddb_client, seeded_table, session), tmp_path, "long")
        title = fig._suptitle
        assert title.get_text().replace("\n", "").endswith(session)
        extent = title.get_window_extent(fig.canvas.get_renderer())
        assert 0 <= extent.x0 and extent.x1 <= fig.bbox.width
