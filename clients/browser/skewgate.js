// @skewgate/browser: clock-offset evidence for skewgate, as headers for an OTLP/HTTP exporter.
// X-Sent-At (send time), X-Clock-Sync (last NTP-style exchange with GET /v1/clock, and the
// drift epoch: how often Date.now() and performance.now() disagreed), X-Session-Id and
// X-Ingest-Key. No dependencies; never throws; never delays an export.

const VIS = 'visibilitychange';

// A header-safe value, or '' (fetch's Headers throws on CR/LF and non-Latin-1 text).
const clean = (v) => {
  v = typeof v == 'string' || typeof v == 'number' ? String(v).trim() : '';
  return /^[\x20-\x7e]+$/.test(v) ? v : '';
};

// The number as the server wrote it (e.g. "1700000000123.250"), if it is the parsed value.
const raw = (text, key, value) => {
  const m = new RegExp('"' + key + '"\\s*:\\s*(-?[\\d.eE+-]+)').exec(text);
  return m && Number(m[1]) === value ? m[1] : String(value);
};

const num = (v) => typeof v == 'number' && isFinite(v);

const safe = (f) => {
  try {
    return f();
  } catch (e) {
    return undefined;
  }
};

export function createClockSync(options) {
  let o = {};
  let url = '';
  let key = '';
  let fetchFn, now, perf, win, doc, setI, clearI, intervalMs, burst, timeoutMs, jumpMs, maxAgeMs, minGapMs, sid;
  let cur = null; // current exchange (the min-RTT one of the latest good burst)
  let curAt = 0; // monotonic time it was taken
  let epoch = 0; // bumped whenever the wall clock jumps or drifts from the monotonic clock
  let anchor = null; // [Date.now(), performance.now()] at the last check (first: page load)
  let lastTry = -Infinity; // monotonic time the last sync started
  let inflight = null; // promise of the running sync
  let ctrl = null; // AbortController of the running exchange
  let stopped = false;
  let timer;

  safe(() => {
    o = options || {};
    const g = globalThis;
    fetchFn =
      o.fetch ||
      ((u, i) => {
        // like the OTLP exporter: bypass @opentelemetry/instrumentation-fetch (no span, no traceparent)
        const f = fetch.__original || fetch;
        return f(u, i);
      });
    now = o.now || (() => Date.now());
    perf = o.perfNow || (() => performance.now());
    setI = o.setInterval || ((f, ms) => setInterval(f, ms));
    clearI = o.clearInterval || ((t) => clearInterval(t));
    win = 'window' in o ? o.window : g.window;
    doc = 'document' in o ? o.document : g.document;
    intervalMs = o.intervalMs || 300000;
    burst = o.burst || 3;
    timeoutMs = o.timeoutMs || 5000;
    jumpMs = o.jumpMs || 100;
    maxAgeMs = o.maxAgeMs || 2 * intervalMs;
    minGapMs = o.minGapMs == null ? 30000 : o.minGapMs;
    key = clean(o.ingestKey);
    if (o.url) url = String(o.url).replace(/\/+$/, '').replace(/\/v1\/traces$/, '') + '/v1/clock';
    // Page load is the first anchor: Date.now() against timeOrigin + performance.now() (as
    // New Relic and Datadog check) also sees a sleep before this module ran.
    const t = 'timeOrigin' in o ? o.timeOrigin : o.now || o.perfNow ? null : performance.timeOrigin;
    if (num(t)) anchor = [t, 0];
  });

  // The session id now ('' for none): tokens are bound to it.
  sid = () => safe(() => clean(typeof o.sessionId == 'function' ? o.sessionId() : o.sessionId)) || '';

  // Monotonic milliseconds: performance.now(), else Date.now().
  const mono = () => {
    const p = safe(perf);
    return num(p) ? p : now();
  };

  // Compare how far Date.now() and performance.now() moved since the last check. A disagreement
  // beyond jumpMs means the device slept or the clock was set: the exchange describes a clock that
  // no longer exists, so drop it. Returns true on a jump.
  const check = () => {
    const w = safe(now);
    const p = safe(perf);
    if (!num(w) || !num(p)) return false;
    const a = anchor;
    anchor = [w, p];
    if (a && Math.abs(w - a[0] - (p - a[1])) > jumpMs) {
      epoch++;
      cur = null;
      return true;
    }
    return false;
  };

  // One exchange: t0, GET /v1/clock -> {t1, t2[, token]}, t3. Null when failed or implausible.
  const exchange = async () => {
    let t;
    try {
      const c = typeof AbortController == 'function' ? new AbortController() : null;
      ctrl = c;
      if (c) t = setTimeout(() => c.abort(), timeoutMs);
      const s = sid();
      const q = [key && 'key=' + encodeURIComponent(key), s && 'session=' + encodeURIComponent(s)];
      const u = url + (q[0] || q[1] ? '?' + q.filter(Boolean).join('&') : '');
      const t0 = now();
      const res = await fetchFn(u, {
        method: 'GET',
        cache: 'no-store',
        credentials: 'omit',
        signal: c ? c.signal : undefined,
      });
      const t3 = now();
      check(); // a jump during the exchange voids the whole burst (see run)
      if (!res || !res.ok) return null;
      const text = await res.text();
      const j = JSON.parse(text);
      const { t1, t2 } = j;
      let token = j.token == null ? '' : j.token;
      // the token is echoed verbatim inside a ';'-separated header value
      if (typeof token != 'string' || (token && !/^[!-:<-~]+$/.test(token))) return null;
      if (![t0, t1, t2, t3].every(num) || t2 < t1 || t3 < t0 || t3 - t0 < t2 - t1) return null;
      let header = `t0=${t0};t1=${raw(text, 't1', t1)};t2=${raw(text, 't2', t2)};t3=${t3}`;
      if (token) header += ';token=' + token;
      const x = { t0, t1, t2, t3, rtt: t3 - t0 - (t2 - t1), offset: (t1 - t0 + (t2 - t3)) / 2, header, s };
      if (token) x.token = token;
      return x;
    } catch (err) {
      return null;
    } finally {
      if (t) clearTimeout(t);
      ctrl = null;
    }
  };

  // A burst of exchanges; keeps the one with the smallest round trip. Resolves true when the clock
  // jumped meanwhile (the results were dropped and a new burst is due).
  const run = async () => {
    let best = null;
    check();
    const e = epoch;
    try {
      lastTry = mono();
      for (let i = 0; i < burst && url && !stopped && e === epoch; i++) {
        const x = await exchange();
        if (!x) break;
        if (!best || x.rtt < best.rtt) best = x;
      }
      if (best && e === epoch && !stopped) {
        cur = best;
        curAt = mono();
      }
    } catch (err) {
      // keep what we had
    }
    return e !== epoch;
  };

  const latest = () =>
    safe(() => {
      if (cur && !(mono() - curAt <= maxAgeMs)) cur = null; // too old to describe today's clock
      if (!cur) return null;
      const { s, ...x } = cur;
      return x;
    }) || null;

  // Start a burst unless one is running; resolves with latest() when done. Never rejects.
  const sync = () =>
    safe(() => {
      if (!inflight) {
        const p = (inflight = run().then((again) => {
          if (inflight === p) inflight = null;
          return again && !stopped ? sync() : latest();
        }));
      }
      return inflight;
    }) || Promise.resolve(null);

  // Resync on a clock jump, or when the last attempt is older than `need` ms.
  const tick = (need) =>
    safe(() => {
      const jumped = check();
      const age = mono() - lastTry;
      if (!stopped && (jumped || age >= need || age < 0)) sync();
    });

  const due = () => (cur ? intervalMs : Math.min(intervalMs, 60000));
  const onOnline = () => tick(cur ? minGapMs : 0);
  const onVisible = () => safe(() => doc.visibilityState == 'visible' && onOnline());

  // The exporter's `headers` option: evaluated per export attempt, answers at once.
  const headers = () => {
    const h = {};
    const s = sid();
    // an exchange made for another session has a token that no longer verifies
    tick(cur && cur.s !== s ? 0 : due());
    safe(() => {
      const x = cur && cur.s === s && latest();
      // epoch=N tells the gateway the clock may have moved since its earlier batches
      const v = [x && x.header, epoch && 'epoch=' + epoch].filter(Boolean).join(';');
      if (v) h['X-Clock-Sync'] = v;
    });
    if (s) h['X-Session-Id'] = s;
    if (key) h['X-Ingest-Key'] = key;
    safe(() => {
      const t = now();
      if (num(t)) h['X-Sent-At'] = String(t);
    });
    return Promise.resolve(h);
  };

  const stop = () => {
    stopped = true;
    safe(() => clearI(timer));
    safe(() => win.removeEventListener('online', onOnline));
    safe(() => doc.removeEventListener(VIS, onVisible));
    safe(() => ctrl.abort());
  };

  safe(() => win.addEventListener('online', onOnline));
  safe(() => doc.addEventListener(VIS, onVisible));
  safe(() => {
    timer = setI(() => tick(due()), Math.min(15000, intervalMs));
    if (timer && timer.unref) timer.unref();
  });
  sync();

  return { headers, sync, latest, stop };
}
