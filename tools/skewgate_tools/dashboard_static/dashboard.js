// skewgate dashboard: a day's sessions (GET /v1/sessions), their stats (GET /v1/stats) and one
// session's clock timeline (GET /v1/sessions/{id}/skew) drawn as SVG. No dependencies.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const UNITS = [["d", 86400000], ["h", 3600000], ["min", 60000], ["s", 1000]];
const LINTHRESH = 10; // ms: symlog is linear inside ±10 ms
const LOG_TICKS = [10, 100, 1e3, 1e4, 6e4, 6e5, 36e5, 216e5, 864e5, 6048e5, 2592e6];

const state = { day: "", minOffset: "", cursor: null, session: null };

// --- formatting (same rules as skewgate.cli_format) ---------------------------------------

function fmtMs(value, signed = true, none = "-") {
  if (value === null || value === undefined) return none;
  const sign = signed ? (value > 0 ? "+" : value < 0 ? "-" : "") : "";
  const m = signed ? Math.abs(value) : value;
  for (const [name, size] of UNITS) {
    if (m >= size) return `${sign}${(m / size).toFixed(2)} ${name}`;
  }
  if (m >= 10 || m === 0) return `${sign}${m.toFixed(0)} ms`;
  return `${sign}${m.toFixed(2)} ms`;
}

function fmtInterval(lo, hi) {
  const low = fmtMs(lo, true, "-inf"), high = fmtMs(hi, true, "+inf");
  if (lo !== null && hi !== null && low === high && hi > lo) {
    return `${fmtMs((lo + hi) / 2)} ± ${fmtMs((hi - lo) / 2, false)}`;
  }
  return `[${low}, ${high}]`;
}

function fmtTime(ms, withDate = false) {
  const iso = new Date(ms).toISOString(); // 2026-01-01T09:00:00.000Z
  return withDate ? `${iso.slice(0, 10)} ${iso.slice(11, 23)}` : iso.slice(11, 23);
}

function todayUtc() {
  return new Date().toISOString().slice(0, 10);
}

// --- data --------------------------------------------------------------------------------

async function getJson(url) {
  const response = await fetch(url, { headers: { accept: "application/json" } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.message || `${response.status} ${response.statusText}`);
  return body;
}

function showError(error) {
  const box = document.getElementById("error");
  box.textContent = error ? `Could not load: ${error.message || error}` : "";
  box.hidden = !error;
}

function el(tag, attrs = {}, text = null) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

function cell(row, text, cls) {
  const td = el("td", cls ? { class: cls } : {}, text);
  row.appendChild(td);
  return td;
}

// --- sessions list -----------------------------------------------------------------------

async function loadSessions(append) {
  const params = new URLSearchParams({ day: state.day, limit: "50" });
  if (state.minOffset) params.set("min_offset_ms", state.minOffset);
  if (append && state.cursor) params.set("cursor", state.cursor);
  const doc = await getJson(`/v1/sessions?${params}`);
  const body = document.querySelector("#sessions tbody");
  if (!append) body.replaceChildren();
  for (const s of doc.sessions) {
    const row = el("tr", { "data-session": s.session_id, tabindex: "0" });
    cell(row, s.session_id, "sid").title = s.session_id;
    cell(row, fmtMs(s.max_proven_abs_offset_ms, false), "num");
    cell(row, fmtMs(s.offset_ms), "num");
    cell(row, fmtInterval(s.lower_ms, s.upper_ms));
    cell(row, s.method);
    cell(row, `${s.corrected_batches}/${s.batches}`, "num");
    cell(row, s.jumps ? String(s.jumps) : "", "num");
    cell(row, fmtTime(s.last_received_at_ms));
    row.addEventListener("click", () => selectSession(s.session_id));
    row.addEventListener("keydown", (e) => { if (e.key === "Enter") selectSession(s.session_id); });
    if (s.session_id === state.session) row.classList.add("selected");
    body.appendChild(row);
  }
  state.cursor = doc.next_cursor || null;
  document.getElementById("more").hidden = !state.cursor;
  const count = body.children.length;
  document.getElementById("list-title").textContent =
    `Sessions on ${doc.day}, most skewed first (${count}${state.cursor ? "+" : ""})`;
  const empty = document.getElementById("empty");
  empty.hidden = count > 0;
  empty.textContent = count ? "" : `No sessions on ${doc.day}${state.minOffset ? ` with max |θ| ≥ ${state.minOffset} ms` : ""}.`;
  document.getElementById("sessions").hidden = count === 0;
}

async function loadStats() {
  const doc = await getJson(`/v1/stats?day=${encodeURIComponent(state.day)}`);
  const box = document.getElementById("stats");
  box.replaceChildren();
  if (!doc.sessions.total) return;
  const pct = (x) => (x === null ? "-" : `${(100 * x).toFixed(1)}%`);
  const figures = [
    ["sessions", String(doc.sessions.total)],
    ["batches", String(doc.batches.total)],
    ["batches proven > 100 ms", pct(doc.batches.share["100ms"])],
    ["> 1 s", pct(doc.batches.share["1s"])],
    ["> 1 h", pct(doc.batches.share["1h"])],
    ["sessions proven > 100 ms", pct(doc.sessions.share["100ms"])],
    ["corrected batches", String(doc.corrected_batches)],
    [doc.jumps === 1 ? "jump" : "jumps", String(doc.jumps)],
  ];
  for (const [label, value] of figures) {
    const span = el("span", { class: "figure" });
    span.appendChild(el("b", {}, value));
    span.appendChild(document.createTextNode(` ${label}`));
    box.appendChild(span);
  }
}

// --- one session -------------------------------------------------------------------------

async function selectSession(sessionId) {
  state.session = sessionId;
  writeHash();
  for (const row of document.querySelectorAll("#sessions tbody tr")) {
    row.classList.toggle("selected", row.dataset.session === sessionId);
  }
  try {
    let doc = await getJson(`/v1/sessions/${encodeURIComponent(sessionId)}/skew`);
    const samples = [...doc.samples];
    while (doc.next_cursor) {
      doc = await getJson(`/v1/sessions/${encodeURIComponent(sessionId)}/skew?limit=1000&cursor=${encodeURIComponent(doc.next_cursor)}`);
      samples.push(...doc.samples);
    }
    showError(null);
    renderSession({ session_id: sessionId, samples });
  } catch (error) {
    showError(error);
  }
}

function renderSession(doc) {
  const samples = doc.samples;
  document.getElementById("detail-title").textContent = `Clock offset of session ${doc.session_id}`;
  const last = samples[samples.length - 1];
  const corrected = samples.filter((s) => s.applied).length;
  const jumps = samples.filter((s) => s.jump).length;
  document.getElementById("summary").textContent = last
    ? `${samples.length} batches · ${corrected} corrected · ${jumps} jump${jumps === 1 ? "" : "s"} · latest θ = ${fmtMs(last.offset_ms)} in ${fmtInterval(last.lower_ms, last.upper_ms)} (${last.method})`
    : "no samples";
  drawTimeline(document.getElementById("timeline"), samples);
  const legend = document.getElementById("legend");
  legend.hidden = samples.length === 0;
  const present = {
    corrected: corrected > 0,
    uncorrected: corrected < samples.length,
    band: true,
    jump: jumps > 0,
    unbounded: samples.some((s) => s.lower_ms === null || s.upper_ms === null),
  };
  for (const item of legend.querySelectorAll("li")) item.hidden = !present[item.dataset.kind];
  const withDate = new Set(samples.map((s) => fmtTime(s.received_at_ms, true).slice(0, 10))).size > 1;
  const body = document.querySelector("#samples tbody");
  body.replaceChildren();
  samples.forEach((s, i) => {
    const row = el("tr");
    cell(row, String(i + 1), "num");
    cell(row, fmtTime(s.received_at_ms, withDate));
    cell(row, fmtMs(s.offset_ms), "num");
    cell(row, fmtInterval(s.lower_ms, s.upper_ms));
    cell(row, s.method);
    cell(row, s.applied ? "yes" : "no", s.applied ? "yes" : "");
    cell(row, s.jump ? "jump" : "", s.jump ? "jump" : "");
    cell(row, String(s.span_count), "num");
    cell(row, s.flags.join(", "));
    body.appendChild(row);
  });
  document.getElementById("samples").hidden = samples.length === 0;
}

// --- the timeline picture ----------------------------------------------------------------

function svg(tag, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (parent) parent.appendChild(node);
  return node;
}

function humanUnit(range) {
  if (range >= 2 * 864e5) return ["d", 864e5];
  if (range >= 2 * 36e5) return ["h", 36e5];
  if (range >= 2 * 6e4) return ["min", 6e4];
  if (range >= 2 * 1e3) return ["s", 1e3];
  return ["ms", 1];
}

function niceStep(span, count) {
  const raw = span / count;
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * power >= raw) return m * power;
  return 10 * power;
}

// Y scale: symlog when offsets of very different sizes meet, else linear in a fitting unit,
// around a round reference when the data sit far from 0 in a narrow range.
function yScale(samples) {
  const offsets = samples.map((s) => s.offset_ms);
  const finite = offsets.concat(
    samples.flatMap((s) => [s.lower_ms, s.upper_ms]).filter((v) => v !== null));
  const mags = offsets.map(Math.abs).filter((v) => v > 0);
  const symlog = mags.length > 0 && Math.max(...mags) > 1000 &&
    Math.max(...mags) / Math.max(Math.min(...mags), 1) > 100;
  let lo = Math.min(...finite), hi = Math.max(...finite);
  let ref = 0;
  if (!symlog) {
    const center = (lo + hi) / 2, spread = Math.max(hi - lo, 1);
    if (Math.abs(center) >= 20 * spread) {
      for (const step of [864e5, 36e5, 6e4, 1e3]) {
        if (Math.abs(center) >= 10 * step || step === 1e3) { ref = Math.round(center / step) * step; break; }
      }
    }
  }
  if (ref === 0) { lo = Math.min(lo, 0); hi = Math.max(hi, 0); }
  const f = symlog ? (v) => Math.sign(v) * Math.log10(1 + Math.abs(v) / LINTHRESH) : (v) => v - ref;
  let flo = f(lo), fhi = f(hi);
  const pad = (fhi - flo) * 0.08 || 1;
  flo -= pad; fhi += pad;
  let ticks, label, unit = "ms", size = 1;
  if (symlog) {
    ticks = [0, ...LOG_TICKS, ...LOG_TICKS.map((t) => -t)]
      .filter((t) => f(t) >= flo && f(t) <= fhi).sort((a, b) => a - b)
      .map((t) => ({ f: f(t), text: fmtMs(t).replace(".00", "") }));
    label = "offset θ (symlog)";
  } else {
    [unit, size] = humanUnit(fhi - flo);
    const step = niceStep((fhi - flo) / size, 6) * size;
    ticks = [];
    for (let t = Math.ceil(flo / step) * step; t <= fhi + 1e-9; t += step) {
      const value = Math.abs(t) < step / 1e6 ? 0 : t;
      ticks.push({ f: value, text: `${+(value / size).toFixed(6)}` });
    }
    label = ref ? `θ ${ref > 0 ? "−" : "+"} ${fmtMs(Math.abs(ref), false)} [${unit}]` : `offset θ [${unit}]`;
  }
  return { f, flo, fhi, ticks, label, ref };
}

function timeTicks(t0, t1, count) {
  const span = Math.max(t1 - t0, 1);
  const steps = [1e3, 2e3, 5e3, 1e4, 15e3, 3e4, 6e4, 12e4, 3e5, 6e5, 9e5, 18e5, 36e5, 72e5,
    108e5, 216e5, 432e5, 864e5, 1728e5, 6048e5];
  const step = steps.find((s) => span / s <= count) || steps[steps.length - 1];
  const ticks = [];
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) ticks.push(t);
  return { ticks, withDate: span > 864e5 };
}

function drawTimeline(container, samples) {
  container.replaceChildren();
  if (!samples.length) return;
  const W = Math.max(container.clientWidth || 900, 480), H = 380;
  const m = { left: 78, right: 16, top: 22, bottom: 44 };
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": "clock offset timeline" }, container);
  const times = samples.map((s) => s.received_at_ms);
  let t0 = Math.min(...times), t1 = Math.max(...times);
  const tpad = (t1 - t0) * 0.03 || 30000;
  t0 -= tpad; t1 += tpad;
  const ys = yScale(samples);
  const x = (t) => m.left + ((t - t0) / (t1 - t0)) * (W - m.left - m.right);
  const yf = (fv) => m.top + (1 - (fv - ys.flo) / (ys.fhi - ys.flo)) * (H - m.top - m.bottom);
  const y = (v) => yf(ys.f(v));
  const top = m.top, bottom = H - m.bottom;

  // Grid and axes.
  const grid = svg("g", { class: "grid" }, root);
  const axis = svg("g", { class: "axis" }, root);
  // Drop ticks closer than 14 px to 0 or to the tick kept before (±10 ms on a symlog axis).
  const zeroY = ys.ticks.some((t) => t.f === 0) ? yf(0) : Infinity;
  let lastY = Infinity;
  const ticks = ys.ticks.filter((tick) => {
    const py = yf(tick.f);
    if (tick.f !== 0 && (Math.abs(py - lastY) < 14 || Math.abs(py - zeroY) < 14)) return false;
    lastY = py;
    return true;
  });
  for (const tick of ticks) {
    const py = yf(tick.f);
    svg("line", { x1: m.left, x2: W - m.right, y1: py, y2: py }, grid);
    const text = svg("text", { x: m.left - 6, y: py + 4, "text-anchor": "end" }, axis);
    text.textContent = tick.text;
  }
  const tt = timeTicks(t0, t1, Math.max(3, Math.floor((W - m.left - m.right) / 110)));
  for (const t of tt.ticks) {
    const px = x(t);
    svg("line", { x1: px, x2: px, y1: top, y2: bottom }, grid);
    const text = svg("text", { x: px, y: bottom + 16, "text-anchor": "middle" }, axis);
    const iso = new Date(t).toISOString();
    text.textContent = tt.withDate ? `${iso.slice(5, 10)} ${iso.slice(11, 16)}` : iso.slice(11, 19);
  }
  svg("rect", { class: "domain", x: m.left, y: top, width: W - m.left - m.right,
    height: bottom - top, fill: "none" }, axis);
  const xl = svg("text", { x: (m.left + W - m.right) / 2, y: H - 6, "text-anchor": "middle" }, axis);
  xl.textContent = `received at (UTC, from ${fmtTime(times[0], true).slice(0, 10)})`;
  const yl = svg("text", { x: 14, y: (top + bottom) / 2, "text-anchor": "middle",
    transform: `rotate(-90 14 ${(top + bottom) / 2})` }, axis);
  yl.textContent = ys.label;

  // Bands per clock segment; unbounded sides are clipped to the plot edge.
  // One band per clock segment: a jump opens a new one, and so does a long silence (10x the
  // median spacing, at least 30 min), across which nothing is drawn.
  const steps = times.slice(1).map((t, i) => t - times[i]).sort((a, b) => a - b);
  const gap = Math.max(10 * (steps.length ? steps[Math.floor(steps.length / 2)] : 0), 18e5);
  const segments = [];
  samples.forEach((s, i) => {
    if (i === 0 || s.jump || s.received_at_ms - samples[i - 1].received_at_ms > gap) segments.push([]);
    segments[segments.length - 1].push(s);
  });
  const loY = (s) => (s.lower_ms === null ? bottom : Math.min(bottom, Math.max(top, y(s.lower_ms))));
  const hiY = (s) => (s.upper_ms === null ? top : Math.min(bottom, Math.max(top, y(s.upper_ms))));
  const bands = svg("g", { class: "bands" }, root);
  for (const seg of segments) {
    if (seg.length > 1) {
      const upper = seg.map((s) => `${x(s.received_at_ms)},${hiY(s)}`);
      const lower = seg.slice().reverse().map((s) => `${x(s.received_at_ms)},${loY(s)}`);
      svg("polygon", { class: "band", points: upper.concat(lower).join(" ") }, bands);
    }
    for (const s of seg) {
      const px = x(s.received_at_ms);
      svg("line", { class: "interval", x1: px, x2: px, y1: loY(s), y2: hiY(s),
        "stroke-width": seg.length > 1 ? 1.5 : 5 }, bands);
      if (s.lower_ms === null) svg("path", { class: "unbounded", d: `M${px - 5},${bottom - 8} h10 l-5,8 z` }, bands);
      if (s.upper_ms === null) svg("path", { class: "unbounded", d: `M${px - 5},${top + 8} h10 l-5,-8 z` }, bands);
    }
  }
  if (ys.ref === 0 && ys.f(0) >= ys.flo && ys.f(0) <= ys.fhi) {
    svg("line", { class: "zero", x1: m.left, x2: W - m.right, y1: y(0), y2: y(0) }, root);
  }
  // Jumps.
  for (const s of samples.filter((s) => s.jump)) {
    const px = x(s.received_at_ms);
    svg("line", { class: "jump-line", x1: px, x2: px, y1: top, y2: bottom }, root);
    svg("text", { class: "jump-label", x: px + 4, y: top + 12 }, root).textContent = "jump";
  }
  // The estimate: a thin line per segment, then the points.
  for (const seg of segments) {
    svg("polyline", { class: "trend",
      points: seg.map((s) => `${x(s.received_at_ms)},${y(s.offset_ms)}`).join(" ") }, root);
  }
  const points = svg("g", { class: "points" }, root);
  samples.forEach((s, i) => {
    const c = svg("circle", { class: `point ${s.applied ? "corrected" : "uncorrected"}`,
      cx: x(s.received_at_ms), cy: y(s.offset_ms), r: 4.5, "data-index": i }, points);
    const title = svg("title", {}, c);
    title.textContent = `${fmtTime(s.received_at_ms, true)} UTC\nθ = ${fmtMs(s.offset_ms)} ${fmtInterval(s.lower_ms, s.upper_ms)}\n${s.method}${s.applied ? ", corrected" : ", not corrected"}${s.jump ? ", jump" : ""}${s.flags.length ? `\nflags: ${s.flags.join(", ")}` : ""}`;
  });
}

// --- page state --------------------------------------------------------------------------

function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  state.day = params.get("day") || todayUtc();
  state.minOffset = params.get("min_offset_ms") || "";
  state.session = params.get("session");
}

function writeHash() {
  const params = new URLSearchParams({ day: state.day });
  if (state.minOffset) params.set("min_offset_ms", state.minOffset);
  if (state.session) params.set("session", state.session);
  history.replaceState(null, "", `#${params}`);
}

async function refresh() {
  document.getElementById("day").value = state.day;
  document.getElementById("min-offset").value = state.minOffset;
  state.cursor = null;
  try {
    await Promise.all([loadSessions(false), loadStats()]);
    showError(null);
    if (state.session) await selectSession(state.session);
  } catch (error) {
    showError(error);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  readHash();
  document.getElementById("filters").addEventListener("submit", (e) => {
    e.preventDefault();
    state.day = document.getElementById("day").value || todayUtc();
    state.minOffset = document.getElementById("min-offset").value;
    state.session = null;
    writeHash();
    refresh();
  });
  document.getElementById("more").addEventListener("click", () => loadSessions(true).catch(showError));
  let resize = null;
  window.addEventListener("resize", () => {
    clearTimeout(resize);
    resize = setTimeout(() => { if (state.session) selectSession(state.session); }, 200);
  });
  writeHash();
  refresh();
});
