// Human units for offsets and times: the same rules as skewgate_tools.cli_format, plus what
// the page needs on top (exact nanosecond times, hard/assumed interval sides, short ids).
"use strict";

const UNITS = [["d", 864e5], ["h", 36e5], ["min", 6e4], ["s", 1e3]];
export const UNIT_SIZES = { d: 864e5, h: 36e5, min: 6e4, s: 1e3, ms: 1 };

/** `value` ms in the largest unit it reaches: "-760 ms", "+3.00 h", "+2.00 d". */
export function fmtMs(value, signed = true, none = "-") {
  if (value === null || value === undefined) return none;
  const sign = signed ? (value > 0 ? "+" : value < 0 ? "-" : "") : "";
  const m = signed ? Math.abs(value) : value;
  for (const [name, size] of UNITS) {
    if (m >= size) return `${sign}${(m / size).toFixed(2)} ${name}`;
  }
  if (m >= 10 || m === 0) return `${sign}${m.toFixed(0)} ms`;
  return `${sign}${m.toFixed(2)} ms`;
}

/** "[-10.72 s, -741 ms]"; "+2.00 d ± 4.99 s" when both bounds would print the same. */
export function fmtInterval(lo, hi) {
  const low = fmtMs(lo, true, "-inf"), high = fmtMs(hi, true, "+inf");
  if (lo !== null && hi !== null && low === high && hi > lo) {
    return `${fmtMs((lo + hi) / 2)} ± ${fmtMs((hi - lo) / 2, false)}`;
  }
  return `[${low}, ${high}]`;
}

/** An axis label in one unit: "0", "+1.5 d", "-10 s", "+250 ms". */
export function fmtTick(value, unit) {
  if (value === 0) return "0";
  const amount = +(Math.abs(value) / UNIT_SIZES[unit]).toPrecision(6);
  return `${value > 0 ? "+" : "-"}${amount} ${unit}`;
}

/** "1 span", "3 spans", "2 batches". */
export function count(n, one, suffix = "s") {
  return `${n} ${n === 1 ? one : one + suffix}`;
}

/** UTC wall time of epoch ms, to the ms: "09:03:30.000" (or "2026-01-01 09:03:30.000"). */
export function fmtTime(ms, withDate = false) {
  const iso = new Date(ms).toISOString();
  return withDate ? `${iso.slice(0, 10)} ${iso.slice(11, 23)}` : iso.slice(11, 23);
}

export function todayUtc() {
  return new Date().toISOString().slice(0, 10);
}

/** The UTC day `delta` days from `day` (yyyy-mm-dd). */
export function shiftDay(day, delta) {
  const [y, m, d] = day.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d + delta)).toISOString().slice(0, 10);
}

// --- nanosecond times (OTLP decimal strings, beyond 2^53: BigInt, never Number) -------------

const NS_PER_MS = 1000000n;

/** "09:03:29.840999" (µs), or with the date "2026-01-01 09:03:29.840999". */
export function fmtNs(ns, withDate = false) {
  const value = BigInt(ns);
  const ms = value / NS_PER_MS;
  const iso = new Date(Number(ms)).toISOString();
  const micros = String((value % 1000000000n) / 1000n).padStart(6, "0");
  const clock = `${iso.slice(11, 19)}.${micros}`;
  return withDate ? `${iso.slice(0, 10)} ${clock}` : clock;
}

/** The UTC day of an OTLP time. */
export function dayOfNs(ns) {
  return new Date(Number(BigInt(ns) / NS_PER_MS)).toISOString().slice(0, 10);
}

// --- interval sides ----------------------------------------------------------------------

/**
 * Which sides of a sample's interval are hard bounds: [lower, upper].
 *
 * A round trip (ntp) bounds θ on both sides. One-way evidence (send_time, causality) bounds
 * it above only — the upload took ≥ 0 ms, every span ended before it arrived — and its lower
 * side is the stated assumption MAX_UPLOAD_DELAY_MS / MAX_BATCH_AGE_MS. `none`: no evidence.
 */
export function hardSides(method) {
  if (method === "ntp") return [true, true];
  if (method === "send_time" || method === "causality") return [false, true];
  return [false, false];
}

const ASSUMPTION = {
  send_time: "MAX_UPLOAD_DELAY_MS below the send-time bound",
  causality: "MAX_BATCH_AGE_MS below the causality bound",
};

/** Why a side is what it is, for a tooltip. */
export function sideNote(method, side) {
  const [lowHard, highHard] = hardSides(method);
  if (side === "lower") {
    return lowHard ? "hard lower bound (round trip)"
      : `assumed lower bound (${ASSUMPTION[method] || "no evidence"})`;
  }
  if (!highHard) return "assumed upper bound (no evidence)";
  return method === "ntp" ? "hard upper bound (round trip)"
    : method === "send_time" ? "hard upper bound (the upload took ≥ 0 ms)"
      : "hard upper bound (every span ended before it arrived)";
}

// --- ids ----------------------------------------------------------------------------------

/** A long id shortened in the middle ("tenant-acme-corp…89abcdef"); short ones unchanged. */
export function shortId(id, max = 40) {
  if (id.length <= max) return id;
  const tail = Math.floor(max / 3);
  return `${id.slice(0, max - tail - 1)}…${id.slice(-tail)}`;
}

/** A trace id as Jaeger shows it: its first 8 hex digits. */
export function shortTrace(id) {
  return `${id.slice(0, 8)}…`;
}
