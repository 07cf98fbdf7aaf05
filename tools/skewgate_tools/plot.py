"""``skewgate skew SESSION --plot FILE``: one session's clock offset over time, as a picture.

What it draws, from a skew document (``GET /v1/sessions/{id}/skew``):

- the interval [lower, upper] of every sample as a band, one band per clock segment (a jump
  starts a new one); each side's edge is solid where it is a *hard* bound and dashed where it
  is an *assumed* one (see :func:`hard_sides`); an unbounded side is clipped at the plot's
  edge and marked with a triangle pointing off the plot;
- the estimate θ of each batch: filled where the spans were shifted by it, hollow where they
  were left alone (in sync within the error, or not provably off);
- clock jumps as dashed vertical lines, labelled inside the plot; θ = 0 (the server's clock)
  as a thin line.

The y axis is absolute and always holds 0 (the server's clock), in the unit that fits (ms, s,
min, h, d): a browser two days behind plots at +2 d, never as "θ − 2 d" around 0, which would
read as in sync. When offsets of very different sizes meet (a jump from -800 ms to +3 h) it is
symmetric-log with ticks in human units. The x axis is UTC wall time: ``HH:MM``, ``HH:MM:SS``
or ``HH:MM:SS.fff`` as the ticks need, with the date where the day changes.

Formats: ``.png`` and ``.svg`` through matplotlib's Agg canvas (a CLI-only dependency: the
``cli`` extra, not the Lambda layer), ``.html`` a self-contained page with the inline SVG and
the samples as a table. pyplot is not used, so no global backend is touched.
"""

from __future__ import annotations

import html
import io
import math
import textwrap
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

from skewgate_tools.cli_format import count, fmt_interval, fmt_ms, fmt_time, human_unit

__all__ = ["FORMATS", "hard_sides", "plot_skew", "skew_figure"]

FORMATS = (".png", ".svg", ".html")

_CORRECTED = "#c0392b"
_UNCORRECTED = "#1f6fb4"
_BAND = "#9ec5e8"
_EDGE = "#3d7ab8"
_JUMP = "#7d3c98"

# Symmetric-log ticks: sign x these magnitudes (ms), labelled in human units.
_LOG_TICKS = (
    10.0, 100.0, 1_000.0, 10_000.0, 60_000.0, 600_000.0, 3_600_000.0,
    21_600_000.0, 86_400_000.0, 604_800_000.0, 2_592_000_000.0,
)
_LINTHRESH_MS = 10.0
_UNIT_NAMES = {"d": 86_400_000.0, "h": 3_600_000.0, "min": 60_000.0, "s": 1_000.0, "ms": 1.0}


def hard_sides(method: str) -> tuple[bool, bool]:
    """Which sides of a sample's interval are hard bounds: ``(lower, upper)``.

    A round trip (``ntp``) bounds θ on both sides. One-way evidence (``send_time``,
    ``causality``) bounds it above only (the upload took >= 0 ms, every span ended before it
    arrived); its lower side is the stated assumption ``MAX_UPLOAD_DELAY_MS`` or
    ``MAX_BATCH_AGE_MS``. ``none`` has no evidence at all.

    >>> hard_sides("ntp"), hard_sides("send_time"), hard_sides("none")
    ((True, True), (False, True), (False, False))
    """
    if method == "ntp":
        return True, True
    if method in ("send_time", "causality"):
        return False, True
    return False, False


def _gap_ms(received: list[int]) -> float:
    """Silences longer than this split a band: 10x the median spacing, at least 30 min."""
    steps = sorted(b - a for a, b in pairwise(received))
    median = steps[len(steps) // 2] if steps else 0
    return max(10.0 * median, 1_800_000.0)


def _finite(values: list[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def _scale(offsets: list[float]) -> str:
    """``"symlog"`` when offsets of very different magnitudes share the plot, else linear."""
    magnitudes = [abs(v) for v in offsets if abs(v) > 0]
    if not magnitudes:
        return "linear"
    small, large = min(magnitudes), max(magnitudes)
    if large > 1_000.0 and large / max(small, 1.0) > 100.0:
        return "symlog"
    return "linear"


def _nice_step(raw: float) -> float:
    power = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if m * power >= raw * (1 - 1e-9):
            return m * power
    return 10.0 * power  # pragma: no cover


def linear_ticks(bottom: float, top: float, target: int = 8) -> tuple[list[float], str, float]:
    """Ticks (ms) at round values of the unit that fits ``top - bottom``, and that unit.

    >>> linear_ticks(-1.6e7, 1.9e8)[0][:3], linear_ticks(-1.6e7, 1.9e8)[1]
    ([0.0, 43200000.0, 86400000.0], 'd')
    """
    unit, size = human_unit(top - bottom)
    step = _nice_step((top - bottom) / size / target) * size
    first = math.ceil(bottom / step)
    ticks = [k * step for k in range(first, math.floor(top / step) + 1)]
    return [0.0 if abs(t) < step * 1e-9 else t for t in ticks], unit, size


def fmt_tick(value_ms: float, unit: str) -> str:
    """An axis label in ``unit``: ``0``, ``+1.5 d``, ``-10 s``, ``+250 ms``."""
    if value_ms == 0:
        return "0"
    amount = f"{abs(value_ms) / _UNIT_NAMES[unit]:.6g}"
    return f"{'+' if value_ms > 0 else '-'}{amount} {unit}"


def _time_formatter() -> Any:
    from matplotlib.dates import num2date
    from matplotlib.ticker import Formatter

    class TimeTicks(Formatter):  # type: ignore[misc]
        """UTC wall time at the resolution the ticks need; the date where the day changes."""

        def format_ticks(self, values: list[float]) -> list[str]:
            moments = [num2date(v, tz=UTC) for v in values]
            if all(m.microsecond == 0 and m.second == 0 for m in moments):
                pattern = "%H:%M"
            elif all(m.microsecond == 0 for m in moments):
                pattern = "%H:%M:%S"
            else:
                pattern = "%H:%M:%S.%f"
            days = {m.date() for m in moments}
            labels, last_day = [], None
            for m in moments:
                text = m.strftime(pattern)
                if pattern.endswith("%f"):
                    text = text[:-3]
                if len(days) > 1 and m.date() != last_day:
                    text = f"{m:%m-%d}\n{text}"
                last_day = m.date()
                labels.append(text)
            return labels

        def __call__(self, x: float, pos: int | None = None) -> str:
            return str(num2date(x, tz=UTC).strftime("%Y-%m-%d %H:%M:%S"))

    return TimeTicks()


def _runs(flags: list[bool]) -> list[tuple[int, int, bool]]:
    """Maximal runs ``(start, end, value)`` of equal neighbours' pairs: pair k joins k, k+1."""
    runs: list[tuple[int, int, bool]] = []
    for k, value in enumerate(flags):
        if runs and runs[-1][2] == value and runs[-1][1] == k:
            runs[-1] = (runs[-1][0], k + 1, value)
        else:
            runs.append((k, k + 1, value))
    return runs


def skew_figure(document: dict[str, Any]) -> Any:
    """A matplotlib ``Figure`` of the skew document (not attached to pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, date2num
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    samples = document["samples"]
    if not samples:
        raise ValueError(f"session {document['session_id']!r} has no samples to plot")
    times = [datetime.fromtimestamp(s["received_at_ms"] / 1000.0, tz=UTC) for s in samples]
    offsets = [float(s["offset_ms"]) for s in samples]
    lowers = [s["lower_ms"] for s in samples]
    uppers = [s["upper_ms"] for s in samples]
    hard = [hard_sides(s["method"]) for s in samples]
    finite = offsets + _finite(lowers) + _finite(uppers)
    scale = _scale(offsets)

    # Absolute: 0, the server's clock, is always in view.
    lo, hi = min([*finite, 0.0]), max([*finite, 0.0])
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
    # left open for days), across which nothing is known and nothing is drawn. One polygon
    # per segment and no per-sample strokes on it, so the band has no seams.
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
    kinds_drawn: set[bool] = set()
    for segment in segments:
        seg_t = [times[i] for i in segment]
        seg_lo = [bottom if lowers[i] is None else lowers[i] for i in segment]
        seg_hi = [top if uppers[i] is None else uppers[i] for i in segment]
        unbounded_low += [times[i] for i in segment if lowers[i] is None]
        unbounded_high += [times[i] for i in segment if uppers[i] is None]
        if len(segment) > 1:
            ax.fill_between(seg_t, seg_lo, seg_hi, color=_BAND, alpha=0.55, linewidth=0,
                            edgecolor="none", zorder=1)
            for side, values, bounds in ((0, seg_lo, lowers), (1, seg_hi, uppers)):
                pairs = [hard[i][side] for i in segment[:-1]]
                pairs = [h and hard[j][side] for h, j in zip(pairs, segment[1:], strict=True)]
                for start, end, is_hard in _runs(pairs):
                    idx = range(start, end + 1)
                    if any(bounds[segment[k]] is None for k in idx):
                        continue  # clipped at the edge: the triangles say it
                    ax.plot([seg_t[k] for k in idx], [values[k] for k in idx], color=_EDGE,
                            linewidth=1.3, linestyle="-" if is_hard else (0, (4, 3)), zorder=2)
                    kinds_drawn.add(is_hard)
        else:
            (i,) = segment
            for side, value in ((0, seg_lo[0]), (1, seg_hi[0])):
                is_hard = hard[i][side] and (lowers[i], uppers[i])[side] is not None
                ax.plot([times[i], times[i]], [offsets[i], value], color=_EDGE, linewidth=2.2,
                        linestyle="-" if is_hard else (0, (3, 2)), zorder=2)
                if (lowers[i], uppers[i])[side] is not None:
                    ax.plot([times[i]], [value], marker="_", markersize=12 if is_hard else 7,
                            color=_EDGE, markeredgewidth=2.0 if is_hard else 1.0, zorder=2)
                    kinds_drawn.add(is_hard)
        ax.plot(seg_t, [offsets[i] for i in segment], color="#888888", linewidth=0.6,
                zorder=3)
    if unbounded_low:
        ax.scatter(unbounded_low, [bottom] * len(unbounded_low), marker="v", s=28,
                   color=_UNCORRECTED, alpha=0.6, zorder=3, clip_on=False)
    if unbounded_high:
        ax.scatter(unbounded_high, [top] * len(unbounded_high), marker="^", s=28,
                   color=_UNCORRECTED, alpha=0.6, zorder=3, clip_on=False)

    ax.axhline(0.0, color="#555555", linewidth=0.8, zorder=2)
    applied = [s["applied"] for s in samples]
    fixed = [(t, v) for t, v, a in zip(times, offsets, applied, strict=True) if a]
    left = [(t, v) for t, v, a in zip(times, offsets, applied, strict=True) if not a]
    if fixed:
        ax.scatter(*zip(*fixed, strict=True), s=30, color=_CORRECTED, zorder=4)
    if left:
        ax.scatter(*zip(*left, strict=True), s=30, facecolors="white", edgecolors=_UNCORRECTED,
                   linewidths=1.4, zorder=4)

    ax.set_ylim(bottom, top)
    if scale == "symlog":
        ticks = sorted({0.0, *(m * sgn for m in _LOG_TICKS for sgn in (1, -1))})
        ax.yaxis.set_major_locator(FixedLocator([t for t in ticks if bottom <= t <= top]))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_major_formatter(
            FuncFormatter(lambda v, _pos: fmt_ms(v).replace(".00", "") if v else "0"))
        ylabel = "offset θ (symmetric log)"
    else:
        ticks, unit, _size = linear_ticks(bottom, top)
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: fmt_tick(v, unit)))
        ylabel = "offset θ"
    ax.set_ylabel(f"{ylabel}\nθ = server - browser clock; + browser behind, - ahead")
    locator = AutoDateLocator(tz=UTC, minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(_time_formatter())
    first_day = times[0].strftime("%Y-%m-%d")
    ax.set_xlabel(f"received at (UTC, from {first_day})")
    ax.grid(True, which="major", color="#e6e6e6", linewidth=0.8)
    ax.set_axisbelow(True)
    if len(times) == 1:
        center = date2num(times[0])
        ax.set_xlim(center - 1 / 1440, center + 1 / 1440)

    # Jumps, labelled inside the axes: left of the line (where the earlier segment ends, a
    # sample spacing away) unless the line is near the left edge; at the top unless the
    # neighbouring sample is up there.
    jumps = [t for t, s in zip(times, samples, strict=True) if s["jump"]]
    x0, x1 = ax.get_xlim()
    to_axes = ax.transData + ax.transAxes.inverted()
    for i, (t, sample) in enumerate(zip(times, samples, strict=True)):
        if not sample["jump"]:
            continue
        ax.axvline(t, color=_JUMP, linestyle="--", linewidth=1.4, zorder=2)
        left_side = (date2num(t) - x0) / (x1 - x0) > 0.15 and i > 0
        neighbour = i - 1 if left_side else i
        at_top = to_axes.transform((date2num(times[neighbour]), offsets[neighbour]))[1] < 0.75
        ax.annotate("jump", (t, 1.0 if at_top else 0.0), xycoords=("data", "axes fraction"),
                    xytext=(-4 if left_side else 4, -4 if at_top else 4),
                    textcoords="offset points", ha="right" if left_side else "left",
                    va="top" if at_top else "bottom", color=_JUMP, fontsize=9,
                    annotation_clip=True, gid="jump-label")

    last = samples[-1]
    corrected = sum(applied)
    methods: dict[str, int] = {}
    for s in samples:
        methods[s["method"]] = methods.get(s["method"], 0) + 1
    method_text = ", ".join(f"{m} {n}" for m, n in methods.items())
    ax.set_title(
        f"{count(len(samples), 'batch', 'es')} · {corrected} corrected · "
        f"{count(len(jumps), 'jump')} · {method_text}"
        f"\nlatest θ = {fmt_ms(last['offset_ms'])} in "
        f"{fmt_interval(last['lower_ms'], last['upper_ms'])}",
        fontsize=10, color="#333333",
    )
    # Session ids run to 256 bytes: fold a long one over lines rather than lose its ends.
    title = "\n".join(textwrap.wrap(f"Clock offset of session {document['session_id']}", 80,
                                     break_long_words=True, break_on_hyphens=False))
    fig.suptitle(title, fontsize=13, fontweight="bold")

    handles: list[Any] = []
    if fixed:
        handles.append(Line2D([], [], marker="o", linestyle="", color=_CORRECTED,
                              label="corrected (spans shifted by θ)"))
    if left:
        handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor="white",
                              markeredgecolor=_UNCORRECTED, label="not corrected"))
    handles.append(Patch(color=_BAND, alpha=0.7, label="interval [lower, upper]"))
    if True in kinds_drawn:
        handles.append(Line2D([], [], color=_EDGE, linewidth=1.3,
                              label="hard bound (round trip;\nupper side of send time, causality)"))
    if False in kinds_drawn:
        handles.append(Line2D([], [], color=_EDGE, linewidth=1.3, linestyle=(0, (4, 3)),
                              label="assumed bound (lower side of\nsend time, causality)"))
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
            f"<td class=\"ids\">{'<br>'.join(html.escape(t) for t in s['trace_ids'])}"
            f"{f'<br>+{n} more' if (n := s.get('more_traces', 0)) else ''}</td>"
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
td.ids {{ font-family: ui-monospace, monospace; font-size: 12px; text-align: left; }}
</style></head>
<body>
<h1>Clock offset of session {sid}</h1>
{svg}
<table><thead><tr><th>#</th><th>received (UTC)</th><th>θ</th><th>interval</th><th>method</th>
<th>corrected</th><th>jump</th><th>spans</th><th>flags</th><th>traces</th></tr></thead>
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
