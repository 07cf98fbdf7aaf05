// The page tests/test_browser_e2e.py drives in headless Chromium: the real OpenTelemetry JS web SDK
// (WebTracerProvider, BatchSpanProcessor, OTLPTraceExporter over fetch) exporting to skewgate from
// another origin, in one of three exporter set-ups:
//   companion  headers from createClockSync (X-Clock-Sync, X-Sent-At, X-Session-Id, X-Ingest-Key)
//   sent_at    the one-line plain exporter: headers: async () => ({ 'X-Sent-At': String(Date.now()) })
//   plain      no headers at all (the ingest key rides in the URL's ?key=)
// The page's clock is whatever the browser process has: the test shifts it with libfaketime.

import { context, diag, DiagConsoleLogger, DiagLogLevel, trace } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, WebTracerProvider } from '@opentelemetry/sdk-trace-web';
import { createClockSync } from '../../clients/browser/skewgate.js';

// Export failures (CORS, 4xx) surface as console errors, which the test fails on.
diag.setLogger(new DiagConsoleLogger(), DiagLogLevel.WARN);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Both clocks OTel JS reads: Date.now() (span start/end) and performance.timeOrigin (performance
// entries). The test compares them with the real time.
window.clocks = () => ({ dateNow: Date.now(), perfNow: performance.timeOrigin + performance.now() });

// extraHeaders (sent_at mode): more request headers, e.g. an Authorization a vendor's exporter
// set-up adds; the gateway's preflight must allow them (CORS_ALLOW_HEADERS).
window.runCase = async ({ gateway, mode, key, sessionId, extraHeaders = {} }) => {
  let url = `${gateway}/v1/traces`;
  let headers;
  let skew = null;
  let exchange = null;
  if (mode === 'companion') {
    skew = createClockSync({ url: gateway, sessionId, ingestKey: key });
    exchange = await skew.sync(); // the start-up burst (3 exchanges); headers() never waits for it
    if (!exchange) throw new Error('clock sync with the gateway failed');
    headers = skew.headers;
  } else if (mode === 'sent_at') {
    headers = async () => ({ 'X-Sent-At': String(Date.now()), 'X-Ingest-Key': key, ...extraHeaders });
  } else if (mode === 'plain') {
    url += `?key=${encodeURIComponent(key)}`;
  } else {
    throw new Error(`unknown mode ${mode}`);
  }

  const exporter = new OTLPTraceExporter(headers ? { url, headers } : { url });
  const provider = new WebTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'browser-e2e', 'session.id': sessionId }),
    spanProcessors: [new BatchSpanProcessor(exporter)],
  });
  const tracer = provider.getTracer('skewgate-e2e');

  const parent = tracer.startSpan('checkout', { attributes: { 'e2e.mode': mode } });
  const ctx = trace.setSpan(context.active(), parent);
  for (const name of ['cart', 'pay']) {
    const child = tracer.startSpan(name, undefined, ctx);
    await sleep(15);
    child.end();
  }
  parent.addEvent('paid');
  parent.end();

  await provider.forceFlush(); // resolves after the gateway's 200 (or after a failed export)
  await provider.shutdown();
  if (skew) {
    exchange = skew.latest() || exchange;
    skew.stop();
  }
  return {
    traceId: parent.spanContext().traceId,
    spanCount: 3,
    exchange: exchange && { rtt: exchange.rtt, offset: exchange.offset, header: exchange.header },
  };
};

window.e2eReady = true;
