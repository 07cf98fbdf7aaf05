// The local runner's demo page (GET /demo, tools/skewgate_tools/local/static/index.html):
// makes spans with the real OpenTelemetry JS web SDK and the skewgate companion, lets you shift the
// page's clock, and shows the gateway's estimate for the page's session.
//
// Bundled into static/demo.js by `make demo` (a dependency of `make run`) with
//   node tests/browser/build.mjs demo tools/skewgate_tools/local/static/demo.js
//
// The clock shift: Date.now() (span times, X-Sent-At, the companion's t0/t3) and
// performance.timeOrigin (performance-entry times) are both moved by the chosen offset;
// performance.now() is left alone, as a real clock step would leave the monotonic clock.

import { context, diag, DiagConsoleLogger, DiagLogLevel, trace } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, WebTracerProvider } from '@opentelemetry/sdk-trace-web';
import { createClockSync } from '../../clients/browser/skewgate.js';

// --- the page clock ------------------------------------------------------------------------------
const realNow = Date.now.bind(Date);
const realOrigin = performance.timeOrigin;
let shiftMs = 0;
Date.now = () => realNow() + shiftMs;
Object.defineProperty(performance, 'timeOrigin', { configurable: true, get: () => realOrigin + shiftMs });

const DAY = 86400000;
const PRESETS = [
  ['synced', 0],
  ['+800 ms', 800],
  ['−800 ms', -800],
  ['+2 min', 120000],
  ['−3 days', -3 * DAY],
];

// What the gateway's flags mean (docs/design.md §1), for the ones this page can provoke.
const FLAG_NOTES = {
  jump: 'this interval does not meet the session\'s earlier ones: the clock stepped, a new segment starts',
  straddles_step:
    'the round trip / send time show the step but the spans\' own bound does not: they may have been ' +
    'stamped on the old clock, so nothing is shifted (press “New session” to measure the new clock alone)',
  possible_step: 'the upper bound rose more than a slow upload explains: the session\'s history upper side was dropped',
  sleep_drift: 'spans older than any batching explains: only their hard causality bound counts',
  clock_drift:
    'the companion saw Date.now() and performance.now() disagree (a sleep, or this page\'s clock shift): ' +
    'a new clock segment starts here',
  shift_moved: 'this batch is shifted differently from the segment\'s previous one: compare its spans with care',
  future: 'its spans would have ended after the gateway received them: moved back so the last one ends at receipt',
  over_cap: 'beyond MAX_CORRECTION_MS: not corrected (only moved back to receipt if it came from the future)',
  implausible_sync: 'the X-Clock-Sync header was malformed or impossible, or its token was not for this session',
  replayed_sync: 'a round trip this session had already counted, resent with other client times, or an older one',
  no_session: 'no session.id: no history',
};

diag.setLogger(new DiagConsoleLogger(), DiagLogLevel.WARN);

// --- state ---------------------------------------------------------------------------------------
const params = new URLSearchParams(location.search);
const gateway = location.origin; // the local runner serves /demo and the API on one origin
const ingestKey = params.get('key') || undefined;
const newSessionId = () => `demo-${crypto.randomUUID().slice(0, 8)}`;
let sessionId = newSessionId();
const truths = new Map(); // trace id -> true θ (server − client) when it was exported
let batches = 0;
let syncing = null;

const skew = createClockSync({ url: gateway, sessionId: () => sessionId, ingestKey });
syncing = skew.sync();

// --- helpers -------------------------------------------------------------------------------------
const $ = (sel) => document.querySelector(sel);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
};
const svg = (tag, attrs = {}) => {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
};

function human(ms) {
  const a = Math.abs(ms);
  const sign = ms < 0 ? '−' : '+';
  if (a >= DAY) return `${sign}${(a / DAY).toFixed(2)} d`;
  if (a >= 3600000) return `${sign}${(a / 3600000).toFixed(2)} h`;
  if (a >= 60000) return `${sign}${(a / 60000).toFixed(2)} min`;
  if (a >= 1000) return `${sign}${(a / 1000).toFixed(2)} s`;
  return null;
}
// Milliseconds with a sign and thin-space thousands groups; `long` adds days/hours/… when large.
function fmtMs(ms, long = true) {
  if (ms == null) return '∞';
  const [int, frac] = Math.abs(ms).toFixed(1).split('.');
  const s = `${ms < 0 ? '−' : ms > 0 ? '+' : ''}${int.replace(/\B(?=(\d{3})+(?!\d))/g, '\u2009')}.${frac} ms`;
  const h = long ? human(ms) : null;
  return h ? `${s} (${h})` : s;
}
const fmtBound = (ms, side) => (ms == null ? (side < 0 ? '−∞' : '+∞') : fmtMs(ms, false));

function setStatus(text, bad = false) {
  const s = $('#status');
  s.textContent = text;
  s.className = bad ? 'bad' : '';
}

// --- the clock control ---------------------------------------------------------------------------
function applyShift(ms) {
  if (!Number.isFinite(ms)) return setStatus('the offset must be a number of milliseconds', true);
  shiftMs = ms;
  $('#offset').value = String(ms);
  // A changed clock makes the held round trip stale: measure again before the next export.
  syncing = skew.sync();
  syncing.then(renderCompanion);
  renderClock();
  setStatus(`page clock shifted by ${fmtMs(ms)}; the companion is re-measuring`);
}

function renderClock() {
  const page = new Date(Date.now()).toISOString();
  const real = new Date(realNow()).toISOString();
  $('#page-clock').textContent = page;
  $('#real-clock').textContent = real;
  $('#shift').textContent = fmtMs(shiftMs);
}

function renderCompanion() {
  const x = skew.latest();
  $('#exchange').textContent = x
    ? `round trip ${x.rtt.toFixed(1)} ms, offset ${fmtMs(x.offset)}`
    : 'no exchange held (yet)';
  $('#sync-header').textContent = x ? x.header : '—';
}

// --- spans ---------------------------------------------------------------------------------------
function makeExporter(mode) {
  const url = `${gateway}/v1/traces`;
  if (mode === 'companion') return new OTLPTraceExporter({ url, headers: skew.headers });
  const keyHeader = ingestKey ? { 'X-Ingest-Key': ingestKey } : {};
  if (mode === 'sent_at') {
    return new OTLPTraceExporter({ url, headers: async () => ({ 'X-Sent-At': String(Date.now()), ...keyHeader }) });
  }
  return new OTLPTraceExporter({ url: ingestKey ? `${url}?key=${encodeURIComponent(ingestKey)}` : url });
}

async function makeSpans() {
  const button = $('#make-spans');
  button.disabled = true;
  try {
    const mode = $('#mode').value;
    if (mode === 'companion') {
      await syncing;
      if (!skew.latest()) await skew.sync();
      renderCompanion();
    }
    const provider = new WebTracerProvider({
      resource: resourceFromAttributes({ 'service.name': 'skewgate-demo', 'session.id': sessionId }),
      spanProcessors: [new BatchSpanProcessor(makeExporter(mode))],
    });
    const tracer = provider.getTracer('skewgate-demo');
    const root = tracer.startSpan('demo.click', { attributes: { 'demo.mode': mode, 'demo.clock_shift_ms': shiftMs } });
    const ctx = trace.setSpan(context.active(), root);
    for (const [name, ms] of [['load-cart', 40], ['price', 25], ['render', 15]]) {
      const span = tracer.startSpan(name, undefined, ctx);
      await sleep(ms);
      span.end();
    }
    root.end();
    const traceId = root.spanContext().traceId;
    truths.set(traceId, -shiftMs);
    await provider.forceFlush();
    await provider.shutdown();
    batches++;
    setStatus(`exported 4 spans (trace ${traceId}), exporter: ${$('#mode').selectedOptions[0].textContent}`);
    await refresh();
  } catch (err) {
    setStatus(`export failed: ${err && err.message ? err.message : err}`, true);
  } finally {
    button.disabled = false;
  }
}

// --- the gateway's estimate ----------------------------------------------------------------------
async function refresh() {
  $('#session').textContent = sessionId;
  if (!batches) {
    $('#samples tbody').replaceChildren(el('tr', {}, el('td', { colspan: 11, class: 'empty' }, 'no batch sent yet: press “Make spans”')));
    return;
  }
  const res = await fetch(`${gateway}/v1/sessions/${encodeURIComponent(sessionId)}/skew`, { cache: 'no-store' });
  if (!res.ok) {
    setStatus(`GET /v1/sessions/${sessionId}/skew: HTTP ${res.status}`, true);
    return;
  }
  const doc = await res.json();
  renderSamples(doc.samples || []);
}

// A one-line timeline: the interval [lower, upper] (bar; an open side runs to the edge), the
// estimate (dot), the true offset (red tick) and zero (grey dashes).
function intervalPlot(s, truth) {
  const W = 150;
  const H = 22;
  const pts = [s.offset_ms];
  if (s.lower_ms != null) pts.push(s.lower_ms);
  if (s.upper_ms != null) pts.push(s.upper_ms);
  if (truth != null) pts.push(truth);
  let lo = Math.min(...pts);
  let hi = Math.max(...pts);
  const pad = Math.max((hi - lo) * 0.15, 5);
  lo -= pad;
  hi += pad;
  const x = (v) => 4 + ((v - lo) / (hi - lo)) * (W - 8);
  const g = svg('svg', { width: W, height: H, viewBox: `0 0 ${W} ${H}`, class: 'plot' });
  const title = svg('title');
  title.textContent = `[${fmtBound(s.lower_ms, -1)}, ${fmtBound(s.upper_ms, 1)}], estimate ${fmtMs(s.offset_ms)}` +
    (truth != null ? `, true ${fmtMs(truth)}` : '');
  g.append(title);
  g.append(svg('line', { x1: 0, x2: W, y1: H / 2, y2: H / 2, class: 'axis' }));
  if (lo < 0 && hi > 0) g.append(svg('line', { x1: x(0), x2: x(0), y1: 2, y2: H - 2, class: 'zero' }));
  const a = s.lower_ms == null ? 0 : x(s.lower_ms);
  const b = s.upper_ms == null ? W : x(s.upper_ms);
  g.append(svg('rect', { x: a, y: H / 2 - 4, width: Math.max(b - a, 1.5), height: 8, rx: 2, class: s.applied ? 'bar applied' : 'bar' }));
  if (truth != null) g.append(svg('line', { x1: x(truth), x2: x(truth), y1: 1, y2: H - 1, class: 'truth' }));
  g.append(svg('circle', { cx: x(s.offset_ms), cy: H / 2, r: 3, class: 'dot' }));
  return g;
}

function renderSamples(samples) {
  const rows = samples.map((s, i) => {
    const truth = s.trace_ids.map((t) => truths.get(t)).find((v) => v != null);
    const width = s.lower_ms != null && s.upper_ms != null ? fmtMs(s.upper_ms - s.lower_ms, false).replace('+', '') : '∞';
    return el(
      'tr',
      { class: s.jump ? 'jump' : '' },
      el('td', {}, i + 1),
      el('td', {}, new Date(s.received_at_ms).toISOString().slice(11, 23)),
      el('td', { class: 'num offset' }, fmtMs(s.offset_ms, false), ...(human(s.offset_ms) ? [el('small', {}, human(s.offset_ms))] : [])),
      el('td', { class: 'num bounds' }, `[${fmtBound(s.lower_ms, -1)},`, el('br'), ` ${fmtBound(s.upper_ms, 1)}]`),
      el('td', { class: 'num' }, width),
      el('td', { class: 'method' }, s.method),
      el('td', { class: 'applied' }, s.applied ? 'yes' : 'no'),
      el('td', { class: 'jump-cell' }, s.jump ? 'yes' : 'no'),
      el('td', { class: 'flags' }, s.flags.length ? s.flags.join(', ') : '—'),
      el('td', { class: 'num truth-cell' }, truth == null ? '?' : fmtMs(truth, false)),
      el('td', {}, intervalPlot(s, truth)),
    );
  });
  $('#samples tbody').replaceChildren(...rows);
  const seen = [...new Set(samples.flatMap((s) => s.flags))];
  $('#flag-notes').replaceChildren(
    ...seen.map((f) => el('li', {}, el('code', {}, f), ': ', FLAG_NOTES[f] || 'see docs/design.md §1')),
  );
  const last = samples[samples.length - 1];
  $('#estimate').textContent = last
    ? `${fmtMs(last.offset_ms)} by ${last.method}: ${last.applied ? 'spans shifted' : 'spans left as sent'}`
    : '—';
}

// --- wiring --------------------------------------------------------------------------------------
function init() {
  const presets = $('#presets');
  for (const [label, ms] of PRESETS) {
    const b = el('button', { type: 'button', 'data-offset': String(ms) }, label);
    b.addEventListener('click', () => applyShift(ms));
    presets.append(b);
  }
  $('#clock-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    applyShift(Number($('#offset').value));
  });
  $('#make-spans').addEventListener('click', makeSpans);
  $('#refresh').addEventListener('click', refresh);
  $('#new-session').addEventListener('click', () => {
    sessionId = newSessionId();
    batches = 0;
    // The gateway binds a round trip to the session it was made for: measure the new one's.
    syncing = skew.sync();
    syncing.then(renderCompanion);
    refresh();
    setStatus(`new session ${sessionId}`);
  });
  $('#gateway').textContent = gateway;
  $('#key').textContent = ingestKey ? ingestKey : '(none)';
  renderClock();
  setInterval(renderClock, 250);
  syncing.then(renderCompanion);
  refresh();
  document.body.dataset.ready = 'true';
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
else init();
