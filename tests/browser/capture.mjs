// The page tests/browser/capture_fixtures.py drives in headless Chromium to record
// tests/fixtures/otel-js/: the real OpenTelemetry JS web SDK (WebTracerProvider,
// BatchSpanProcessor, OTLPTraceExporter over fetch, the versions in package.json) exporting
// cross-origin to a plain receiver, one export per "unit" of work:
//
//   unit-N                 root span, attribute app.unit = N (int); even units: event unit.start
//     unit-N.child-1       app.depth = 1
//       unit-N.child-2     app.depth = 2; odd units: event work.checkpoint
//
// Modes: 'header' sends X-Sent-At through an async headers function (rebuilt per attempt),
// 'plain' sends no custom header at all. The page's clock is whatever the browser process has:
// the capture shifts it with libfaketime.

import { context, diag, DiagConsoleLogger, DiagLogLevel, trace } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, WebTracerProvider } from '@opentelemetry/sdk-trace-web';

diag.setLogger(new DiagConsoleLogger(), DiagLogLevel.WARN);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

window.clocks = () => ({ dateNow: Date.now(), perfNow: performance.timeOrigin + performance.now() });

window.capture = async ({ receiver, mode, sessionId, units }) => {
  const url = `${receiver}/v1/traces`;
  let exporter;
  if (mode === 'header') {
    exporter = new OTLPTraceExporter({ url, headers: async () => ({ 'X-Sent-At': String(Date.now()) }) });
  } else if (mode === 'plain') {
    exporter = new OTLPTraceExporter({ url });
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
  const provider = new WebTracerProvider({
    resource: resourceFromAttributes({
      'service.name': 'web-shop',
      'session.id': sessionId,
      'app.mode': mode,
    }),
    spanProcessors: [new BatchSpanProcessor(exporter)],
  });
  const tracer = provider.getTracer('web-shop', '0.1.0');

  for (let n = 0; n < units; n += 1) {
    const unit = tracer.startSpan(`unit-${n}`, { attributes: { 'app.unit': n } });
    if (n % 2 === 0) unit.addEvent('unit.start', { 'app.unit': n });
    const unitCtx = trace.setSpan(context.active(), unit);
    const child1 = tracer.startSpan(`unit-${n}.child-1`, { attributes: { 'app.depth': 1 } }, unitCtx);
    await sleep(60);
    const child2 = tracer.startSpan(
      `unit-${n}.child-2`, { attributes: { 'app.depth': 2 } }, trace.setSpan(unitCtx, child1),
    );
    await sleep(40);
    if (n % 2 === 1) child2.addEvent('work.checkpoint', { 'app.depth': 2 });
    await sleep(80);
    child2.end();
    child1.end();
    unit.end();
    await provider.forceFlush(); // one export per unit; resolves after the receiver's 200
    await sleep(100);
  }
  await provider.shutdown();
};

window.captureReady = true;
