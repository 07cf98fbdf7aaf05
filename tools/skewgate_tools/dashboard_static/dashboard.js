// skewgate dashboard: a UTC day's sessions (GET /v1/sessions) and figures (GET /v1/stats), one
// session's clock timeline and samples (GET /v1/sessions/{id}/skew), and a sample's trace as a
// raw ↔ corrected waterfall (GET /v1/traces/{id}). No dependencies.
//
// The page state lives in the URL hash (#day=…&session=…&trace=…&view=…): links are real
// links, the back button works, and a view can be shared.
"use strict";

import {
  count, fmtInterval, fmtMs, fmtNs, fmtTime, hardSides, shiftDay, shortId, shortTrace,
  sideNote, todayUtc, dayOfNs,
} from "./format.js";
import { drawTimeline } from "./timeline.js";
import { VIEWS, batchesOf, drawWaterfall, durationMs, shiftMs, shiftSummary, spanTree } from "./waterfall.js";

const PAGE = 50;
const state = {
  day: "", minOffset: "", session: null, trace: null, view: "both",
  cursor: null, rows: 0, samples: null, traceDoc: null, loaded: {},
};
let scrollTo = null; // the section to bring into view once the next navigation has loaded
let refreshing = false;

// --- small DOM helpers -------------------------------------------------------------------

const $ = (selector) => document.querySelector(selector);

function el(tag, attrs = {}, text = null) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

function cell(row, content, cls) {
  const td = el("td", cls ? { class: cls } : {});
  if (content instanceof Node) td.appendChild(content);
  else td.textContent = content;
  row.appendChild(td);
  return td;
}

/** Break only between the bounds of an interval, never inside "-10.72 s". */
const nb = (text) => text.replace(/ (ms|s|min|h|d)\b/g, "\u00a0$1");

function intervalNode(lo, hi, method) {
  const node = el("span", { class: "interval" });
  const text = fmtInterval(lo, hi);
  const notes = `lower ${fmtMs(lo, true, "-inf")}: ${sideNote(method, "lower")}\n` +
    `upper ${fmtMs(hi, true, "+inf")}: ${sideNote(method, "upper")}`;
  node.title = notes;
  if (text.includes("±")) {
    node.textContent = nb(text);
    return node;
  }
  const [lowHard, highHard] = hardSides(method);
  const bound = (value, none, hard) => {
    const b = el("span", { class: `bound ${value === null ? "open" : hard ? "hard" : "assumed"}` },
      nb(fmtMs(value, true, none)));
    return b;
  };
  node.append("[", bound(lo, "-inf", lowHard), ", ", bound(hi, "+inf", highHard), "]");
  return node;
}

function showError(error) {
  const box = $("#error");
  box.textContent = error ? `Could not load: ${error.message || error}` : "";
  box.hidden = !error;
}

async function getJson(url) {
  const response = await fetch(url, { headers: { accept: "application/json" } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.message || `${response.status} ${response.statusText}`);
  return body;
}

// --- navigation: the hash is the state ---------------------------------------------------

function hashOf(next) {
  const params = new URLSearchParams({ day: next.day });
  if (next.minOffset) params.set("min_offset_ms", next.minOffset);
  if (next.session) params.set("session", next.session);
  if (next.trace) params.set("trace", next.trace);
  if (next.view && next.view !== "both") params.set("view", next.view);
  return `#${params}`;
}

function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  const view = params.get("view");
  return {
    day: /^\d{4}-\d{2}-\d{2}$/.test(params.get("day") || "") ? params.get("day") : todayUtc(),
    minOffset: params.get("min_offset_ms") || "",
    session: params.get("session") || null,
    trace: (params.get("trace") || "").toLowerCase() || null,
    view: VIEWS.includes(view) ? view : "both",
  };
}

/** A link to the page with `changes` applied. */
function linkTo(changes) {
  return hashOf({ ...state, ...changes });
}

function navigate(changes, target = null) {
  scrollTo = target;
  const hash = linkTo(changes);
  if (hash === location.hash) apply();
  else location.hash = hash; // → hashchange → apply()
}

async function apply({ force = false } = {}) {
  const next = readHash();
  const dayChanged = force || next.day !== state.loaded.day || next.minOffset !== state.loaded.minOffset;
  const sessionChanged = force || next.session !== state.loaded.session;
  const traceChanged = force || next.trace !== state.loaded.trace;
  Object.assign(state, next);
  $("#day").value = state.day;
  $("#min-offset").value = state.minOffset;
  if (history.replaceState && location.hash !== hashOf(state)) {
    history.replaceState(null, "", hashOf(state));
  }
  try {
    const work = [];
    if (dayChanged) work.push(loadDay(force ? Math.max(state.rows, PAGE) : PAGE));
    if (sessionChanged) work.push(loadSession());
    if (traceChanged) work.push(loadTrace());
    await Promise.all(work);
    if (!traceChanged && state.traceDoc) renderWaterfall(); // the view may have changed
    markSelection();
    showError(null);
    $("#updated").textContent = `updated ${new Date().toISOString().slice(11, 19)} UTC`;
  } catch (error) {
    showError(error);
  }
  const target = scrollTo && document.getElementById(scrollTo);
  scrollTo = null;
  if (target && !target.hidden) target.scrollIntoView({ block: "start" });
}

// --- the day: stats and sessions ---------------------------------------------------------

async function loadDay(limit) {
  state.loaded.day = state.day;
  state.loaded.minOffset = state.minOffset;
  await Promise.all([loadSessions(false, limit), loadStats()]);
}

async function loadSessions(append, limit = PAGE) {
  const params = new URLSearchParams({ day: state.day, limit: String(Math.min(limit, 1000)) });
  if (state.minOffset) params.set("min_offset_ms", state.minOffset);
  if (append && state.cursor) params.set("cursor", state.cursor);
  const doc = await getJson(`/v1/sessions?${params}`);
  if (doc.day !== state.day) return; // a later pick of the day won the race
  const body = $("#sessions tbody");
  if (!append) body.replaceChildren();
  const withDate = doc.sessions.some((s) =>
    s.first_received_at_ms && fmtTime(s.first_received_at_ms, true).slice(0, 10) !== doc.day);
  for (const s of doc.sessions) body.appendChild(sessionRow(s, withDate));
  state.cursor = doc.next_cursor || null;
  state.rows = body.children.length;
  $("#more").hidden = !state.cursor;
  const n = body.children.length;
  $("#list-title").textContent =
    `Sessions on ${doc.day} (UTC), most skewed first: ${count(n, "session")}${state.cursor ? " (more below)" : ""}`;
  const empty = $("#empty");
  empty.hidden = n > 0;
  empty.textContent = n ? "" : `No sessions on ${doc.day}${state.minOffset ? ` with max |θ| ≥ ${state.minOffset} ms` : ""}.`;
  $("#sessions").hidden = n === 0;
  markSelection();
}

function sessionRow(s, withDate) {
  const row = el("tr", { "data-session": s.session_id, tabindex: "0" });
  const sid = el("a", { href: linkTo({ session: s.session_id, trace: null }), class: "sid" },
    shortId(s.session_id));
  sid.title = s.session_id;
  sid.addEventListener("click", (e) => {
    e.preventDefault();
    navigate({ session: s.session_id, trace: null }, "detail");
  });
  cell(row, sid, "sid");
  cell(row, fmtMs(s.max_proven_abs_offset_ms, false), "num");
  cell(row, fmtMs(s.offset_ms), "num");
  cell(row, intervalNode(s.lower_ms, s.upper_ms, s.method), "wrap");
  cell(row, s.method);
  cell(row, `${s.corrected_batches}/${s.batches}`, "num");
  cell(row, s.jumps ? String(s.jumps) : "", "num jump");
  cell(row, s.first_received_at_ms ? fmtTime(s.first_received_at_ms, withDate) : "-", "time");
  cell(row, fmtTime(s.last_received_at_ms, withDate), "time");
  row.addEventListener("click", (e) => {
    if (e.target.closest("a")) return;
    navigate({ session: s.session_id, trace: null }, "detail");
  });
  row.addEventListener("keydown", (e) => {
    if (e.key === "Enter") navigate({ session: s.session_id, trace: null }, "detail");
  });
  return row;
}

async function loadStats() {
  const doc = await getJson(`/v1/stats?day=${encodeURIComponent(state.day)}`);
  if (doc.day !== state.day) return;
  const box = $("#stats");
  box.replaceChildren();
  if (!doc.sessions.total) return;
  const pct = (x) => (x === null ? "-" : `${(100 * x).toFixed(1)}%`);
  const figures = [
    [String(doc.sessions.total), doc.sessions.total === 1 ? "session" : "sessions"],
    [String(doc.batches.total), doc.batches.total === 1 ? "batch" : "batches"],
    [pct(doc.batches.share["100ms"]), "batches proven > 100 ms"],
    [pct(doc.batches.share["1s"]), "> 1 s"],
    [pct(doc.batches.share["1h"]), "> 1 h"],
    [pct(doc.sessions.share["100ms"]), "sessions proven > 100 ms"],
    [String(doc.corrected_batches), "corrected batches"],
    [String(doc.jumps), doc.jumps === 1 ? "jump" : "jumps"],
  ];
  for (const [value, label] of figures) {
    const span = el("span", { class: "figure" });
    span.appendChild(el("b", {}, value));
    span.appendChild(document.createTextNode(` ${label}`));
    box.appendChild(span);
  }
}

// --- one session -------------------------------------------------------------------------

async function loadSession() {
  const id = state.session;
  state.loaded.session = id;
  const section = $("#detail");
  if (!id) {
    section.hidden = true;
    state.samples = null;
    return;
  }
  const base = `/v1/sessions/${encodeURIComponent(id)}/skew`;
  let doc = await getJson(`${base}?limit=1000`);
  const samples = [...doc.samples];
  while (doc.next_cursor) {
    doc = await getJson(`${base}?limit=1000&cursor=${encodeURIComponent(doc.next_cursor)}`);
    samples.push(...doc.samples);
  }
  if (state.session !== id) return; // navigated on meanwhile
  state.samples = samples;
  section.hidden = false;
  renderSession();
}

function selectedSample() {
  if (!state.samples || !state.trace) return null;
  const i = state.samples.findIndex((s) => s.trace_ids.includes(state.trace));
  return i < 0 ? null : i;
}

function renderSession() {
  const samples = state.samples;
  const id = state.session;
  const title = $("#detail-title");
  title.textContent = `Clock offset of session ${shortId(id, 80)}`;
  title.title = id;
  const last = samples[samples.length - 1];
  const corrected = samples.filter((s) => s.applied).length;
  const jumps = samples.filter((s) => s.jump).length;
  $("#summary").textContent = last
    ? `${count(samples.length, "batch", "es")} · ${corrected} corrected · ${count(jumps, "jump")} · latest θ = ${fmtMs(last.offset_ms)} in ${fmtInterval(last.lower_ms, last.upper_ms)} (${last.method})`
    : "no samples";
  drawSessionTimeline();
  const sides = samples.flatMap((s) => {
    const [lh, hh] = hardSides(s.method);
    return [s.lower_ms === null ? null : lh, s.upper_ms === null ? null : hh];
  });
  const present = {
    corrected: corrected > 0,
    uncorrected: corrected < samples.length,
    band: samples.length > 0,
    hard: sides.includes(true),
    assumed: sides.includes(false),
    jump: jumps > 0,
    unbounded: samples.some((s) => s.lower_ms === null || s.upper_ms === null),
  };
  for (const item of $("#legend").querySelectorAll("li")) item.hidden = !present[item.dataset.kind];
  const withDate = new Set(samples.map((s) => fmtTime(s.received_at_ms, true).slice(0, 10))).size > 1;
  const body = $("#samples tbody");
  body.replaceChildren();
  samples.forEach((s, i) => {
    const row = el("tr", { "data-index": String(i) });
    cell(row, String(i + 1), "num");
    cell(row, fmtTime(s.received_at_ms, withDate), "time");
    cell(row, fmtMs(s.offset_ms), "num");
    cell(row, intervalNode(s.lower_ms, s.upper_ms, s.method), "wrap");
    const half = s.lower_ms !== null && s.upper_ms !== null ? fmtMs((s.upper_ms - s.lower_ms) / 2, false) : "inf";
    cell(row, half, "num");
    cell(row, s.method);
    cell(row, s.applied ? "yes" : "no", s.applied ? "yes" : "");
    cell(row, s.jump ? "jump" : "", s.jump ? "jump" : "");
    cell(row, String(s.span_count), "num");
    const flags = el("span", { class: "chips" });
    for (const f of s.flags) flags.appendChild(el("span", { class: `chip${f === "jump" ? " jump" : ""}` }, f));
    cell(row, flags, "wrap");
    const traces = el("span", { class: "chips" });
    for (const t of s.trace_ids) {
      const a = el("a", { href: linkTo({ trace: t }), class: "trace-link", "data-trace": t,
        title: `trace ${t}: open its waterfall` }, shortTrace(t));
      a.addEventListener("click", (e) => { e.preventDefault(); navigate({ trace: t }, "trace"); });
      traces.appendChild(a);
    }
    if (s.more_traces) {
      traces.appendChild(el("span", { class: "more", title: "not listed in the sample (capped to fit one item)" },
        `+${s.more_traces} more`));
    }
    cell(row, traces, "wrap traces");
    body.appendChild(row);
  });
}

function drawSessionTimeline() {
  if (!state.samples) return;
  drawTimeline($("#timeline"), state.samples, {
    selected: selectedSample(),
    onPick: (i) => navigate({ trace: state.samples[i].trace_ids[0] }, "trace"),
  });
}

function markSelection() {
  for (const row of document.querySelectorAll("#sessions tbody tr")) {
    row.classList.toggle("selected", row.dataset.session === state.session);
  }
  const chosen = selectedSample();
  for (const row of document.querySelectorAll("#samples tbody tr")) {
    row.classList.toggle("selected", Number(row.dataset.index) === chosen);
  }
  for (const link of document.querySelectorAll("#samples a.trace-link")) {
    link.classList.toggle("current", link.dataset.trace === state.trace);
  }
  for (const point of document.querySelectorAll("#timeline circle.point")) {
    point.classList.toggle("selected", Number(point.dataset.index) === chosen);
  }
}

// --- one trace ---------------------------------------------------------------------------

async function loadTrace() {
  const id = state.trace;
  state.loaded.trace = id;
  const section = $("#trace");
  if (!id) {
    section.hidden = true;
    state.traceDoc = null;
    return;
  }
  // The session it was opened from finds its batches even in a table without a trace index.
  const hint = state.session ? `?session=${encodeURIComponent(state.session)}` : "";
  const doc = await getJson(`/v1/traces/${encodeURIComponent(id)}${hint}`);
  if (state.trace !== id) return;
  state.traceDoc = doc;
  section.hidden = false;
  renderTrace();
}

function renderTrace() {
  const doc = state.traceDoc;
  $("#trace-title").textContent = `Trace ${doc.trace_id}`;
  const batches = batchesOf(doc.spans);
  const sessions = [...new Set(doc.spans.map((s) => s.session_id).filter(Boolean))];
  const services = [...new Set(doc.spans.map((s) => s.service || "(unknown)"))];
  const summary = $("#trace-summary");
  summary.replaceChildren(
    `${count(doc.spans.length, "span")} · ${count(batches.length, "batch", "es")} · `,
    sessions.length ? "session " : "no session",
  );
  sessions.forEach((sid, i) => {
    if (i) summary.append(", ");
    const a = el("a", { href: linkTo({ session: sid }), title: sid }, shortId(sid));
    a.addEventListener("click", (e) => { e.preventDefault(); navigate({ session: sid }, "detail"); });
    summary.append(a);
  });
  summary.append(` · service ${services.join(", ")} · `);
  summary.appendChild(el("b", { class: "shift" }, shiftSummary(doc.spans)));
  const list = $("#trace-batches");
  list.replaceChildren();
  for (const b of batches) {
    const item = el("li");
    item.append(`batch received ${fmtTime(b.received_at_ms, true)} UTC (${count(b.spans, "span")}): θ = ${fmtMs(b.offset_ms)} in `,
      intervalNode(b.lower_ms, b.upper_ms, b.method), ` (${b.method}) → `,
      el("b", {}, b.applied ? `spans shifted by ${fmtMs(b.shift_ms)}` : "spans left alone"));
    list.appendChild(item);
  }
  for (const button of document.querySelectorAll("#trace-view button")) {
    button.setAttribute("aria-pressed", String(button.dataset.view === state.view));
  }
  renderWaterfall();
  const days = new Set(doc.spans.flatMap((s) => [dayOfNs(s.raw_start_time_unix_nano), dayOfNs(s.start_time_unix_nano)]));
  const withDate = days.size > 1;
  const when = (ns) => {
    const text = fmtNs(ns, withDate);
    return withDate ? text.slice(5) : text; // mm-dd hh:mm:ss.ffffff
  };
  const body = $("#spans tbody");
  body.replaceChildren();
  for (const { span: s, depth } of spanTree(doc.spans)) {
    const row = el("tr", { "data-span": s.span_id });
    const name = cell(row, s.name || "(unnamed)", "wrap name");
    name.style.paddingLeft = `${8 + 12 * Math.min(depth, 12)}px`;
    name.title = `${s.name}\nspan ${s.span_id}`;
    cell(row, fmtMs(durationMs(s), false), "num");
    cell(row, when(s.raw_start_time_unix_nano), "time");
    cell(row, when(s.raw_end_time_unix_nano), "time");
    cell(row, when(s.start_time_unix_nano), "time");
    cell(row, when(s.end_time_unix_nano), "time");
    cell(row, s.applied ? fmtMs(shiftMs(s)) : "0 (left)", "num");
    cell(row, intervalNode(s.lower_ms, s.upper_ms, s.method), "wrap");
    cell(row, s.method);
    body.appendChild(row);
  }
}

function renderWaterfall() {
  if (!state.traceDoc) return;
  for (const button of document.querySelectorAll("#trace-view button")) {
    button.setAttribute("aria-pressed", String(button.dataset.view === state.view));
  }
  drawWaterfall($("#waterfall"), state.traceDoc, state.view);
}

// --- refresh -----------------------------------------------------------------------------

async function refresh() {
  if (refreshing) return;
  refreshing = true;
  try {
    await apply({ force: true });
  } finally {
    refreshing = false;
  }
}

let timer = null;
function setAutoRefresh(seconds) {
  clearInterval(timer);
  timer = seconds > 0 ? setInterval(() => { if (!document.hidden) refresh(); }, seconds * 1000) : null;
}

// --- wiring ------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("#filters").addEventListener("submit", (e) => {
    e.preventDefault();
    navigate({ day: $("#day").value || todayUtc(), minOffset: $("#min-offset").value });
  });
  $("#day").addEventListener("change", () => {
    if ($("#day").value) navigate({ day: $("#day").value });
  });
  $("#prev-day").addEventListener("click", () => navigate({ day: shiftDay(state.day, -1) }));
  $("#next-day").addEventListener("click", () => navigate({ day: shiftDay(state.day, 1) }));
  $("#today").addEventListener("click", () => navigate({ day: todayUtc() }));
  $("#open-trace").addEventListener("submit", (e) => {
    e.preventDefault();
    const id = $("#trace-input").value.trim().toLowerCase();
    if (/^[0-9a-f]{32}$/.test(id)) navigate({ trace: id }, "trace");
    else showError(new Error("a trace id is 32 hex digits"));
  });
  $("#more").addEventListener("click", () => loadSessions(true).catch(showError));
  $("#refresh").addEventListener("click", () => refresh());
  $("#auto-refresh").addEventListener("change", () => setAutoRefresh(Number($("#auto-refresh").value)));
  for (const button of document.querySelectorAll("#trace-view button")) {
    button.addEventListener("click", () => navigate({ view: button.dataset.view }));
  }
  window.addEventListener("hashchange", () => apply());
  let resize = null;
  window.addEventListener("resize", () => {
    clearTimeout(resize);
    resize = setTimeout(() => { drawSessionTimeline(); markSelection(); renderWaterfall(); }, 200);
  });
  apply({ force: true });
});
