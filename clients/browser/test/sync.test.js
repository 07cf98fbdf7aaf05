import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setup, flush, delay, response, WALL0 } from '../testing/fakes.js';

const MIN = 60_000;

test('start-up burst of 3 exchanges keeps the one with the smallest round trip', async () => {
  const env = setup({}, (e) => e.queue.push(e.reply({ rtt: 80 }), e.reply({ rtt: 20 }), e.reply({ rtt: 50 })));
  const x = await env.skew.sync();
  assert.equal(env.calls.length, 3);
  assert.equal(x.rtt, 20);
  assert.equal(x.t0, env.calls[1].t0);
  // offset estimate recovers the server's clock offset for a symmetric path
  assert.equal(x.offset, env.serverOffset);
  assert.deepEqual(env.skew.latest(), x);
  env.skew.stop();
});

test('burst size is configurable', async () => {
  const env = setup({ burst: 1 });
  await env.skew.sync();
  assert.equal(env.calls.length, 1);
  env.skew.stop();
});

test('failed and implausible responses are ignored', async (t) => {
  const cases = {
    'HTTP 500': (e) => e.reply({ status: 500 }),
    'HTTP 403': (e) => e.reply({ status: 403 }),
    'not JSON': (e) => e.reply({ mutate: () => '<html>gateway timeout</html>' }),
    'JSON null': (e) => e.reply({ mutate: () => 'null' }),
    'missing t2': (e) => e.reply({ mutate: (b) => ({ t1: b.t1 }) }),
    't1 as a string': (e) => e.reply({ mutate: (b) => ({ t1: String(b.t1), t2: b.t2 }) }),
    't2 < t1': (e) => e.reply({ mutate: (b) => ({ t1: b.t2 + 5, t2: b.t2 }) }),
    'server time longer than the round trip': (e) => e.reply({ mutate: (b) => ({ t1: b.t1 - 1000, t2: b.t2 }) }),
    't3 < t0 (clock stepped back a little during the request)': (e) => () => {
      e.setClock(-5);
      return Promise.resolve(response(JSON.stringify({ t1: e.clock.wall, t2: e.clock.wall })));
    },
    'token not a string': (e) => e.reply({ token: 42 }),
    'token that cannot be echoed': (e) => e.reply({ token: 'a;t1=0' }),
    'network error': () => () => Promise.reject(new TypeError('Failed to fetch')),
    'body read fails': () => () => Promise.resolve({ ok: true, status: 200, text: () => Promise.reject(new Error('reset')) }),
    'null response': () => () => Promise.resolve(null),
  };
  for (const [name, make] of Object.entries(cases)) {
    await t.test(name, async () => {
      const env = setup({}, (e) => e.queue.push(make(e)));
      assert.equal(await env.skew.sync(), null);
      assert.equal(env.calls.length, 1, 'a failed exchange ends the burst');
      assert.equal('X-Clock-Sync' in (await env.skew.headers()), false);
      env.skew.stop();
    });
  }
});

test('a failed later sync keeps the exchange already held', async () => {
  const env = setup();
  const good = await env.skew.sync();
  env.queue.push(env.reply({ status: 503 }));
  env.advance(5 * MIN);
  assert.deepEqual(await env.skew.sync(), good);
  assert.equal((await env.skew.headers())['X-Clock-Sync'], good.header);
  env.skew.stop();
});

test('a newer burst replaces the exchange even with a larger round trip', async () => {
  const env = setup({}, (e) => e.queue.push(e.reply({ rtt: 10 }), e.reply({ rtt: 10 }), e.reply({ rtt: 10 })));
  await env.skew.sync();
  env.server = env.reply({ rtt: 60 });
  env.advance(5 * MIN);
  const x = await env.skew.sync();
  assert.equal(x.rtt, 60);
  env.skew.stop();
});

test('periodic resync every intervalMs, checked on the timer', async () => {
  const env = setup({ intervalMs: 2 * MIN });
  await env.skew.sync();
  assert.equal(env.calls.length, 3);
  assert.equal(env.intervals.length, 1);
  assert.ok(env.intervals[0].ms <= 15_000);
  env.advance(MIN);
  env.fireTimers();
  await flush();
  assert.equal(env.calls.length, 3, 'not due yet');
  env.advance(MIN);
  env.fireTimers();
  await flush();
  assert.equal(env.calls.length, 6);
  env.skew.stop();
});

test('without an exchange, retries after a minute (timer or export)', async () => {
  const env = setup({}, (e) => e.queue.push(() => Promise.reject(new TypeError('offline'))));
  await env.skew.sync();
  assert.equal(env.calls.length, 1);
  env.advance(30_000);
  await env.skew.headers();
  env.fireTimers();
  await flush();
  assert.equal(env.calls.length, 1);
  env.advance(30_000);
  await env.skew.headers(); // an export may trigger it too; it does not wait for it
  await flush();
  assert.equal(env.calls.length, 4);
  assert.ok(env.skew.latest());
  env.skew.stop();
});

test('visibilitychange to visible triggers a sync (not while hidden; at most every minGapMs)', async () => {
  const env = setup();
  await env.skew.sync();
  const n = env.calls.length;
  env.advance(31_000);
  env.document.visibilityState = 'hidden';
  env.document.fire('visibilitychange');
  await flush();
  assert.equal(env.calls.length, n);
  env.document.visibilityState = 'visible';
  env.document.fire('visibilitychange');
  await env.skew.sync();
  assert.equal(env.calls.length, n + 3);
  env.advance(5_000);
  env.document.fire('visibilitychange');
  await flush();
  assert.equal(env.calls.length, n + 3, 'within minGapMs of the last sync');
  env.skew.stop();
});

test('online triggers a sync; at once when no exchange is held', async () => {
  const env = setup({ minGapMs: 10_000 }, (e) => e.queue.push(() => Promise.reject(new TypeError('offline'))));
  await env.skew.sync();
  assert.equal(env.calls.length, 1);
  env.advance(1_000);
  env.window.fire('online');
  const x = await env.skew.sync();
  assert.ok(x);
  assert.equal(env.calls.length, 4);
  env.advance(11_000);
  env.window.fire('online');
  await env.skew.sync();
  assert.equal(env.calls.length, 7);
  env.skew.stop();
});

test('device sleep (Date.now() jumps, performance.now() does not): stale exchange dropped, resync', async () => {
  const env = setup();
  const before = await env.skew.sync();
  let gate;
  env.queue.push((gate = env.pending()).handler);
  env.advance(10_000);
  env.sleep(3_600_000);
  const h = await env.skew.headers();
  // The old exchange describes the old clock; the epoch tells the gateway the clock may have
  // moved since its earlier batches (it flags this one clock_drift).
  assert.equal(h['X-Clock-Sync'], 'epoch=1');
  assert.equal(h['X-Sent-At'], String(env.clock.wall));
  assert.equal(env.skew.latest(), null);
  assert.equal(env.calls.length, 4, 'resync started by the export');
  gate.release();
  const after = await env.skew.sync();
  assert.ok(after.t0 >= before.t3 + 3_600_000);
  assert.equal((await env.skew.headers())['X-Clock-Sync'], after.header + ';epoch=1');
  env.skew.stop();
});

test('clock set back, noticed by the timer: exchange dropped, resync', async () => {
  const env = setup();
  await env.skew.sync();
  env.advance(2_000);
  env.setClock(-10 * MIN);
  let gate;
  env.queue.push((gate = env.pending()).handler);
  env.fireTimers();
  assert.equal(env.skew.latest(), null);
  assert.equal(env.calls.length, 4);
  gate.release();
  assert.ok(await env.skew.sync());
  env.skew.stop();
});

test('small drift between Date.now() and performance.now() is not a jump', async () => {
  const env = setup();
  const x = await env.skew.sync();
  for (let i = 0; i < 10; i++) {
    env.advance(15_000);
    env.setClock(50); // NTP slew-sized steps
    env.fireTimers();
  }
  await flush();
  assert.deepEqual(env.skew.latest(), x);
  assert.equal(env.calls.length, 3);
  env.skew.stop();
});

test('a clock jump during an exchange discards the burst and starts a new one', async () => {
  const env = setup({}, (e) => {
    e.queue.push((url, init) => {
      e.sleep(2 * MIN);
      return e.reply()(url, init);
    });
  });
  const x = await env.skew.sync();
  assert.equal(env.calls.length, 4);
  assert.equal(x.t0, env.calls[1].t0);
  assert.ok(x.t0 >= env.calls[0].t0 + 2 * MIN);
  env.skew.stop();
});

test('a jump during the last exchange of a burst also voids the earlier ones', async () => {
  let gate;
  const env = setup({}, (e) => {
    gate = e.pending();
    e.queue.push(e.reply({ rtt: 10 }), e.reply({ rtt: 10 }), (url, init) => {
      e.sleep(2 * MIN);
      return e.reply()(url, init);
    }, gate.handler);
  });
  await flush();
  assert.equal(env.calls.length, 4, 'a new burst started after the jump');
  assert.equal(env.skew.latest(), null, 'nothing from before the jump is kept');
  assert.equal((await env.skew.headers())['X-Clock-Sync'], 'epoch=1');
  gate.release();
  const x = await env.skew.sync();
  assert.equal(x.t0, env.calls[3].t0);
  env.skew.stop();
});

test('an exchange older than maxAgeMs is no longer sent', async () => {
  const env = setup({ maxAgeMs: 10 * MIN, intervalMs: 5 * MIN });
  await env.skew.sync();
  env.server = () => Promise.reject(new TypeError('offline'));
  env.advance(9 * MIN);
  assert.ok((await env.skew.headers())['X-Clock-Sync']);
  env.advance(2 * MIN);
  await flush();
  assert.equal('X-Clock-Sync' in (await env.skew.headers()), false);
  env.skew.stop();
});

test('stop() removes listeners and the timer, aborts a running exchange; headers() still works', async () => {
  let gate;
  const env = setup({}, (e) => {
    gate = e.pending();
    e.queue.push(gate.handler);
  });
  assert.equal(env.window.listeners.get('online'), 1);
  assert.equal(env.document.listeners.get('visibilitychange'), 1);
  const p = env.skew.sync();
  env.skew.stop();
  assert.equal(env.window.listeners.get('online'), 0);
  assert.equal(env.document.listeners.get('visibilitychange'), 0);
  assert.deepEqual(env.cleared, [env.intervals[0].id]);
  const settled = await Promise.race([p, delay(200).then(() => 'still running')]);
  assert.equal(settled, null, 'the running exchange was aborted');
  const n = env.calls.length;
  env.advance(10 * MIN);
  env.window.fire('online');
  env.document.fire('visibilitychange');
  env.sleep(MIN);
  const h = await env.skew.headers();
  await flush();
  assert.equal(env.calls.length, n);
  assert.ok(h['X-Sent-At']);
});

test('without a url: no requests, X-Sent-At only', async () => {
  const env = setup({ url: undefined });
  await flush();
  assert.equal(env.calls.length, 0);
  assert.equal(await env.skew.sync(), null);
  assert.deepEqual(Object.keys(await env.skew.headers()), ['X-Sent-At']);
  env.skew.stop();
});

test('drift epoch: counts every disagreement, rides on X-Clock-Sync with or without an exchange', async () => {
  const env = setup();
  const x = await env.skew.sync();
  assert.equal((await env.skew.headers())['X-Clock-Sync'], x.header, 'no epoch before any drift');
  env.advance(1_000);
  env.setClock(5_000); // NTP steps the clock
  env.fireTimers();
  let y = await env.skew.sync();
  assert.equal((await env.skew.headers())['X-Clock-Sync'], y.header + ';epoch=1');
  env.advance(1_000);
  env.sleep(MIN);
  assert.equal((await env.skew.headers())['X-Clock-Sync'], 'epoch=2');
  y = await env.skew.sync();
  assert.equal((await env.skew.headers())['X-Clock-Sync'], y.header + ';epoch=2');
  env.skew.stop();
});

test('Date.now() against timeOrigin + performance.now(): a sleep before the module ran counts', async () => {
  // wall = WALL0, performance.now() = 5000: a consistent timeOrigin is WALL0 - 5000.
  const asleep = setup({ timeOrigin: WALL0 - 5_000 - 30_000 }); // 30 s the monotonic clock missed
  const x = await asleep.skew.sync();
  assert.equal((await asleep.skew.headers())['X-Clock-Sync'], x.header + ';epoch=1');
  asleep.skew.stop();
  const fine = setup({ timeOrigin: WALL0 - 5_000 - 20 }); // within jumpMs
  const y = await fine.skew.sync();
  assert.equal((await fine.skew.headers())['X-Clock-Sync'], y.header);
  fine.skew.stop();
});

test('the session id goes to /v1/clock; an exchange made for another session is not sent', async () => {
  let session = 'tab-1';
  const env = setup({ burst: 1, sessionId: () => session, ingestKey: 'pk_1' });
  const x = await env.skew.sync();
  assert.equal(env.calls[0].url, 'https://gw.example/v1/clock?key=pk_1&session=tab-1');
  assert.equal((await env.skew.headers())['X-Clock-Sync'], x.header);
  session = 'tab-2';
  const h = await env.skew.headers();
  assert.equal('X-Clock-Sync' in h, false, 'its token is bound to tab-1');
  assert.equal(h['X-Session-Id'], 'tab-2');
  assert.equal(env.calls.length, 2, 'and a sync started at once');
  const y = await env.skew.sync();
  assert.equal(env.calls.at(-1).url, 'https://gw.example/v1/clock?key=pk_1&session=tab-2');
  assert.equal((await env.skew.headers())['X-Clock-Sync'], y.header);
  env.skew.stop();
});
