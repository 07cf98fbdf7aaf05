// A trace's spans as a waterfall: bars on an absolute UTC time axis, nested by parent, on the
// browser's clock as stamped (raw), on the server's clock (corrected), or both side by side.
// Times are OTLP decimal strings: BigInt until they are offsets small enough for a Number.
"use strict";

import { dayOfNs, fmtInterval, fmtMs, fmtNs } from "./format.js";

export const VIEWS = ["both", "raw", "corrected"];

const LANES = {
  raw: {
    start: (s) => BigInt(s.raw_start_time_unix_nano),
    end: (s) => BigInt(s.raw_end_time_unix_nano),
    title: "raw: browser clock, as stamped",
  },
  corrected: {
    start: (s) => BigInt(s.start_time_unix_nano),
    end: (s) => BigInt(s.end_time_unix_nano),
    title: "corrected: server clock",
  },
};

// Tick steps in ns: 1-2-5 from 1 µs to 0.5 s, then round seconds, minutes, hours, days.
const STEPS = [];
for (let p = 1e3; p < 1e9; p *= 10) STEPS.push(p, 2 * p, 5 * p);
STEPS.push(1e9, 2e9, 5e9, 1e10, 15e9, 3e10, 6e10, 12e10, 3e11, 6e11, 9e11, 18e11, 36e11, 72e11,
  108e11, 216e11, 432e11, 864e11, 1728e11, 6048e11);

let measureCtx = null;
/** The width in px of a tick label (11 px, the page's font), measured, not guessed. */
function labelWidth(text) {
  if (!measureCtx) {
    measureCtx = document.createElement("canvas").getContext("2d");
    measureCtx.font = `11px ${getComputedStyle(document.body).fontFamily}`;
  }
  return measureCtx.measureText(text).width + 2;
}

function el(tag, attrs = {}, text = null) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

/** Spans in tree order (depth first, children by corrected start), each with its depth. */
export function spanTree(spans) {
  const byId = new Map(spans.map((s) => [s.span_id, s]));
  const children = new Map();
  const roots = [];
  for (const s of spans) {
    const parent = s.parent_span_id && byId.has(s.parent_span_id) && s.parent_span_id !== s.span_id
      ? s.parent_span_id : null;
    if (parent === null) roots.push(s);
    else {
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(s);
    }
  }
  const byStart = (a, b) => {
    const d = BigInt(a.start_time_unix_nano) - BigInt(b.start_time_unix_nano);
    return d < 0n ? -1 : d > 0n ? 1 : a.span_id < b.span_id ? -1 : 1;
  };
  const out = [];
  const seen = new Set();
  const visit = (s, depth) => {
    if (seen.has(s.span_id)) return; // a parent cycle in hostile data
    seen.add(s.span_id);
    out.push({ span: s, depth, orphan: depth === 0 && !!s.parent_span_id });
    for (const c of (children.get(s.span_id) || []).sort(byStart)) visit(c, depth + 1);
  };
  for (const r of roots.sort(byStart)) visit(r, 0);
  for (const s of spans) if (!seen.has(s.span_id)) visit(s, 0); // cycles: still shown
  return out;
}

/** ns → ms shift of a span (corrected − raw), exact enough as a Number. */
export function shiftMs(s) {
  return Number(BigInt(s.start_time_unix_nano) - BigInt(s.raw_start_time_unix_nano)) / 1e6;
}

export function durationMs(s) {
  return Number(BigInt(s.end_time_unix_nano) - BigInt(s.start_time_unix_nano)) / 1e6;
}

/** The batches the trace's spans came in (one shift each), in receipt order. */
export function batchesOf(spans) {
  const batches = new Map();
  for (const s of spans) {
    const key = `${s.received_at_ms}/${s.session_id}`;
    if (!batches.has(key)) batches.set(key, { ...s, spans: 0, shift_ms: shiftMs(s) });
    batches.get(key).spans += 1;
  }
  return [...batches.values()].sort((a, b) => a.received_at_ms - b.received_at_ms);
}

/** One sentence on how the corrected times relate to the raw ones. */
export function shiftSummary(spans) {
  const shifts = [...new Set(spans.map((s) => (s.applied ? shiftMs(s) : 0)))];
  if (shifts.length === 1 && shifts[0] === 0) return "not shifted: corrected = raw";
  if (shifts.length === 1) return `corrected = raw ${fmtMs(shifts[0])}`;
  return `shifted per batch: ${shifts.map((v) => fmtMs(v)).join(", ")}`;
}

/** The extent of a lane, in ns: [base, last], and the receipts drawn on it. */
function laneExtent(spans, key) {
  const lane = LANES[key];
  let base = lane.start(spans[0]), last = lane.end(spans[0]);
  for (const s of spans) {
    if (lane.start(s) < base) base = lane.start(s);
    if (lane.end(s) > last) last = lane.end(s);
  }
  // The batches' receipts, on the server's clock: on the corrected lane when they are near
  // (a trace's spans end before their batch is received; far behind, they would squash it).
  const receipts = [];
  if (key === "corrected") {
    for (const b of batchesOf(spans)) {
      const at = BigInt(b.received_at_ms) * 1000000n;
      if (at >= base && at - last <= last - base) receipts.push({ at, batch: b });
    }
    for (const r of receipts) if (r.at > last) last = r.at;
  }
  return { base, range: Math.max(Number(last - base), 1000), receipts };
}

/** An absolute time axis from `extent.base` over `range` ns (shared by the lanes shown, so
 * one constant shift draws the same bars on both, under differently labelled axes). */
function laneScale(extent, range, widthPx) {
  const { base, receipts } = extent;
  const lo = -range * 0.03, hi = range * 1.03;
  const pos = (ns) => ((Number(ns - base) - lo) / (hi - lo)) * 100;
  // The finest step whose labels (as long as the step needs) fit side by side.
  const digits = (st) => (st % 6e10 === 0 ? 5 : st % 1e9 === 0 ? 8 : st % 1e6 === 0 ? 12 : 15);
  const fits = (st) => ((hi - lo) / st) * (labelWidth("00:00:00.000000".slice(0, digits(st))) + 12) <= widthPx;
  const step = STEPS.find(fits) || STEPS[STEPS.length - 1];
  const stepN = BigInt(step);
  const from = base + BigInt(Math.ceil(lo));
  const ticks = [];
  for (let t = ((from + stepN - 1n) / stepN) * stepN; Number(t - base) <= hi; t += stepN) {
    ticks.push(t);
  }
  const days = new Set([dayOfNs(base + BigInt(Math.floor(lo))), dayOfNs(base + BigInt(Math.ceil(hi)))]);
  const text = (t) => fmtNs(t).slice(0, digits(step)); // hh:mm[:ss[.fff[fff]]]
  return { base, pos, ticks, text, receipts, days: [...days].sort() };
}

function axisRow(scale, key, widthPx) {
  const axis = el("div", { class: `wf-axis ${key}` });
  let prevRight = -Infinity;
  for (const t of scale.ticks) {
    const left = scale.pos(t);
    const text = scale.text(t);
    const px = (left / 100) * widthPx;
    const width = labelWidth(text);
    // Keep the first and last labels inside the lane; drop a label that would touch the last.
    const align = px < width / 2 ? "start" : widthPx - px < width / 2 ? "end" : "mid";
    const from = align === "start" ? px : align === "end" ? px - width : px - width / 2;
    if (from < prevRight + 8) continue;
    prevRight = from + width;
    const label = el("span", { class: `wf-tick${align === "mid" ? "" : ` ${align}`}` }, text);
    label.style.left = `${left}%`;
    axis.appendChild(label);
  }
  return axis;
}

function overlay(scale, key, rows) {
  const layer = el("div", { class: `wf-grid ${key}`, "aria-hidden": "true" });
  layer.style.gridRow = `3 / span ${rows}`;
  for (const t of scale.ticks) {
    const line = el("span", { class: "wf-gridline" });
    line.style.left = `${scale.pos(t)}%`;
    layer.appendChild(line);
  }
  for (const r of scale.receipts) {
    const line = el("span", { class: "wf-receipt",
      title: `batch received ${fmtNs(r.at, true)} UTC (server clock)` });
    line.style.left = `${scale.pos(r.at)}%`;
    layer.appendChild(line);
  }
  return layer;
}

function bar(span, scale, key) {
  const lane = LANES[key];
  const cell = el("div", { class: `wf-lane ${key}` });
  const start = scale.pos(lane.start(span)), end = scale.pos(lane.end(span));
  const b = el("div", { class: `wf-bar ${key}${span.applied ? " shifted" : ""}` });
  b.style.left = `${start}%`;
  b.style.width = `${Math.max(end - start, 0)}%`;
  const dur = el("span", { class: "wf-dur" }, fmtMs(durationMs(span), false));
  // The label right of the bar; near the lane's end left of it, or inside a long bar.
  if (end > 78) dur.classList.add(start < 45 ? "inside" : "flip");
  b.appendChild(dur);
  const raw = `${fmtNs(span.raw_start_time_unix_nano, true)} → ${fmtNs(span.raw_end_time_unix_nano)}`;
  const fixed = `${fmtNs(span.start_time_unix_nano, true)} → ${fmtNs(span.end_time_unix_nano)}`;
  b.title = `${span.name}\nraw (browser clock): ${raw}\ncorrected (server clock): ${fixed}\n` +
    `duration ${fmtMs(durationMs(span), false)}; shift ${span.applied ? fmtMs(shiftMs(span)) : "0 (left)"}`;
  cell.appendChild(b);
  return cell;
}

/** Draw the waterfall of trace document `doc` into `container`, as `view`. */
export function drawWaterfall(container, doc, view) {
  container.replaceChildren();
  if (!doc.spans.length) return;
  const keys = view === "both" ? ["raw", "corrected"] : [view];
  const width = container.clientWidth || 1000;
  const nameWidth = Math.max(170, Math.min(300, width * (view === "both" ? 0.2 : 0.25)));
  const laneWidth = (width - nameWidth) / keys.length - 12;
  const rows = spanTree(doc.spans);
  const grid = el("div", { class: `wf wf-${view}`, role: "table",
    "aria-label": `trace waterfall, ${view === "both" ? "raw and corrected" : view}` });
  grid.style.gridTemplateColumns = `${nameWidth}px ${keys.map(() => "minmax(0, 1fr)").join(" ")}`;
  const extents = Object.fromEntries(keys.map((k) => [k, laneExtent(doc.spans, k)]));
  const range = Math.max(...keys.map((k) => extents[k].range));
  const scales = Object.fromEntries(keys.map((k) => [k, laneScale(extents[k], range, laneWidth)]));

  grid.appendChild(el("div", { class: "wf-head wf-corner" }, "span"));
  for (const key of keys) {
    const head = el("div", { class: `wf-head ${key}` });
    head.appendChild(el("b", {}, LANES[key].title));
    const days = scales[key].days;
    head.appendChild(document.createTextNode(
      ` · UTC ${days.length > 1 ? `${days[0]} → ${days[days.length - 1]}` : days[0]}`));
    if (key === "corrected") {
      head.appendChild(el("span", { class: "wf-shift" }, ` · ${shiftSummary(doc.spans)}`));
    }
    grid.appendChild(head);
  }
  grid.appendChild(el("div", { class: "wf-corner" }));
  for (const key of keys) grid.appendChild(axisRow(scales[key], key, laneWidth));
  keys.forEach((key, i) => {
    const layer = overlay(scales[key], key, rows.length);
    layer.style.gridColumn = String(i + 2);
    grid.appendChild(layer);
  });
  for (const { span, depth, orphan } of rows) {
    const name = el("div", { class: "wf-name", role: "rowheader", "data-span": span.span_id });
    name.style.paddingLeft = `${4 + 14 * Math.min(depth, 12)}px`;
    name.appendChild(el("span", { class: "wf-label" }, span.name || "(unnamed)"));
    name.title = `${span.name}\nspan ${span.span_id}${span.parent_span_id ? `, parent ${span.parent_span_id}${orphan ? " (not stored)" : ""}` : ""}` +
      `\nservice ${span.service || "(unknown)"} · session ${span.session_id || "(none)"}` +
      `\nθ = ${fmtMs(span.offset_ms)} in ${fmtInterval(span.lower_ms, span.upper_ms)} (${span.method})`;
    grid.appendChild(name);
    for (const key of keys) {
      const cell = bar(span, scales[key], key);
      cell.dataset.span = span.span_id;
      grid.appendChild(cell);
    }
  }
  container.appendChild(grid);
}
