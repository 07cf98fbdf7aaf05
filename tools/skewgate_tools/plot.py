"""``skewgate skew SESSION --plot FILE``: one session's clock offset over time, as a picture.

What it draws, from a skew document (``GET /v1/sessions/{id}/skew``):

- the uncertainty band [lower, upper] of every sample, one band per clock segment (a jump
  starts a new one); an unbounded side is clipped at the plot's edge and marked with a
  triangle pointing off the plot;
- the estimate θ of each batch: filled where the spans were shifted by it, hollow where they
  were left alone (in sync within the error, or not provably off);
- clock jumps as dashed vertical lines; θ = 0 (the server's clock) as a thin line.

The y axis is linear in the unit that fits (ms, s, min, h, d), around a round reference when
the offset is large and steady (a clock two days off that moves by seconds), and symmetric-log
with human ticks when offsets of very different sizes meet (a jump from -800 ms to +3 h).

Formats: ``.png`` and ``.svg`` through matplotlib's Agg canvas (a CLI-only dependency: the
``cli`` extra, not the Lambda layer), ``.html`` a self-contained page with the inline SVG and
the samples as a table. pyplot is not used, so no global backend is touched.
"""

from __future__ import annotations

import html
import io
import math
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

from skewgate_tools.cli_format import fmt_interval, fmt_ms, fmt_time, human_unit

__all__ = ["FORMATS", "plot_skew", "skew_figure"]

FORMATS = (".png", ".svg", ".html")

_CORRECTED = "#c0392b"
_UNCORRECTED = "#1f6fb4"
_BAND = "#9ec5e8"
_JUMP = "#7d3c98"

# Symmetric-log ticks: sign x these magnitudes (ms), labelled in human units.
_LOG_TICKS = (
    10.0, 100.0, 1_000.0, 10_000.0, 60_000.0, 600_000.0, 3_600_000.0,
    21_600_000.0, 86_400_000.0, 604_800_000.0, 2_592_000_000.0,
)
_LINTHRESH_MS = 10.0


def _gap_ms(received: list[int]) -> float:
    """Silences longer than this split a band: 10x the median spacing, at least 30 min."""
    steps = sorted(b - a for a, b in pairwise(received))
    median = steps[len(steps) // 2] if steps else 0
    return max(10.0 * median, 1_800_000.0)


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _finite(values: list[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def _scale(offsets: list[float], bounds: list[float]) -> str:
    """``"symlog"`` when offsets of very different magnitudes share the plot, else linear."""
    magnitudes = [abs(v) for v in offsets if abs(v) > 0]
    if not magnitudes:
        return "linear"
    small, large = min(magnitudes), max(magnitudes)
    if large > 1_000.0 and large / max(small, 1.0) > 100.0:
        return "symlog"
    return "linear"


def _reference(values: list[float]) -> float:
    """A round value near the data to subtract, when the data sit far from 0 in a narrow range."""
    lo, hi = min(values), max(values)
    center = (lo + hi) / 2.0
    spread = max(hi - lo, 1.0)
    if abs(center) < 20.0 * spread:
        return 0.0
    for step in (86_400_000.0, 3_600_000.0, 60_000.0, 1_000.0):
        if abs(center) >= 10.0 * step or step == 1_000.0:
            return round(center / step) * step
    return 0.0  # pragma: no cover


def skew_figure(document: dict[str, Any]) -> Any:
    """A matplotlib ``Figure`` of the skew document (not attached to pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import FixedLocator, FuncFormatter

    samples = document["samples"]
    if not samples:
        raise ValueError(f"session {document['session_id']!r} has no samples to plot")
    times = [datetime.fromtimestamp(s["received_at_ms"] / 1000.0, tz=UTC) for s in samples]
    offsets = [float(s["offset_ms"]) for s in samples]
    lowers = [s["lower_ms"] for s in samples]
    uppers = [s["upper_ms"] for s in samples]
    finite = offsets + _finite(lowers) + _finite(uppers)
    scale = _scale(offsets, finite)

    if scale == "linear":
        ref = _reference(finite)
        unit, size = human_unit(max(finite) - min(finite) if len(finite) > 1 else 1.0)
    else:
        ref, unit, size = 0.0, "ms", 1.0

    def y(value: float) -> float:
        return (value - ref) / size

    ys = [y(v) for v in finite]
    if ref == 0.0:
        ys.append(0.0)  # keep the server's clock in view
    lo, hi = min(ys), max(ys)
    if scale == "linear":
        pad = (hi - lo) * 0.08 or 1.0
        bottom, top = lo - pad, hi + pad
    else:
        # Pad by a fraction of a decade on the log side.
        bottom = lo * 3.0 if lo < -_LINTHRESH_MS else lo - _LINTHRESH_MS
        top = hi * 3.0 if hi > _LINTHRESH_MS else hi + _LINTHRESH_MS

    fig = Figure(figsize=(11.0, 5.6), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if scale == "symlog":
        ax.set_yscale("symlog", linthresh=_LINTHRESH_MS, linscale=0.5)

    # Bands, one per clock segment: a jump opens a new one, and so does a long silence (a tab
    # left open for days), across which nothing is known and nothing is drawn.
    segments: list[list[int]] = []
    gap = _gap_ms([s["received_at_ms"] for s in samples])
    for i, sample in enumerate(samples):
        if i == 0 or sample["jump"] or (
            sample["received_at_ms"] - samples[i - 1]["received_at_ms"] > gap
        ):
            segments.append([])
        segments[-1].append(i)
    unbounded_low: list[datetime] = []
    unbounded_high: list[datetime] = []
    for segment in segments:
        seg_t = [times[i] for i in segment]
        seg_lo = [bottom if lowers[i] is None else y(lowers[i]) for i in segment]
        seg_hi = [top if uppers[i] is None else y(uppers[i]) for i in segment]
        unbounded_low += [times[i] for i in segment if lowers[i] is None]
        unbounded_high += [times[i] for i in segment if uppers[i] is None]
        if len(segment) > 1:
            ax.fill_between(seg_t, seg_lo, seg_hi, color=_BAND, alpha=0.55, linewidth=0,
                            zorder=1)
        ax.vlines(seg_t, seg_lo, seg_hi, color=_BAND, linewidth=1.4 if len(segment) > 1 else 4,
                  alpha=0.9, zorder=1)
        ax.plot(seg_t, [y(offsets[i]) for i in segment], color="#888888", linewidth=0.6,
                zorder=3)
    if unbounded_low:
        ax.scatter(unbounded_low, [bottom] * len(unbounded_low), marker="v", s=28,
                   color=_UNCORRECTED, alpha=0.6, zorder=3, clip_on=False)
    if unbounded_high:
        ax.scatter(unbounded_high, [top] * len(unbounded_high), marker="^", s=28,
                   color=_UNCORRECTED, alpha=0.6, zorder=3, clip_on=False)

    if ref == 0.0:
        ax.axhline(0.0, color="#555555", linewidth=0.8, zorder=2)
    jumps = [t for t, s in zip(times, samples, strict=True) if s["jump"]]
    for t in jumps:
        ax.axvline(t, color=_JUMP, linestyle="--", linewidth=1.4, zorder=2)
        ax.annotate("jump", (t, 1.0), xycoords=("data", "axes fraction"),
                    xytext=(3, -12), textcoords="offset points", color=_JUMP, fontsize=9)

    applied = [s["applied"] for s in samples]
    fixed = [(t, y(v)) for t, v, a in zip(times, offsets, applied, strict=True) if a]
    left = [(t, y(v)) for t, v, a in zip(times, offsets, applied, strict=True) if not a]
    if fixed:
        ax.scatter(*zip(*fixed, strict=True), s=30, color=_CORRECTED, zorder=4)
    if left:
        ax.scatter(*zip(*left, strict=True), s=30, facecolors="white", edgecolors=_UNCORRECTED,
                   linewidths=1.4, zorder=4)

    ax.set_ylim(bottom, top)
    if scale == "symlog":
        ticks = sorted({0.0, *(m * sgn for m in _LOG_TICKS for sgn in (1, -1))})
        ax.yaxis.set_major_locator(FixedLocator([t for t in ticks if bottom <= t <= top]))
        ax.yaxis.set_minor_locator(FixedLocator([]))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: fmt_ms(v).replace(".00", "")))
        ylabel = "offset θ (symlog)"
    elif ref:
        ylabel = f"θ {'-' if ref > 0 else '+'} {fmt_ms(abs(ref), signed=False)} [{unit}]"
    else:
        ylabel = f"offset θ [{unit}]"
    ax.set_ylabel(f"{ylabel}\nθ = server - browser clock; + browser behind, - ahead")
    locator = AutoDateLocator(tz=UTC, minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=UTC))
    first_day = times[0].strftime("%Y-%m-%d")
    ax.set_xlabel(f"received at (UTC, from {first_day})")
    ax.grid(True, which="major", color="#e6e6e6", linewidth=0.8)
    ax.set_axisbelow(True)
    if len(times) == 1:
        center = date2num(times[0])
        ax.set_xlim(center - 1 / 1440, center + 1 / 1440)

    last = samples[-1]
    corrected = sum(applied)
    methods: dict[str, int] = {}
    for s in samples:
        methods[s["method"]] = methods.get(s["method"], 0) + 1
    method_text = ", ".join(f"{m} {n}" for m, n in methods.items())
    ax.set_title(
        f"{_count(len(samples), 'batch', 'batches')} · {corrected} corrected · "
        f"{_count(len(jumps), 'jump', 'jumps')} · {method_text}"
        f"\nlatest θ = {fmt_ms(last['offset_ms'])} in "
        f"{fmt_interval(last['lower_ms'], last['upper_ms'])}",
        fontsize=10, color="#333333",
    )
    fig.suptitle(f"Clock offset of session {document['session_id']}", fontsize=13,
                 fontweight="bold")

    handles: list[Any] = []
    if fixed:
        handles.append(Line2D([], [], marker="o", linestyle="", color=_CORRECTED,
                              label="corrected (spans shifted by θ)"))
    if left:
        handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor="white",
                              markeredgecolor=_UNCORRECTED, label="not corrected"))
    handles.append(Patch(color=_BAND, alpha=0.7, label="interval [lower, upper]"))
    if jumps:
        handles.append(Line2D([], [], color=_JUMP, linestyle="--", label="clock jump"))
    if unbounded_low or unbounded_high:
        handles.append(Line2D([], [], marker="v", linestyle="", color=_UNCORRECTED, alpha=0.6,
                              label="unbounded side (clipped)"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8.5,
              frameon=False)
    return fig


def _html(document: dict[str, Any], svg: str) -> str:
    rows = []
    for i, s in enumerate(document["samples"], 1):
        rows.append(
            "<tr>"
            f"<td>{i}</td><td>{html.escape(fmt_time(s['received_at_ms']))}</td>"
            f"<td>{html.escape(fmt_ms(s['offset_ms']))}</td>"
            f"<td>{html.escape(fmt_interval(s['lower_ms'], s['upper_ms']))}</td>"
            f"<td>{html.escape(s['method'])}</td><td>{'yes' if s['applied'] else 'no'}</td>"
            f"<td>{'jump' if s['jump'] else ''}</td><td>{s['span_count']}</td>"
            f"<td>{html.escape(', '.join(s['flags']))}</td>"
            "</tr>"
        )
    sid = html.escape(document["session_id"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>skewgate: session {sid}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; margin-top: 16px; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 3px 10px; text-align: right; }}
th {{ background: #f4f4f4; }} svg {{ max-width: 100%; height: auto; }}
</style></head>
<body>
<h1>Clock offset of session {sid}</h1>
{svg}
<table><thead><tr><th>#</th><th>received (UTC)</th><th>θ</th><th>interval</th><th>method</th>
<th>corrected</th><th>jump</th><th>spans</th><th>flags</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
</body></html>
"""


def plot_skew(document: dict[str, Any], path: Path | str) -> Path:
    """Write the picture of ``document`` to ``path`` (.png, .svg or .html)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"--plot: unknown format {suffix or path.name!r}; use .png, .svg or .html")
    fig = skew_figure(document)
    if suffix == ".html":
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
        svg = buffer.getvalue()
        svg = svg[svg.index("<svg"):]
        path.write_text(_html(document, svg), encoding="utf-8")
    else:
        metadata = {"Date": None} if suffix == ".svg" else {}
        fig.savefig(path, format=suffix[1:], dpi=110, metadata=metadata)
    return path
