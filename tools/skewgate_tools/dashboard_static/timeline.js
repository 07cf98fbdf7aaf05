// One session's clock offset over time, as SVG: the interval band per clock segment (hard
// sides solid, assumed sides dashed), each batch's θ (filled: spans shifted; hollow: left),
// jumps as dashed lines. The y axis is absolute and always holds 0, the server's clock.
"use strict";

import { fmtInterval, fmtMs, fmtTick, fmtTime, hardSides } from "./format.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const LINTHRESH = 10; // ms: symlog is linear inside ±10 ms
const LOG_TICKS = [10, 100, 1e3, 1e4, 6e4, 6e5, 36e5, 216e5, 864e5, 6048e5, 2592e6];

function svg(tag, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (parent) parent.appendChild(node);
  return node;
}

export function humanUnit(range) {
  if (range >= 2 * 864e5) return ["d", 864e5];
  if (range >= 2 * 36e5) return ["h", 36e5];
  if (range >= 2 * 6e4) return ["min", 6e4];
  if (range >= 2 * 1e3) return ["s", 1e3];
  return ["ms", 1];
}

function niceStep(raw) {
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * power >= raw * (1 - 1e-9)) return m * power;
  return 10 * power;
}

// Symlog when offsets of very different sizes meet (a jump from -800 ms to +3 h), else linear
// in the unit that fits; either way absolute, from 0: a browser 2 days behind sits at +2 d.
function yScale(samples) {
  const offsets = samples.map((s) => s.offset_ms);
  const finite = offsets.concat(
    samples.flatMap((s) => [s.lower_ms, s.upper_ms]).filter((v) => v !== null), [0]);
  const mags = offsets.map(Math.abs).filter((v) => v > 0);
  const symlog = mags.length > 0 && Math.max(...mags) > 1000 &&
    Math.max(...mags) / Math.max(Math.min(...mags), 1) > 100;
  const lo = Math.min(...finite), hi = Math.max(...finite);
  const f = symlog ? (v) => Math.sign(v) * Math.log10(1 + Math.abs(v) / LINTHRESH) : (v) => v;
  let flo = f(lo), fhi = f(hi);
  const pad = (fhi - flo) * 0.08 || 1;
  flo -= pad; fhi += pad;
  let ticks, label;
  if (symlog) {
    ticks = [0, ...LOG_TICKS, ...LOG_TICKS.map((t) => -t)]
      .filter((t) => f(t) >= flo && f(t) <= fhi).sort((a, b) => a - b)
      .map((t) => ({ f: f(t), text: t === 0 ? "0" : fmtMs(t).replace(".00", "") }));
    label = "offset θ (symmetric log)";
  } else {
    const [unit, size] = humanUnit(fhi - flo);
    const step = niceStep((fhi - flo) / size / 8) * size;
    ticks = [];
    for (let k = Math.ceil(flo / step); k * step <= fhi + 1e-9; k++) {
      const value = Math.abs(k * step) < step / 1e6 ? 0 : k * step;
      ticks.push({ f: value, text: fmtTick(value, unit) });
    }
    label = "offset θ";
  }
  return { f, flo, fhi, ticks, label };
}

const TIME_STEPS = [1e3, 2e3, 5e3, 1e4, 15e3, 3e4, 6e4, 12e4, 3e5, 6e5, 9e5, 18e5, 36e5, 72e5,
  108e5, 216e5, 432e5, 864e5, 1728e5, 6048e5];

/** Wall-time ticks: "09:03", "09:03:30"; the date over the first tick of each new day. */
function timeTicks(t0, t1, count) {
  const span = Math.max(t1 - t0, 1);
  const step = TIME_STEPS.find((s) => span / s <= count) || TIME_STEPS[TIME_STEPS.length - 1];
  const ticks = [];
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) ticks.push(t);
  const multiDay = new Date(t0).toISOString().slice(0, 10) !== new Date(t1).toISOString().slice(0, 10);
  let lastDay = null;
  return ticks.map((t) => {
    const iso = new Date(t).toISOString();
    const day = iso.slice(5, 10);
    const text = step % 6e4 === 0 ? iso.slice(11, 16) : iso.slice(11, 19);
    const date = multiDay && day !== lastDay ? day : null;
    lastDay = day;
    return { t, text, date };
  });
}

/** Runs of consecutive sample pairs whose edge is of one kind: [start, end, hard]. */
function runs(kinds) {
  const out = [];
  kinds.forEach((kind, k) => {
    const last = out[out.length - 1];
    if (last && last[2] === kind && last[1] === k) last[1] = k + 1;
    else out.push([k, k + 1, kind]);
  });
  return out;
}

/**
 * Draw `samples` into `container`. `onPick(index)` is called when a point is clicked (the
 * page opens that sample's trace); `selected` is the index to ring.
 */
export function drawTimeline(container, samples, { onPick = null, selected = null } = {}) {
  container.replaceChildren();
  if (!samples.length) return;
  const W = Math.max(container.clientWidth || 900, 480), H = 360;
  const m = { left: 78, right: 16, top: 22, bottom: 48 };
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img",
    "aria-label": "clock offset timeline" }, container);
  const times = samples.map((s) => s.received_at_ms);
  let t0 = Math.min(...times), t1 = Math.max(...times);
  const tpad = (t1 - t0) * 0.03 || 30000;
  t0 -= tpad; t1 += tpad;
  const ys = yScale(samples);
  const x = (t) => m.left + ((t - t0) / (t1 - t0)) * (W - m.left - m.right);
  const yf = (fv) => m.top + (1 - (fv - ys.flo) / (ys.fhi - ys.flo)) * (H - m.top - m.bottom);
  const y = (v) => yf(ys.f(v));
  const top = m.top, bottom = H - m.bottom, left = m.left, right = W - m.right;

  // Grid and axes. Drop ticks closer than 14 px to 0 or to the tick kept before.
  const grid = svg("g", { class: "grid" }, root);
  const axis = svg("g", { class: "axis" }, root);
  const zeroY = yf(ys.f(0));
  let lastY = Infinity;
  const ticks = ys.ticks.filter((tick) => {
    const py = yf(tick.f);
    if (tick.f !== 0 && (Math.abs(py - lastY) < 14 || Math.abs(py - zeroY) < 14)) return false;
    lastY = py;
    return true;
  });
  for (const tick of ticks) {
    const py = yf(tick.f);
    svg("line", { x1: left, x2: right, y1: py, y2: py }, grid);
    svg("text", { class: "ytick", x: left - 6, y: py + 4, "text-anchor": "end" }, axis)
      .textContent = tick.text;
  }
  for (const tick of timeTicks(t0, t1, Math.max(3, Math.floor((right - left) / 110)))) {
    const px = x(tick.t);
    svg("line", { x1: px, x2: px, y1: top, y2: bottom }, grid);
    // Labels stay inside the picture: anchored at their end near the right edge.
    const anchor = W - px < 32 ? "end" : px < 32 ? "start" : "middle";
    svg("text", { class: "xtick", x: px, y: bottom + 15, "text-anchor": anchor }, axis)
      .textContent = tick.text;
    if (tick.date) {
      svg("text", { class: "xdate", x: px, y: bottom + 28, "text-anchor": anchor }, axis)
        .textContent = tick.date;
    }
  }
  svg("rect", { class: "domain", x: left, y: top, width: right - left, height: bottom - top,
    fill: "none" }, axis);
  svg("text", { x: (left + right) / 2, y: H - 4, "text-anchor": "middle" }, axis)
    .textContent = `received at (UTC, from ${fmtTime(times[0], true).slice(0, 10)})`;
  svg("text", { x: 14, y: (top + bottom) / 2, "text-anchor": "middle",
    transform: `rotate(-90 14 ${(top + bottom) / 2})` }, axis).textContent = ys.label;

  // One band per clock segment: a jump opens a new one, and so does a long silence (10x the
  // median spacing, at least 30 min), across which nothing is drawn. The band is one filled
  // polygon (no per-sample strokes, so no seams); its edges say which side is hard.
  const steps = times.slice(1).map((t, i) => t - times[i]).sort((a, b) => a - b);
  const gap = Math.max(10 * (steps.length ? steps[Math.floor(steps.length / 2)] : 0), 18e5);
  const segments = [];
  samples.forEach((s, i) => {
    if (i === 0 || s.jump || s.received_at_ms - samples[i - 1].received_at_ms > gap) segments.push([]);
    segments[segments.length - 1].push(i);
  });
  const clamp = (py) => Math.min(bottom, Math.max(top, py));
  const loY = (s) => (s.lower_ms === null ? bottom : clamp(y(s.lower_ms)));
  const hiY = (s) => (s.upper_ms === null ? top : clamp(y(s.upper_ms)));
  const hard = samples.map((s) => hardSides(s.method));
  const bands = svg("g", { class: "bands" }, root);
  for (const seg of segments) {
    const px = (i) => x(samples[i].received_at_ms);
    if (seg.length > 1) {
      const upper = seg.map((i) => `${px(i)},${hiY(samples[i])}`);
      const lower = seg.slice().reverse().map((i) => `${px(i)},${loY(samples[i])}`);
      svg("polygon", { class: "band", points: upper.concat(lower).join(" ") }, bands);
      for (const [side, edgeY, key] of [[0, loY, "lower_ms"], [1, hiY, "upper_ms"]]) {
        const kinds = seg.slice(0, -1).map((i, k) => hard[i][side] && hard[seg[k + 1]][side]);
        for (const [start, end, isHard] of runs(kinds)) {
          const idx = seg.slice(start, end + 1);
          if (idx.some((i) => samples[i][key] === null)) continue; // clipped: triangles say it
          svg("polyline", { class: `edge ${isHard ? "hard" : "assumed"}`,
            points: idx.map((i) => `${px(i)},${edgeY(samples[i])}`).join(" ") }, bands);
        }
      }
    } else {
      const i = seg[0], s = samples[i], cx = px(i), cy = clamp(y(s.offset_ms));
      for (const [side, edgeY, key] of [[0, loY, "lower_ms"], [1, hiY, "upper_ms"]]) {
        const bounded = s[key] !== null, isHard = bounded && hard[i][side];
        const kind = isHard ? "hard" : "assumed";
        svg("line", { class: `bar ${kind}`, x1: cx, x2: cx, y1: cy, y2: edgeY(s) }, bands);
        if (bounded) {
          svg("line", { class: `cap ${kind}`, x1: cx - 6, x2: cx + 6, y1: edgeY(s),
            y2: edgeY(s) }, bands);
        }
      }
    }
    for (const i of seg) {
      const s = samples[i], cx = px(i);
      if (s.lower_ms === null) svg("path", { class: "unbounded", d: `M${cx - 5},${bottom - 8} h10 l-5,8 z` }, bands);
      if (s.upper_ms === null) svg("path", { class: "unbounded", d: `M${cx - 5},${top + 8} h10 l-5,-8 z` }, bands);
    }
  }
  svg("line", { class: "zero", x1: left, x2: right, y1: zeroY, y2: zeroY }, root);

  // Jumps, labelled inside the plot: left of the line unless it is near the left edge, at the
  // top unless the neighbouring sample sits there.
  samples.forEach((s, i) => {
    if (!s.jump) return;
    const px = x(s.received_at_ms);
    svg("line", { class: "jump-line", x1: px, x2: px, y1: top, y2: bottom }, root);
    const leftSide = px - left > 44 && i > 0;
    const neighbour = samples[leftSide ? i - 1 : i];
    const atTop = y(neighbour.offset_ms) > top + 0.25 * (bottom - top);
    svg("text", { class: "jump-label", x: leftSide ? px - 4 : px + 4,
      y: atTop ? top + 13 : bottom - 5, "text-anchor": leftSide ? "end" : "start" }, root)
      .textContent = "jump";
  });

  // The estimate: a thin line per segment, then the points (click: the sample's trace).
  for (const seg of segments) {
    svg("polyline", { class: "trend",
      points: seg.map((i) => `${x(samples[i].received_at_ms)},${y(samples[i].offset_ms)}`).join(" ") }, root);
  }
  const points = svg("g", { class: "points" }, root);
  samples.forEach((s, i) => {
    const classes = ["point", s.applied ? "corrected" : "uncorrected"];
    if (s.trace_ids.length && onPick) classes.push("pickable");
    if (i === selected) classes.push("selected");
    const c = svg("circle", { class: classes.join(" "), cx: x(s.received_at_ms),
      cy: y(s.offset_ms), r: 4.5, "data-index": i }, points);
    svg("title", {}, c).textContent =
      `${fmtTime(s.received_at_ms, true)} UTC\nθ = ${fmtMs(s.offset_ms)} ${fmtInterval(s.lower_ms, s.upper_ms)}\n` +
      `${s.method}${s.applied ? ", corrected" : ", not corrected"}${s.jump ? ", jump" : ""}` +
      `${s.flags.length ? `\nflags: ${s.flags.join(", ")}` : ""}` +
      `${s.trace_ids.length && onPick ? "\nclick: open its trace" : ""}`;
    if (s.trace_ids.length && onPick) c.addEventListener("click", () => onPick(i));
  });
}
