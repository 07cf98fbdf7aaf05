// Type declarations for @skewgate/browser (skewgate.js).

/** One round-trip exchange with the gateway's `GET /v1/clock` (NTP, RFC 5905 §8). */
export interface ClockExchange {
  /** Client `Date.now()` just before the request was sent. */
  readonly t0: number;
  /** Server receive time (ms), as returned. */
  readonly t1: number;
  /** Server transmit time (ms), as returned. */
  readonly t2: number;
  /** Client `Date.now()` when the response arrived. */
  readonly t3: number;
  /** Opaque token returned by the gateway (when it signs exchanges), echoed verbatim. */
  readonly token?: string;
  /** Round-trip delay without server time: (t3 − t0) − (t2 − t1), ms. */
  readonly rtt: number;
  /** NTP estimate of server clock − client clock: ((t1 − t0) + (t2 − t3)) / 2, ms. */
  readonly offset: number;
  /** The `X-Clock-Sync` header value: `t0=…;t1=…;t2=…;t3=…[;token=…]` (t1, t2, token exactly as the server wrote them). */
  readonly header: string;
}

/** Minimal event target (window for `online`, document for `visibilitychange`). */
export interface EventTargetLike {
  addEventListener(type: string, listener: () => void): void;
  removeEventListener(type: string, listener: () => void): void;
}

export interface DocumentLike extends EventTargetLike {
  readonly visibilityState?: string;
}

export interface ClockSyncOptions {
  /**
   * Gateway base URL, e.g. `https://api.example.com` (its `/v1/traces` URL is accepted too).
   * Clock exchanges go to `{url}/v1/clock`. Without it only `X-Sent-At` and the optional headers are sent.
   */
  url?: string;
  /**
   * Sent as `X-Session-Id` (a `session.id` span or resource attribute takes precedence at the gateway) and as the
   * `session` query parameter of `GET /v1/clock`: the gateway binds each exchange's token to it, so give the same id
   * as the spans' `session.id`. An exchange made for another session id is not sent (a new sync starts).
   */
  sessionId?: string | (() => string | null | undefined);
  /** Public per-site key: `X-Ingest-Key` on exports, `?key=` on `/v1/clock`. */
  ingestKey?: string;
  /** Periodic resync, ms. Default 300000 (5 min). */
  intervalMs?: number;
  /** Exchanges per sync; the one with the smallest round trip is kept. Default 3. */
  burst?: number;
  /** Per-exchange timeout, ms. Default 5000. */
  timeoutMs?: number;
  /** Date.now() vs performance.now() disagreement that counts as a clock jump (sleep, clock set), ms. Default 100: a sub-second step otherwise keeps echoing an exchange of the old clock; a false alarm only costs one resync. Each one bumps the drift epoch sent as `X-Clock-Sync: …;epoch=N`. */
  jumpMs?: number;
  /** An exchange older than this is no longer sent, ms. Default 2 × intervalMs (the gateway's `MAX_SYNC_AGE_MS`, 10 min, must not be shorter). */
  maxAgeMs?: number;
  /** Minimum time between syncs triggered by `visibilitychange`/`online` while an exchange is held, ms. Default 30000. */
  minGapMs?: number;
  /** Injection points (tests, non-browser hosts). */
  fetch?: (url: string, init: RequestInit) => Promise<Response>;
  now?: () => number;
  perfNow?: () => number;
  /** `performance.timeOrigin`: the first check compares Date.now() with timeOrigin + performance.now(). Default the page's own when neither `now` nor `perfNow` is injected; `null` for none. */
  timeOrigin?: number | null;
  setInterval?: (callback: () => void, ms: number) => unknown;
  clearInterval?: (handle: unknown) => void;
  /** Target of the `online` listener; default `globalThis.window`; `null` for none. */
  window?: EventTargetLike | null;
  /** Target of the `visibilitychange` listener; default `globalThis.document`; `null` for none. */
  document?: DocumentLike | null;
}

export interface ClockSync {
  /**
   * For OTLPTraceExporter's `headers` option: resolves at once (never waits for a sync, never rejects) with
   * `X-Sent-At` (Date.now() now), `X-Clock-Sync` (the exchange held, and `epoch=N` once Date.now() and
   * performance.now() have disagreed; `epoch=N` alone without an exchange), `X-Session-Id`, `X-Ingest-Key`.
   */
  headers(): Promise<Record<string, string>>;
  /** Runs a burst of exchanges now (or joins the running one); resolves with `latest()`. Never rejects. */
  sync(): Promise<ClockExchange | null>;
  /** The exchange sent on exports, or null. */
  latest(): ClockExchange | null;
  /** Removes listeners and the timer and aborts a running exchange. `headers()` keeps working. */
  stop(): void;
}

export function createClockSync(options?: ClockSyncOptions): ClockSync;
