// Test doubles for skewgate.js: a fake gateway (fetch), fake clocks, fake timers, fake event targets.
// Kept outside test/ so that `node --test` does not run it as a test file.

import { createClockSync } from '../skewgate.js';

export const WALL0 = 1_700_000_000_000;

/** Lets every pending promise chain settle (all fakes resolve in microtasks). */
export const flush = () => new Promise((resolve) => setImmediate(resolve));

export const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A Response-like object whose text() resolves in a microtask. */
export const response = (body, status = 200) => ({
  ok: status >= 200 && status < 300,
  status,
  text: async () => body,
});

class FakeTarget extends EventTarget {
  constructor() {
    super();
    this.listeners = new Map(); // type -> count
  }
  addEventListener(type, fn, opts) {
    this.listeners.set(type, (this.listeners.get(type) || 0) + 1);
    super.addEventListener(type, fn, opts);
  }
  removeEventListener(type, fn, opts) {
    this.listeners.set(type, (this.listeners.get(type) || 0) - 1);
    super.removeEventListener(type, fn, opts);
  }
  fire(type) {
    this.dispatchEvent(new Event(type));
  }
}

/**
 * Builds a skewgate client wired to fakes.
 * env.clock.wall is the device's Date.now(), env.clock.mono its performance.now().
 * Fetches are answered by env.queue (one handler per request) and then by env.server;
 * `prime(env)` runs before the client starts (its start-up burst fetches at once).
 */
export function setup(options = {}, prime = () => {}) {
  const clock = { wall: WALL0, mono: 5_000 };
  const env = {
    clock,
    calls: [],
    queue: [],
    intervals: [],
    cleared: [],
    window: new FakeTarget(),
    document: new FakeTarget(),
    serverOffset: 250, // server clock - device clock
    server: null,
    /** Time passes normally: both clocks move. */
    advance(ms) {
      clock.wall += ms;
      clock.mono += ms;
    },
    /** Device asleep: the wall clock moves, performance.now() does not. */
    sleep(ms) {
      clock.wall += ms;
    },
    /** User or NTP sets the clock. */
    setClock(deltaMs) {
      clock.wall += deltaMs;
    },
    /** Runs the interval timers as if they fired. */
    fireTimers() {
      for (const t of env.intervals) if (!env.cleared.includes(t.id)) t.fn();
    },
  };
  env.document.visibilityState = 'visible';

  /** A handler answering like the gateway: half the round trip out, `proc` ms inside, half back. */
  env.reply = ({ rtt = 40, proc = 1, status = 200, token, mutate } = {}) =>
    () => {
      env.advance(rtt / 2);
      const t1 = clock.wall + env.serverOffset;
      env.advance(proc);
      const t2 = clock.wall + env.serverOffset;
      env.advance(rtt / 2);
      let body = { t1, t2 };
      if (token !== undefined) body.token = token;
      if (mutate) body = mutate(body);
      return Promise.resolve(response(typeof body == 'string' ? body : JSON.stringify(body), status));
    };

  /** A handler that never answers until released (or aborted). */
  env.pending = () => {
    const p = {};
    p.handler = (url, init) =>
      new Promise((resolve, reject) => {
        p.release = (h = env.reply()) => h(url, init).then(resolve, reject);
        init.signal?.addEventListener('abort', () => reject(new Error('aborted')));
      });
    return p;
  };

  env.server = env.reply();
  prime(env); // e.g. queue special answers for the start-up burst

  const fetch = (url, init) => {
    env.calls.push({ url, init, t0: clock.wall });
    const h = env.queue.shift() || env.server;
    return h(url, init);
  };

  let nextId = 1;
  const skew = createClockSync({
    url: 'https://gw.example',
    fetch,
    now: () => clock.wall,
    perfNow: () => clock.mono,
    setInterval: (fn, ms) => {
      const id = nextId++;
      env.intervals.push({ id, fn, ms });
      return id;
    },
    clearInterval: (id) => env.cleared.push(id),
    window: env.window,
    document: env.document,
    ...options,
  });
  env.skew = skew;
  return env;
}
