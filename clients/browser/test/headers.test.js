import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createClockSync } from '../skewgate.js';
import { setup, flush, delay, response, WALL0 } from '../testing/fakes.js';

test('before any exchange: only X-Sent-At, from the injected now()', async () => {
  const env = setup({}, (e) => e.queue.push(() => Promise.reject(new TypeError('Failed to fetch'))));
  await env.skew.sync();
  assert.equal(env.skew.latest(), null);
  env.advance(1234);
  assert.deepEqual(await env.skew.headers(), { 'X-Sent-At': String(WALL0 + 1234) });
  env.skew.stop();
});

test('X-Sent-At is taken when headers() is called, for every call (export and retry)', async () => {
  const env = setup();
  await env.skew.sync();
  const h = env.skew.headers; // the exporter calls it detached
  const a = await h();
  env.advance(1500);
  const b = await h();
  assert.equal(a['X-Sent-At'], String(env.clock.wall - 1500));
  assert.equal(b['X-Sent-At'], String(env.clock.wall));
  env.skew.stop();
});

test('X-Clock-Sync: t0;t1;t2;t3;token with t1, t2 and token exactly as the server wrote them', async () => {
  const body = '{"t2": 1.7000000001245e12, "t1":1700000000123.250, "token":"v1.abc-DEF_=="}';
  const env = setup({ burst: 1 }, (e) => {
    e.queue.push(() => {
      e.advance(30);
      return Promise.resolve(response(body));
    });
  });
  const x = await env.skew.sync();
  const t0 = WALL0;
  const t3 = WALL0 + 30;
  assert.equal(x.header, `t0=${t0};t1=1700000000123.250;t2=1.7000000001245e12;t3=${t3};token=v1.abc-DEF_==`);
  assert.equal(x.t0, t0);
  assert.equal(x.t1, 1700000000123.25);
  assert.equal(x.t2, 1700000000124.5);
  assert.equal(x.t3, t3);
  assert.equal(x.token, 'v1.abc-DEF_==');
  assert.equal(x.rtt, 30 - 1.25);
  assert.equal(x.offset, (1700000000123.25 - t0 + (1700000000124.5 - t3)) / 2);
  const h = await env.skew.headers();
  assert.equal(h['X-Clock-Sync'], x.header);
  assert.deepEqual(Object.keys(h).sort(), ['X-Clock-Sync', 'X-Sent-At']);
  env.skew.stop();
});

test('X-Clock-Sync without token when the server sends none', async () => {
  const env = setup({ burst: 1 });
  const x = await env.skew.sync();
  assert.match(x.header, /^t0=\d+;t1=\d+(\.\d+)?;t2=\d+(\.\d+)?;t3=\d+$/);
  assert.equal('token' in x, false);
  env.skew.stop();
});

test('the clock request: {base}/v1/clock, GET, no-store, no credentials, abortable, key in the query', async () => {
  const env = setup({ url: 'https://gw.example/prod/v1/traces', ingestKey: 'pk_1 2' });
  await env.skew.sync();
  const { url, init } = env.calls[0];
  assert.equal(url, 'https://gw.example/prod/v1/clock?key=pk_1%202');
  assert.equal(init.method, 'GET');
  assert.equal(init.cache, 'no-store');
  assert.equal(init.credentials, 'omit');
  assert.ok(init.signal instanceof AbortSignal);
  assert.equal(init.headers, undefined); // a CORS-simple request: no preflight before t0..t3
  env.skew.stop();

  const env2 = setup({ url: 'https://gw.example/' });
  await env2.skew.sync();
  assert.equal(env2.calls[0].url, 'https://gw.example/v1/clock');
  env2.skew.stop();
});

test('X-Ingest-Key when configured', async () => {
  const env = setup({ ingestKey: 'pk_live_123' });
  const h = await env.skew.headers();
  assert.equal(h['X-Ingest-Key'], 'pk_live_123');
  env.skew.stop();
  const env2 = setup();
  assert.equal('X-Ingest-Key' in (await env2.skew.headers()), false);
  env2.skew.stop();
});

test('X-Session-Id from a string or a function, evaluated per call; unusable values omitted', async () => {
  const env = setup({ sessionId: 'sess-1' });
  assert.equal((await env.skew.headers())['X-Session-Id'], 'sess-1');
  env.skew.stop();

  let id = 'a';
  const env2 = setup({ sessionId: () => id });
  assert.equal((await env2.skew.headers())['X-Session-Id'], 'a');
  id = 'b';
  assert.equal((await env2.skew.headers())['X-Session-Id'], 'b');
  for (const bad of [null, undefined, '', '  ', 'x\r\nSet-Cookie: y', 'sessão', { id: 1 }]) {
    id = bad;
    const h = await env2.skew.headers();
    assert.equal('X-Session-Id' in h, false, `value ${JSON.stringify(bad)}`);
    assert.ok(h['X-Sent-At']);
  }
  env2.skew.stop();
});

test('headers() answers at once while a sync is in flight', async () => {
  let gate;
  const env = setup({}, (e) => {
    gate = e.pending();
    e.queue.push(gate.handler);
  });
  const result = await Promise.race([env.skew.headers(), delay(100).then(() => 'timed out')]);
  assert.deepEqual(result, { 'X-Sent-At': String(WALL0) });
  // a second sync joins the running one instead of starting another
  const before = env.calls.length;
  const p = env.skew.sync();
  assert.equal(env.calls.length, before);
  gate.release();
  const x = await p;
  assert.ok(x);
  assert.equal((await env.skew.headers())['X-Clock-Sync'], x.header);
  env.skew.stop();
});

test('never throws: fetch throwing synchronously', async () => {
  const skew = createClockSync({
    url: 'https://gw.example',
    fetch: () => {
      throw new TypeError('boom');
    },
    window: null,
    document: null,
    setInterval: () => 1,
    clearInterval: () => {},
  });
  assert.equal(await skew.sync(), null);
  assert.equal(skew.latest(), null);
  assert.ok((await skew.headers())['X-Sent-At']);
  skew.stop();
});

test('never throws: now(), perfNow(), sessionId(), timers and event targets that throw', async () => {
  const boom = () => {
    throw new Error('boom');
  };
  const evil = { addEventListener: boom, removeEventListener: boom, visibilityState: 'visible' };
  const skew = createClockSync({
    url: 'https://gw.example',
    fetch: async () => response('{"t1":1,"t2":2}'),
    now: boom,
    perfNow: boom,
    sessionId: boom,
    setInterval: boom,
    clearInterval: boom,
    window: evil,
    document: evil,
  });
  assert.deepEqual(await skew.headers(), {});
  assert.equal(await skew.sync(), null);
  assert.equal(skew.latest(), null);
  assert.doesNotThrow(() => skew.stop());
});

test('never throws: no options, null options, odd options', async () => {
  for (const opts of [undefined, null, {}, { url: 42, burst: -1 }, { url: 'not a url', fetch: 'nope' }]) {
    const skew = createClockSync({ ...(opts || {}), window: null, document: null, setInterval: () => 0, clearInterval: () => {} });
    const h = await skew.headers();
    assert.equal(typeof h['X-Sent-At'], 'string');
    assert.ok((await skew.sync()) === null);
    skew.stop();
  }
  // the real defaults, in a host without window/document/performance quirks
  const skew = createClockSync();
  assert.ok((await skew.headers())['X-Sent-At']);
  skew.stop();
  await flush();
});
