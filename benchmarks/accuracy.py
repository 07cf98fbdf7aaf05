"""Accuracy of skewgate's clock estimator against ground truth, beside two one-way baselines.

    python -m benchmarks.accuracy [--sessions 2500] [--seed 20260101] [--scenarios main,load]
                                  [--no-stress]

A simulator of browser sessions knows every client's true offset θ = server − client at every
instant and produces the traffic the gateway would see: OTLP exports from a BatchSpanProcessor
(``X-Sent-At`` when the exporter sets it, ``X-Clock-Sync`` when the @skewgate/browser companion
runs), retries, sleeps and clock steps. Every received batch goes through
:func:`skewgate.clock.estimate` with the session's state carried from batch to batch, in
receipt order, exactly as the ingest does (previous ``SessionClock`` in, new one out); the same
requests go through two one-way baselines:

* "Relay-like" (Sentry Relay's clock-drift processor): ``received − sent``, applied only when it
  is at least 55 minutes, else no correction; no send time, no correction.
* "Elastic-like": ``received − sent`` always applied; no send time, no correction.

Scenarios: **main**, **load** (queueing under load), **asymmetric** (every path asymmetric)
carry the targets; **lopsided** (extreme asymmetry, at the physical floor) and **stress** are
for information. The **main** scenario respects the estimator's stated assumptions: uploads
take at most 10 s (``MAX_UPLOAD_DELAY_MS``; the simulator caps them at 9.5 s), a batch's newest
span is at most 60 s old at receipt (``MAX_BATCH_AGE_MS``; page hide flushes the span queue
before a sleep), clocks drift by at most 200 ppm (``max_drift_ppm``) and step by at least 1 s
(the companion's jump threshold). Steps happen at random times, so a few batches have spans
stamped before a step and a send time after it; their send time is then not on the spans' clock
(docs/design.md §1 assumes it is), so they are scored apart, in a row of their own, while
staying in the traffic (their effect on the session's later batches counts). Targets are
checked on the rest; the script exits 1 when one is missed. The **stress** scenario breaks the
assumptions on purpose (spans held across a sleep or offline, uploads over 10 s, sub-second
steps) and is reported for information only, every batch included.

Every number that shapes the traffic is in :class:`Scenario` with the reason for its value;
the offset mix is an assumption (no public per-client distribution of browser clock offsets
was at hand), chosen to cover the cases the issue lists.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from skewgate.clock import (
    BatchEvidence,
    ClockSyncHeader,
    EstimatorConfig,
    PlanConfig,
    RequestFacts,
    SessionClock,
    SessionState,
    SkewEstimate,
    estimate,
    plan_batch,
    sign_clock_reading,
)
from skewgate.wire import JSON, Limits
from skewgate.wire.scan import ScannedBatch, scan_request

LIMITS = Limits()

EPOCH_MS = 1_767_225_600_000.0  # 2026-01-01T00:00:00Z; realistic magnitude for float rounding
SECOND = 1_000.0
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR

RELAY_MIN_DRIFT_MS = 55 * MINUTE  # Relay's MINIMUM_CLOCK_DRIFT
JUMP_MIN_MS = 1_000.0  # steps from this size count as jump samples in the recall metric
COMPANION_JUMP_MS = 100.0  # clients/browser/skewgate.js's default jumpMs
CLASSES = ("ntp", "send_time", "causality")
ESTIMATORS = ("skewgate", "relay", "elastic")


# --------------------------------------------------------------------------------------------
# Scenario knobs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """What the simulated clients, networks and users do. Defaults: the main scenario."""

    name: str = "main"
    # Client kinds: @skewgate/browser companion (X-Clock-Sync + X-Sent-At), an exporter that
    # only sets X-Sent-At, an unmodified OTLP exporter (causality only).
    kind_weights: tuple[float, float, float] = (0.4, 0.3, 0.3)
    # Initial offset classes: NTP-disciplined (|θ| ≤ 10 ms), a few hundred ms off, seconds to
    # minutes off (free-running or rarely synced clocks, Android's 15 s GPS bug), hours/days off
    # (wrong time zone set as local time, manual changes, dead RTC).
    offset_weights: tuple[float, float, float, float] = (0.45, 0.25, 0.2, 0.1)
    # Upper cap on uploads: the main scenario keeps them under MAX_UPLOAD_DELAY_MS.
    max_upload_ms: float = 9_500.0
    # Path asymmetry a (up = base·(1 + a), down = base·(1 − a)): mostly mild (|a| ≤ 0.25),
    # ``strong_asymmetry_p`` of the paths strongly asymmetric, |a| up to 0.8, either way.
    strong_asymmetry_p: float = 0.3
    strong_asymmetry_min: float = 0.0
    # Queueing under load: ``loaded_p`` of the sessions share a bottleneck with other traffic.
    # Their paths go through congestion episodes (a video call, a backup, a download) during
    # which every packet of the congested direction(s) waits 50-500 ms in a queue; between
    # episodes, ``spike_p`` of the packets still meet a short 50-500 ms spike (cross traffic).
    loaded_p: float = 0.0
    episode_gap_ms: float = 4 * 60_000.0  # mean calm time between episodes (exponential)
    episode_median_ms: float = 40_000.0  # episode length: lognormal, 3 s .. 10 min
    queue_ms: tuple[float, float] = (50.0, 500.0)
    spike_p: float = 0.05
    # Stress-only violations.
    long_upload_p: float = 0.0  # share of export attempts that take 10-40 s
    held_batch_p: float = 0.0  # share of sleeps that keep queued spans until after wake
    offline_replay_p: float = 0.0  # share of batches queued offline for 1-20 min, then sent
    sub_second_steps: bool = False  # RTC restore / NTP steps below the 1 s jump threshold
    # The companion's jumpMs: Date.now() vs performance.now() disagreement it treats as a step.
    companion_jump_ms: float = COMPANION_JUMP_MS
    # Score the table on batches that respect the stated assumptions (main) or on all (stress).
    score_kept_only: bool = True
    # Whether the targets are checked on this scenario (the stress scenario is informational).
    has_targets: bool = True


MAIN = Scenario()
# Real traffic under load: most sessions share a congested bottleneck some of the time.
LOAD = Scenario(name="load", loaded_p=0.7, episode_gap_ms=2 * 60_000.0,
                episode_median_ms=60_000.0, spike_p=0.1)
# Every path asymmetric, |a| uniform over 0-0.8 either way (measured Internet paths: about
# 11 % have one-way delays more than 10 % off RTT/2 [Liu et al., GLOBECOM 2022]; here 87 %
# do), and 30 % of the sessions loaded, their queues one-directional half the time.
ASYMMETRIC = Scenario(name="asymmetric", strong_asymmetry_p=1.0, loaded_p=0.3)
# The worst case, for information: every path |a| 0.3-0.8. No estimator that sees only
# timestamps can tell such a path from a symmetric one with another clock; the report prints
# that floor (|up − down| / 2) beside the error.
LOPSIDED = Scenario(
    name="lopsided",
    strong_asymmetry_p=1.0,
    strong_asymmetry_min=0.3,
    loaded_p=0.3,
    has_targets=False,
)
STRESS = Scenario(
    name="stress",
    long_upload_p=0.005,
    held_batch_p=0.5,
    offline_replay_p=0.01,
    sub_second_steps=True,
    loaded_p=0.3,
    score_kept_only=False,
    has_targets=False,
)
SCENARIOS = {sc.name: sc for sc in (MAIN, LOAD, ASYMMETRIC, LOPSIDED, STRESS)}


# --------------------------------------------------------------------------------------------
# Ground truth: a client clock
# --------------------------------------------------------------------------------------------


class TrueClock:
    """θ(t) of one client: drifts at ``rho`` (client runs fast when > 0) and steps.

    ``t`` is true (server) time in ms. Steps must be added in time order.
    """

    def __init__(self, t0: float, theta0: float, rho_ppm: float) -> None:
        self.times = [t0]
        self.thetas = [theta0]
        self.rho = rho_ppm * 1e-6
        self.steps: list[tuple[float, float, str]] = []  # (time, Δθ, kind)

    def theta(self, t: float) -> float:
        i = max(bisect_right(self.times, t) - 1, 0)
        return self.thetas[i] - self.rho * (t - self.times[i])

    def step(self, t: float, delta: float, kind: str) -> None:
        if delta == 0.0:
            return
        th = self.theta(t)
        self.times.append(t)
        self.thetas.append(th + delta)
        self.steps.append((t, delta, kind))

    def read(self, t: float) -> float:
        """The client's time at true time ``t`` (span times: sub-ms precision)."""
        return t - self.theta(t)

    def date_now(self, t: float) -> float:
        """``Date.now()``: whole milliseconds."""
        return float(math.floor(self.read(t)))

    def steps_between(self, a: float, b: float, threshold: float) -> bool:
        """Did the clock step by more than ``threshold`` in (a, b]?"""
        return any(a < ts <= b and abs(d) > threshold for ts, d, _ in self.steps)


def _loguniform(rng: random.Random, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def _sign(rng: random.Random) -> float:
    return 1.0 if rng.random() < 0.5 else -1.0


def initial_offset(rng: random.Random, sc: Scenario) -> tuple[str, float, float]:
    """(offset class, θ0 in ms, drift in ppm)."""
    cls = rng.choices(("in_sync", "hundreds", "seconds", "hours_days"), sc.offset_weights)[0]
    if cls == "in_sync":
        # NTP-disciplined: a few ms, a rate error the daemon keeps within a few ppm.
        return cls, rng.uniform(-10.0, 10.0), rng.uniform(-3.0, 3.0)
    # Free-running crystals: ±50 ppm typical (normal, σ 20), 15 % poor or hot ones up to 200.
    rho = (
        max(-50.0, min(50.0, rng.gauss(0.0, 20.0)))
        if rng.random() < 0.85
        else rng.uniform(-200.0, 200.0)
    )
    if cls == "hundreds":
        return cls, _sign(rng) * _loguniform(rng, 10.0, 1_000.0), rho
    if cls == "seconds":
        if rng.random() < 0.15:  # Android's GPS time bug: ~15 s
            return cls, _sign(rng) * rng.uniform(14_000.0, 16_000.0), rho
        return cls, _sign(rng) * _loguniform(rng, 1_000.0, 5 * MINUTE), rho
    if rng.random() < 0.5:  # a whole number of hours (time zone set as local time) ± minutes
        return cls, _sign(rng) * (rng.randint(1, 12) * HOUR + rng.uniform(-120e3, 120e3)), rho
    return cls, _sign(rng) * _loguniform(rng, HOUR, 7 * DAY), rho


# --------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------


@dataclass
class Episode:
    """A congestion episode on a session's path: extra queueing per direction, in ms."""

    start: float
    end: float
    up_ms: float
    down_ms: float


@dataclass
class Network:
    """One session's path to the gateway: base one-way delays per direction, asymmetric, and
    (under load) congestion episodes with queueing."""

    up_ms: float
    down_ms: float
    upload_mbps: float
    rng: random.Random
    episodes: list[Episode] = field(default_factory=list)
    spike_p: float = 0.0
    queue_ms: tuple[float, float] = (50.0, 500.0)
    starts: list[float] = field(default_factory=list)
    last_request_at: float = -math.inf

    @classmethod
    def draw(cls, rng: random.Random, sc: Scenario, start: float, end: float) -> Network:
        # One-way delay: lognormal around 45 ms (wired/Wi-Fi), 10 % mobile/satellite ~150 ms.
        median = 150.0 if rng.random() < 0.1 else 45.0
        base = min(max(rng.lognormvariate(math.log(median), 0.6), 8.0), 600.0)
        # Asymmetric paths: mostly mild, some strongly asymmetric (e.g. mobile uplink).
        if rng.random() < sc.strong_asymmetry_p:
            a = _sign(rng) * rng.uniform(sc.strong_asymmetry_min, 0.8)
        else:
            a = rng.uniform(-0.25, 0.25)
        mbps = min(max(rng.lognormvariate(math.log(8.0), 1.0), 0.3), 200.0)
        net = cls(base * (1 + a), base * (1 - a), mbps, rng)
        if sc.loaded_p and rng.random() < sc.loaded_p:
            net.spike_p, net.queue_ms = sc.spike_p, sc.queue_ms
            t = start + rng.expovariate(1 / sc.episode_gap_ms)
            while t < end:
                length = min(
                    max(rng.lognormvariate(math.log(sc.episode_median_ms), 1.0), 3_000.0),
                    10 * MINUTE,
                )
                # Uploads fill the uplink more often than downloads the downlink.
                way = rng.choices(("up", "down", "both"), (0.5, 0.2, 0.3))[0]
                up = _loguniform(rng, *sc.queue_ms) if way != "down" else 0.0
                down = _loguniform(rng, *sc.queue_ms) if way != "up" else 0.0
                net.episodes.append(Episode(t, t + length, up, down))
                net.starts.append(t)
                t += length + rng.expovariate(1 / sc.episode_gap_ms)
        return net

    def _queue(self, t: float, up: bool) -> float:
        """Queueing met at true time ``t``: the episode's level (± half), else a rare spike."""
        i = bisect_right(self.starts, t) - 1
        if i >= 0 and t < self.episodes[i].end:
            level = self.episodes[i].up_ms if up else self.episodes[i].down_ms
            if level:
                return level * self.rng.uniform(0.5, 1.5)
        if self.spike_p and self.rng.random() < self.spike_p:
            return _loguniform(self.rng, *self.queue_ms)
        return 0.0

    def _one_way(self, base: float, t: float, up: bool) -> float:
        d = base * self.rng.lognormvariate(0.0, 0.25) + self.rng.expovariate(1 / 3.0)
        if self.rng.random() < 0.01:  # bufferbloat, radio wake-up: occasionally seconds
            d += _loguniform(self.rng, 300.0, 3_000.0)
        return d + self._queue(t, up)

    def _setup(self, t: float) -> float:
        """TCP + TLS handshakes when the keep-alive connection has lapsed (2 round trips)."""
        setup = 2 * (self.up_ms + self.down_ms) if t - self.last_request_at > MINUTE else 0.0
        self.last_request_at = t
        return setup

    def request_up(self, t: float) -> float:
        """A small request (GET /v1/clock)."""
        return self._setup(t) + self._one_way(self.up_ms, t, True)

    def response_down(self, t: float) -> float:
        return self._one_way(self.down_ms, t, False)

    def upload(self, t: float, sc: Scenario) -> float:
        """An OTLP export: handshakes, one-way delay, body transfer; capped per scenario."""
        size_kb = min(max(self.rng.lognormvariate(math.log(12.0), 1.0), 1.0), 500.0)
        d = self._setup(t) + self._one_way(self.up_ms, t, True) + size_kb * 8.0 / self.upload_mbps
        d = min(d, sc.max_upload_ms)
        if sc.long_upload_p and self.rng.random() < sc.long_upload_p:
            d = self.rng.uniform(10_000.0, 40_000.0)
        return d


# --------------------------------------------------------------------------------------------
# The companion (@skewgate/browser), as clients/browser/skewgate.js behaves
# --------------------------------------------------------------------------------------------

TICK_MS = 15_000.0  # setInterval(tick, min(15000, intervalMs))
INTERVAL_MS = 5 * MINUTE  # intervalMs: periodic resync
RETRY_MS = MINUTE  # due() without an exchange
MAX_AGE_MS = 10 * MINUTE  # maxAgeMs = 2 * intervalMs
BENCH_KEY = b"benchmark clock key"  # CLOCK_SYNC_KEY: every echo carries a session-bound token
BURST = 3


class Companion:
    """Holds the latest exchange; drops it on a clock jump or a sleep and resyncs."""

    def __init__(
        self,
        clock: TrueClock,
        net: Network,
        rng: random.Random,
        start: float,
        sleeps: Sequence[tuple[float, float]],
        jump_ms: float = JUMP_MIN_MS,
        session_id: str = "",
    ) -> None:
        self.clock, self.net, self.rng = clock, net, rng
        self.jump_ms = jump_ms
        self.session_id = session_id
        self.epoch = 0  # bumped whenever Date.now() and performance.now() disagree
        self.grid0 = start
        self.sleeps = list(sleeps)
        self.cur: str | None = None
        self.cur_at = 0.0
        self.last_try = -math.inf
        self.checked_at = start  # time of the last check() (jump detection anchor)
        self.inflight: tuple[float, float, str | None] | None = None  # (start, done, header)
        self.now = start
        self._sync(start)

    # -- exchanges -------------------------------------------------------------------------

    def _exchange(self, t: float) -> tuple[float, float, str] | None:
        """(rtt, end time, header) of one GET /v1/clock at true time t, None when it failed."""
        if self.rng.random() < 0.01:
            return None
        t0 = self.clock.date_now(t)
        arrive = t + self.net.request_up(t)
        process = (
            self.rng.uniform(150.0, 1_200.0)
            if self.rng.random() < 0.03
            else self.rng.uniform(0.3, 3.0)
        )
        t1 = float(math.floor(arrive))  # API Gateway's requestTimeEpoch
        t2 = max(round(arrive + process, 3), t1)  # the Lambda clock
        back = arrive + process + self.net.response_down(arrive + process)
        t3 = self.clock.date_now(back)
        if t3 < t0 or t3 - t0 < t2 - t1:  # the companion discards these
            return None
        t1_text, t2_text = f"{t1:.0f}", _js_number(t2)
        token = sign_clock_reading(BENCH_KEY, t1_text, t2_text, self.session_id)
        header = f"t0={t0:.0f};t1={t1_text};t2={t2_text};t3={t3:.0f};token={token}"
        return (t3 - t0) - (t2 - t1), back, header

    def _sync(self, t: float) -> None:
        if self.inflight is not None:
            return
        self.last_try = t
        best: tuple[float, float, str] | None = None
        at = t
        for _ in range(BURST):
            x = self._exchange(at)
            if x is None:
                break
            at = x[1] + 1.0
            if best is None or x[0] < best[0]:
                best = x
        self.inflight = (t, at, None if best is None else best[2])

    # -- time passing ------------------------------------------------------------------------

    def _finish(self) -> None:
        assert self.inflight is not None
        start, done, header = self.inflight
        self.inflight = None
        if self.clock.steps_between(start, done, self.jump_ms):
            self.checked_at = done
            self.epoch += 1
            self._sync(done)  # the burst is void; `again` starts another
        elif header is not None:
            self.cur, self.cur_at = header, done

    def _check(self, t: float) -> bool:
        """check(): Date.now() vs performance.now() since the last check; True on a jump."""
        jumped = self.clock.steps_between(self.checked_at, t, self.jump_ms)
        self.checked_at = t
        if jumped:
            self.cur = None
            self.epoch += 1
        return jumped

    def _due(self) -> float:
        return INTERVAL_MS if self.cur is not None else RETRY_MS

    def _tick(self, t: float, need: float) -> None:
        jumped = self._check(t)
        if jumped or t - self.last_try >= need:
            self._sync(t)

    def advance(self, t: float) -> None:
        """Run timers, sync completions, sleeps and wakes up to true time t."""
        while True:
            done = self.inflight[1] if self.inflight is not None else math.inf
            tick = self.grid0 + (math.floor((self.now - self.grid0) / TICK_MS) + 1) * TICK_MS
            nxt = min(done, tick)
            sleep = next(((a, b) for a, b in self.sleeps if b > self.now), None)
            if sleep is not None and sleep[0] <= min(nxt, t):
                # Asleep: nothing runs and a burst in flight is lost. On wake the page becomes
                # visible; Date.now() jumped against a paused performance.now() (or the exchange
                # aged past maxAgeMs): the exchange is dropped and a burst starts.
                self.inflight = None
                if sleep[1] > t:
                    self.now = t
                    return
                self.cur = None
                self.epoch += 1
                self.now = self.checked_at = sleep[1]
                self._sync(sleep[1] + self.rng.uniform(0.0, 1_000.0))
                continue
            if nxt > t:
                self.now = t
                return
            self.now = nxt
            if nxt == done:
                self._finish()
            else:
                self._tick(nxt, self._due())

    def headers(self, t: float) -> str | None:
        """headers(): tick(due()) then X-Clock-Sync: the latest exchange, if not older than
        maxAgeMs, and the drift epoch once it is not 0."""
        self.advance(t)
        self._tick(t, self._due())
        if self.cur is not None and t - self.cur_at > MAX_AGE_MS:
            self.cur = None
        parts = [p for p in (self.cur, f"epoch={self.epoch}" if self.epoch else None) if p]
        return ";".join(parts) or None


def _js_number(x: float) -> str:
    """How JSON.stringify/Number#toString print a server time like 1767225600123.25."""
    text = f"{x:.3f}".rstrip("0").rstrip(".")
    return text


# --------------------------------------------------------------------------------------------
# Sessions
# --------------------------------------------------------------------------------------------


@dataclass
class Sample:
    """One received, committed batch of a session, with what the gateway saw and the truth."""

    session: int
    kind: str
    cls: str
    send_t: float  # true time of the committed attempt's headers() call
    span_t: float  # true time the batch's newest span ended
    recv: float
    sent_at: float | None
    max_client: float
    sync: str | None
    theta: float  # truth: θ when the batch's newest span ended (the clock that stamped it)
    violates: bool = False  # breaks a stated assumption (stress scenario only)
    straddles: bool = False  # the clock stepped between the newest span's end and the send
    # filled by evaluate()
    est: SkewEstimate | None = None
    own: SkewEstimate | None = None
    run_width: float = math.inf  # the session's running interval at receipt, before this batch


@dataclass
class Session:
    index: int
    kind: str
    offset_class: str
    clock: TrueClock
    samples: list[Sample] = field(default_factory=list)
    net: Network | None = None


def _plan_activity(
    rng: random.Random, start: float
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """Active periods and sleeps. Idle gaps keep the page alive; sleeps suspend it."""
    periods: list[tuple[float, float]] = []
    sleeps: list[tuple[float, float]] = []
    t = start
    n = 1 + min(int(rng.expovariate(1 / 2.0)), 12)
    for i in range(n):
        dur = min(max(rng.lognormvariate(math.log(150_000.0), 1.0), 20_000.0), 2 * HOUR)
        periods.append((t, t + dur))
        t += dur
        if i == n - 1:
            break
        if rng.random() < 0.3:
            # The lid closes: the page is hidden (its queue flushed) and the device sleeps
            # a few seconds later.
            gap = _loguniform(rng, 15 * MINUTE, 10 * HOUR)
            begin = t + rng.uniform(2_000.0, 20_000.0)
            sleeps.append((begin, t + gap))
        else:
            gap = min(max(rng.lognormvariate(math.log(90_000.0), 1.0), 5_000.0), 30 * MINUTE)
        t += gap
    return periods, sleeps


def _plan_steps(
    rng: random.Random,
    clock: TrueClock,
    offset_class: str,
    periods: list[tuple[float, float]],
    sleeps: list[tuple[float, float]],
    sc: Scenario,
) -> None:
    """Clock steps, applied in time order: (time, kind, Δθ), or Δθ None for "to the right
    time" (a time service or the user fixing the clock; its size is whatever θ then is)."""
    planned: list[tuple[float, str, float | None]] = []
    ntp_managed = offset_class == "in_sync" or rng.random() < 0.5
    for _, wake in sleeps:
        # RTC restore on wake: the kernel reads a 1 s resolution RTC that drifted meanwhile.
        if rng.random() < 0.12:
            planned.append((wake, "rtc_restore", _sign(rng) * rng.uniform(1_000.0, 3_000.0)))
        if sc.sub_second_steps and rng.random() < 0.5:
            planned.append((wake, "rtc_restore_small", _sign(rng) * rng.uniform(50.0, 1_000.0)))
        # The time service syncs after wake and steps the clock to the right time.
        if ntp_managed and rng.random() < 0.6:
            planned.append((wake + rng.uniform(5_000.0, 120_000.0), "ntp_step", None))
    for a, b in periods:
        # A user changes the clock by hand (a game, a trial, a wrong time zone), either way.
        if rng.random() < 0.015:
            if rng.random() < 0.5:
                size = rng.randint(1, 12) * HOUR + rng.uniform(-60e3, 60e3)
            else:
                size = _loguniform(rng, SECOND, 3 * DAY)
            planned.append((rng.uniform(a, b), "manual", _sign(rng) * size))
        # A rarely synced clock (Windows syncs weekly) gets stepped while the page is open.
        if offset_class in ("seconds", "hundreds") and rng.random() < 0.04:
            planned.append((rng.uniform(a, b), "ntp_step", None))
        # A user fixes a clock that is hours off.
        if offset_class == "hours_days" and rng.random() < 0.02:
            planned.append((rng.uniform(a, b), "manual_fix", None))
    planned.sort(key=lambda p: p[0])
    for t, kind, by in planned:
        delta = by if by is not None else rng.uniform(-10.0, 10.0) - clock.theta(t)
        if sc.sub_second_steps:
            if kind == "ntp_step" and abs(delta) < 128.0:
                continue  # a time service slews below its step threshold (ntpd: 128 ms)
        elif abs(delta) <= JUMP_MIN_MS:
            continue  # main scenario: only steps the companion can see (> 1 s)
        clock.step(t, delta, kind)


def _batches(
    rng: random.Random, periods: list[tuple[float, float]], rate_per_s: float
) -> list[tuple[float, float]]:
    """BatchSpanProcessor: the first span after an export starts a 5 s timer, the export
    takes what has ended by then; page hide flushes at the end of a period.
    Returns (export time, newest span end) in true time."""
    out: list[tuple[float, float]] = []
    mean_gap = 1_000.0 / rate_per_s
    for a, b in periods:
        t = a + rng.expovariate(1 / mean_gap)
        while t < b:
            export = min(t + 5_000.0, b)
            newest = export - min(rng.expovariate(1 / mean_gap), export - t)
            out.append((export, newest))
            t = export + rng.expovariate(1 / mean_gap)
    return out


def simulate_session(index: int, rng: random.Random, sc: Scenario) -> Session:
    kind = rng.choices(("companion", "send_time", "plain"), sc.kind_weights)[0]
    offset_class, theta0, rho = initial_offset(rng, sc)
    start = EPOCH_MS + rng.uniform(0.0, DAY)
    clock = TrueClock(start, theta0, rho)
    periods, sleeps = _plan_activity(rng, start)
    _plan_steps(rng, clock, offset_class, periods, sleeps, sc)
    net = Network.draw(rng, sc, start, periods[-1][1] + HOUR)
    rate = min(max(rng.lognormvariate(math.log(0.4), 1.2), 0.02), 20.0)
    batches = _batches(rng, periods, rate)

    # Spans queued when a sleep starts: the main scenario flushes them on page hide; the
    # stress scenario sometimes keeps them until after wake (age = the whole sleep).
    if sc.held_batch_p:
        held: list[tuple[float, float]] = []
        for export, newest in batches:
            # The flush at page hide, just before the device sleeps (2-20 s later).
            hit = next((w for s, w in sleeps if 0.0 <= s - export <= 20_000.0), None)
            if hit is not None and rng.random() < sc.held_batch_p:
                held.append((hit + rng.uniform(1_000.0, 5_000.0), newest))
            else:
                held.append((export, newest))
        batches = held

    # Attempts: OTel JS retries up to 5 times, backoff 1 s × 1.5ⁿ (max 5 s) ± 20 % jitter;
    # headers() (fresh X-Sent-At, latest X-Clock-Sync) runs per attempt.
    attempts: list[tuple[float, int, bool]] = []  # (time, batch, committed-and-estimated)
    for bi, (export, _newest) in enumerate(batches):
        t = export
        if sc.offline_replay_p and rng.random() < sc.offline_replay_p:
            t += rng.uniform(MINUTE, 20 * MINUTE)  # a persistent queue replays after offline
        backoff = 1_000.0
        for _ in range(5):
            r = rng.random()
            if r < 0.02:  # network error: never reached us
                attempts.append((t, bi, False))
                t += rng.uniform(0.0, 1_000.0) + backoff * rng.uniform(0.8, 1.2)
            elif r < 0.03:  # 503 (storage throttled): received, not committed
                attempts.append((t, bi, False))
                t += 200.0 + backoff * rng.uniform(0.8, 1.2)
            elif r < 0.035:  # committed, response lost: the retry is a duplicate
                attempts.append((t, bi, True))
                attempts.append((t + 10_000.0 + backoff, bi, False))
                break
            else:
                attempts.append((t, bi, True))
                break
            backoff = min(backoff * 1.5, 5_000.0)
    # A retry timer due during a sleep fires after wake.
    for i, (t, bi, committed) in enumerate(attempts):
        for a, b in sleeps:
            if a <= t < b:
                attempts[i] = (b + rng.uniform(500.0, 3_000.0), bi, committed)
    attempts.sort()

    companion = (
        Companion(clock, net, rng, start, sleeps, sc.companion_jump_ms, session_name(index))
        if kind == "companion"
        else None
    )
    session = Session(index, kind, offset_class, clock, net=net)
    for t, bi, committed in attempts:
        sync = companion.headers(t) if companion is not None else None
        upload = net.upload(t, sc)
        if not committed:
            continue
        newest = batches[bi][1]
        sent = clock.date_now(t) if kind != "plain" else None
        send_sync = sync if kind == "companion" else None
        has_exchange = send_sync is not None and "t0=" in send_sync
        cls = "ntp" if has_exchange else ("send_time" if sent is not None else "causality")
        recv = float(math.floor(t + upload))
        straddles = any(newest < ts <= t for ts, _, _ in clock.steps)
        violates = (
            # An upload over MAX_UPLOAD_DELAY_MS; a batch older than MAX_BATCH_AGE_MS when
            # only causality speaks; or a send time (and round trip) on another clock than
            # the spans: the clock stepped after they ended (docs/design.md §1: "same clock").
            (upload > 10_000.0 or straddles)
            if sent is not None
            else (recv - newest) > 60_000.0
        )
        session.samples.append(
            Sample(
                session=index,
                kind=kind,
                cls=cls,
                send_t=t,
                span_t=newest,
                recv=recv,
                sent_at=sent,
                max_client=clock.read(newest),
                sync=send_sync,
                theta=clock.theta(newest),
                violates=violates,
                straddles=straddles,
            )
        )
    session.samples.sort(key=lambda s: s.recv)
    return session


# --------------------------------------------------------------------------------------------
# Estimators
# --------------------------------------------------------------------------------------------

Estimator = Callable[
    [BatchEvidence, SessionClock | None, EstimatorConfig], tuple[SkewEstimate, SessionClock]
]


def session_name(index: int) -> str:
    return f"session-{index}"


def evidence_of(s: Sample) -> BatchEvidence:
    header = ClockSyncHeader.parse(s.sync)
    return BatchEvidence(
        received_at_ms=s.recv,
        sent_at_ms=s.sent_at,
        max_client_time_ms=s.max_client,
        clock_sync=header.sync,
        session_id=session_name(s.session),
        drift_epoch=header.epoch,
    )


def one_span_batch(session_id: str, newest_ms: float) -> ScannedBatch:
    """The batch a sample stands for: one span of the session, ending at its newest time."""
    end_ns = round(newest_ms * 1e6)
    body = (
        b'{"resourceSpans":[{"resource":{"attributes":[{"key":"session.id","value":'
        b'{"stringValue":"%s"}}]},"scopeSpans":[{"spans":[{"traceId":"%s","spanId":"%s",'
        b'"startTimeUnixNano":"%d","endTimeUnixNano":"%d"}]}]}]}'
        % (session_id.encode(), b"5b" * 16, b"e1" * 8, end_ns - 1_000_000, end_ns)
    )
    return scan_request(body, JSON, LIMITS)


def run_skewgate(session: Session, config: EstimatorConfig, fn: Estimator = estimate) -> None:
    """The ingest's loop for one session, in receipt order: each batch goes through
    :func:`skewgate.clock.plan_batch` with the state the previous one committed.

    ``fn`` other than the estimator (the property tests' doubles) runs the estimator alone.
    """
    if fn is not estimate:
        clock: SessionClock | None = None
        for s in session.samples:
            ev = evidence_of(s)
            s.own, _ = fn(ev, None, config)
            s.run_width = (
                clock.interval_at(s.recv, config).width_ms if clock is not None else math.inf
            )
            s.est, clock = fn(ev, clock, config)
        return
    plan_config = PlanConfig(estimator=config)
    sid = session_name(session.index)
    state: SessionState | None = None
    for s in session.samples:
        batch = one_span_batch(sid, s.max_client)
        facts = RequestFacts(
            received_at_ms=s.recv,
            sent_at=None if s.sent_at is None else repr(s.sent_at),
            clock_sync=s.sync,
        )
        s.own = plan_batch(batch, facts, {}, plan_config).sessions[0].estimate
        s.run_width = (
            state.clock.interval_at(s.recv, config).width_ms if state is not None else math.inf
        )
        planned = plan_batch(batch, facts, {sid: state} if state else {}, plan_config)
        s.est, state = planned.sessions[0].estimate, planned.sessions[0].next_state


def relay_shift(s: Sample) -> float:
    if s.sent_at is None:
        return 0.0
    drift = s.recv - s.sent_at
    return drift if abs(drift) >= RELAY_MIN_DRIFT_MS else 0.0


def elastic_shift(s: Sample) -> float:
    return 0.0 if s.sent_at is None else s.recv - s.sent_at


def one_way_estimate(s: Sample) -> float | None:
    """What Relay and Elastic take as the offset: one received − sent difference."""
    return None if s.sent_at is None else s.recv - s.sent_at


def skewgate_estimate(s: Sample) -> float | None:
    assert s.est is not None
    return s.est.offset_ms


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


@dataclass
class Row:
    n: int
    calibration: float | None
    median_err: float
    p95_err: float
    corrected: float
    false_corrections: int
    median_est_err: float = math.nan  # |θ − estimate|, where the estimator gives one
    p95_est_err: float = math.nan


@dataclass
class JumpStats:
    true_steps: int
    jump_samples: int
    detectable: int
    detected_detectable: int
    flagged_at_jump_sample: int
    flags: int
    correct_flags: int
    by_bucket: list[tuple[str, int, int, int, int]]  # label, n, detectable, at first, later

    @property
    def recall(self) -> float | None:
        return self.detected_detectable / self.detectable if self.detectable else None

    @property
    def precision(self) -> float | None:
        return self.correct_flags / self.flags if self.flags else None


@dataclass
class Report:
    scenario: Scenario
    sessions: int
    samples: int
    rows: dict[tuple[str, str], Row]
    jumps: JumpStats
    min_correction_ms: float
    violating: int
    straddling: int
    wrong_clock: dict[str, float]  # median error where |θ| > min_correction_ms, per estimator
    future: int = 0  # batches flagged ``future`` (their adjusted copy moved to end at receipt)
    future_overshoots: int = 0  # ... whose clamp moved spans before their true time (never)
    shift_moves: int = 0  # batches flagged ``shift_moved``
    # Median |up − down| / 2 of the round-trip batches' paths: the error no estimator that sees
    # only timestamps avoids on them (a path cannot be told from a symmetric one + a clock).
    asymmetry_floor: float = math.nan


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return math.nan
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, math.ceil(q * len(xs)) - 1))
    return xs[k]


def _row(
    samples: list[Sample],
    shift: Callable[[Sample], float],
    cal: bool,
    min_ms: float,
    estimate_fn: Callable[[Sample], float | None],
) -> Row:
    errs = [abs(s.theta - shift(s)) for s in samples]
    est_errs = [
        abs(s.theta - e) for s in samples if (e := estimate_fn(s)) is not None
    ]
    applied = [s for s in samples if shift(s) != 0.0]
    calibration = None
    if cal:
        inside = sum(1 for s in samples if s.est is not None and s.est.interval.contains(s.theta))
        calibration = inside / len(samples) if samples else math.nan
    return Row(
        n=len(samples),
        calibration=calibration,
        median_err=statistics.median(errs) if errs else math.nan,
        p95_err=_pct(errs, 0.95),
        corrected=len(applied) / len(samples) if samples else math.nan,
        # A `future` clamp is no clock correction (it only moves spans back to their receipt,
        # never past their true time: see Report.future_overshoots), so it is not one here.
        false_corrections=sum(
            1 for s in applied
            if abs(s.theta) <= min_ms and not (s.est is not None and cal and _future(s))
        ),
        median_est_err=statistics.median(est_errs) if est_errs else math.nan,
        p95_est_err=_pct(est_errs, 0.95),
    )


def _future(s: Sample) -> bool:
    return s.est is not None and "future" in s.est.flags


def _skewgate_shift(s: Sample) -> float:
    assert s.est is not None
    return s.est.shift_ms


BUCKETS = (
    ("1-10 s", 1_000.0, 10_000.0),
    ("10-60 s", 10_000.0, MINUTE),
    ("1-60 min", MINUTE, HOUR),
    ("1-24 h", HOUR, DAY),
    (">1 day", DAY, math.inf),
)


def jump_stats(sessions: list[Session]) -> JumpStats:
    """Jump recall and precision; the definitions are in DEFINITIONS."""
    true_steps = jump_samples = detectable = detected = at_first = flags = correct = 0
    buckets = {label: [0, 0, 0, 0] for label, _, _ in BUCKETS}
    for sess in sessions:
        steps = sess.clock.steps
        if not sess.samples:
            continue
        true_steps += sum(1 for ts, _, _ in steps if ts > sess.samples[0].span_t)
        last_flag_t = sess.samples[0].span_t  # steps after the first batch's spans count
        pending: str | None = None  # bucket of the latest jump not flagged at its jump sample
        prev: Sample | None = None
        for s in sess.samples:
            assert s.est is not None and s.own is not None
            if s.est.jump:
                flags += 1
                correct += int(any(last_flag_t < ts <= s.send_t for ts, _, _ in steps))
                last_flag_t = s.send_t
            if prev is None:
                prev = s
                continue
            between = [(ts, d) for ts, d, _ in steps if prev.span_t < ts <= s.span_t]
            net = sum(d for _, d in between)
            if between and abs(net) >= JUMP_MIN_MS:
                assert prev.est is not None
                jump_samples += 1
                label = next(lb for lb, lo, hi in BUCKETS if lo <= abs(net) < hi)
                b = buckets[label]
                b[0] += 1
                # A batch sent after the step but holding spans from before it may show the
                # step first (its send time is on the new clock).
                early = prev.est.jump and prev.send_t >= between[0][0]
                hit = s.est.jump or early
                if abs(net) > s.run_width + s.own.interval.width_ms:
                    detectable += 1
                    b[1] += 1
                    detected += int(hit)
                if hit:
                    at_first += 1
                    b[2] += 1
                    pending = None
                else:
                    pending = label
            elif s.est.jump and pending is not None:
                buckets[pending][3] += 1
                pending = None
            prev = s
    return JumpStats(
        true_steps=true_steps,
        jump_samples=jump_samples,
        detectable=detectable,
        detected_detectable=detected,
        flagged_at_jump_sample=at_first,
        flags=flags,
        correct_flags=correct,
        by_bucket=[(lb, b[0], b[1], b[2], b[3]) for lb, b in buckets.items()],
    )


def run(
    n_sessions: int,
    seed: int,
    scenario: Scenario = MAIN,
    config: EstimatorConfig | None = None,
    fn: Estimator = estimate,
) -> Report:
    config = config or EstimatorConfig(clock_sync_key=BENCH_KEY)
    rng = random.Random(f"{seed}:{scenario.name}")
    sessions = [simulate_session(i, rng, scenario) for i in range(n_sessions)]
    for sess in sessions:
        run_skewgate(sess, config, fn)
    samples = [s for sess in sessions for s in sess.samples]
    rows: dict[tuple[str, str], Row] = {}
    shifts: dict[str, Callable[[Sample], float]] = {
        "skewgate": _skewgate_shift,
        "relay": relay_shift,
        "elastic": elastic_shift,
    }
    estimates: dict[str, Callable[[Sample], float | None]] = {
        "skewgate": skewgate_estimate,
        "relay": one_way_estimate,
        "elastic": one_way_estimate,
    }
    min_ms = config.min_correction_ms
    # Targets are scored on batches that respect the stated assumptions; the others get a
    # row of their own ("breaking"), so nothing is hidden.
    kept = [s for s in samples if not s.violates] if scenario.score_kept_only else samples
    for cls in (*CLASSES, "all", "sent"):
        if cls == "sent":  # every batch with a send time: where all three estimate
            group = [s for s in kept if s.sent_at is not None]
        else:
            group = [s for s in kept if cls == "all" or s.cls == cls]
        for name, fn_shift in shifts.items():
            rows[(cls, name)] = _row(
                group, fn_shift, name == "skewgate", min_ms, estimates[name]
            )
    breaking = [s for s in samples if s.violates]
    for name, fn_shift in shifts.items():
        rows[("breaking", name)] = _row(
            breaking, fn_shift, name == "skewgate", min_ms, estimates[name]
        )
    return Report(
        scenario=scenario,
        sessions=n_sessions,
        samples=len(samples),
        rows=rows,
        jumps=jump_stats(sessions),
        min_correction_ms=min_ms,
        violating=sum(1 for s in samples if s.violates),
        straddling=sum(1 for s in samples if s.straddles),
        wrong_clock={
            name: statistics.median(abs(s.theta - f(s)) for s in kept if abs(s.theta) > min_ms)
            for name, f in shifts.items()
        },
        future=sum(1 for s in samples if _future(s)),
        future_overshoots=sum(
            1 for s in samples if _future(s) and s.est is not None and s.est.shift_ms < s.theta
        ),
        shift_moves=sum(1 for s in samples if s.est is not None and "shift_moved" in s.est.flags),
        asymmetry_floor=statistics.median(
            [
                abs(sess.net.up_ms - sess.net.down_ms) / 2
                for sess in sessions
                if sess.net is not None
                for s in sess.samples
                if s.cls == "ntp" and not (scenario.score_kept_only and s.violates)
            ]
            or [math.nan]
        ),
    )


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def _ms(x: float) -> str:
    if math.isnan(x):
        return "–"
    if x >= 10 * HOUR:
        return f"{x / HOUR:,.1f} h"
    if x >= 10 * SECOND:
        return f"{x / SECOND:,.1f} s"
    return f"{x:,.1f} ms"


def _share(x: float | None) -> str:
    if x is None:
        return "n/a"
    if math.isnan(x):
        return "–"
    return f"{100 * x:.2f} %"


CLASS_LABEL = {
    "ntp": "ntp (X-Clock-Sync + X-Sent-At)",
    "send_time": "send_time (X-Sent-At only)",
    "causality": "causality (no header)",
    "all": "all",
    "sent": "every batch with a send time",
    "breaking": "breaking an assumption (of any kind)",
}


def render(report: Report) -> str:
    out: list[str] = []
    sc = report.scenario
    scored = "scored apart, in the last rows" if sc.score_kept_only else "included in the rows"
    out.append(
        f"### Scenario `{sc.name}`: {report.sessions:,} sessions, {report.samples:,} batches, "
        f"{report.violating:,} of them breaking a stated assumption ({scored})"
    )
    out.append("")
    out.append(
        "| requests carrying | estimator | batches | calibration | median estimate error "
        "| p95 estimate error | median error after correction | p95 error after correction "
        "| corrected | false corrections |"
    )
    out.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for cls in (*CLASSES, "all", "sent", "breaking"):
        for name in ESTIMATORS:
            r = report.rows[(cls, name)]
            if cls == "breaking" and r.n == 0:
                break
            label = CLASS_LABEL[cls] if name == "skewgate" else ""
            out.append(
                f"| {label} | {name} | {r.n:,} | {_share(r.calibration)} "
                f"| {_ms(r.median_est_err)} | {_ms(r.p95_est_err)} | {_ms(r.median_err)} "
                f"| {_ms(r.p95_err)} | {_share(r.corrected)} | {r.false_corrections:,} |"
            )
    wc = report.wrong_clock
    out.append("")
    out.append(
        f"Median error on batches whose clock is wrong (|θ| > {report.min_correction_ms:g} ms): "
        f"skewgate {_ms(wc['skewgate'])}, relay-like {_ms(wc['relay'])}, "
        f"elastic-like {_ms(wc['elastic'])}. Batches whose spans were stamped before a clock "
        f"step and sent after it: {report.straddling:,}."
    )
    j = report.jumps
    out.append("")
    out.append(
        f"Clock steps after a session's first batch: {j.true_steps:,}; jump samples "
        f"(|net step| ≥ 1 s): {j.jump_samples:,}, of which detectable: {j.detectable:,}. "
        f"Recall on detectable: {_share(j.recall)}. Flags: {j.flags:,}, "
        f"precision: {_share(j.precision)}."
    )
    out.append("")
    out.append("| step size | jump samples | detectable | flagged at the jump sample "
               "| flagged later |")
    out.append("| --- | ---: | ---: | ---: | ---: |")
    for label, n, det, first, later in j.by_bucket:
        out.append(f"| {label} | {n:,} | {det:,} | {first:,} | {later:,} |")
    return "\n".join(out)


DEFINITIONS = """\
Definitions. θ = server − client clock of the clock that stamped the batch's newest span (what
the shift must undo). A batch is one received and committed export; a retry that arrives after
a commit is a duplicate and is not estimated again. error = |θ − shift|, shift = what the
estimator adds to span times (0 when it does not correct). calibration = share of batches
whose [lower, upper] holds θ (the baselines give no interval). false correction = a clock
correction applied while |θ| ≤ MIN_CORRECTION_MS (25 ms); a `future` clamp (spans moved back
to end at receipt) is none, and is counted apart with how many moved spans past their true
time. ratio = skewgate's median |θ − offset_ms| ÷ the one-way received − sent's, on the
batches with a send time. shift moves = batches flagged `shift_moved` (shifted differently
from the previous batch of their segment). floor on ntp = median |up − down| / 2 of the
round-trip batches' paths: no estimator that sees only timestamps can tell such a path from
a symmetric one with a clock that much off. Jump sample = the first batch whose newest span
ended after one or more true clock steps of net size |J| ≥ 1 s (a flag on the batch just
before it, sent after the step but holding older spans, counts as detecting it). Detectable =
|J| > width of the session's running interval at receipt + width of the batch's own interval:
two intervals that hold their truths and lie that far apart cannot intersect, so the step must
show. Narrower steps can hide in the assumed side of one-way bounds (a clock set back by less
than MAX_UPLOAD_DELAY_MS looks like a slow upload). recall = detectable jump samples flagged
`jump` / detectable jump samples; precision = flags preceded by a true step (any size) since
the session's previous flag / all flags."""


@dataclass
class Target:
    name: str
    ok: bool
    detail: str


def ratio(report: Report) -> float:
    """skewgate's median |estimate error| ÷ that of the one-way ``received − sent``, on the
    batches with a send time (where the one-way estimate exists): the issue's figure."""
    return report.rows[("sent", "skewgate")].median_est_err / report.rows[
        ("sent", "elastic")
    ].median_est_err


MAX_RATIO = 0.25


def targets(report: Report) -> list[Target]:
    rows = report.rows
    sk = rows[("all", "skewgate")]
    out = [
        Target(
            "calibration ≥ 99 % (all batches)",
            sk.calibration is not None and sk.calibration >= 0.99,
            _share(sk.calibration),
        )
    ]
    for cls in CLASSES:
        r = rows[(cls, "skewgate")]
        out.append(
            Target(
                f"calibration ≥ 99 % ({cls})",
                r.calibration is not None and r.calibration >= 0.99,
                _share(r.calibration),
            )
        )
    # The offset estimate against the one-way received − sent difference (what Relay and
    # Elastic take as the offset), on the batches where it exists: the ratio.
    sent, one_way = rows[("sent", "skewgate")], rows[("sent", "elastic")]
    out.append(
        Target(
            f"ratio ≤ {MAX_RATIO:g}: median estimate error ÷ one-way received − sent's "
            "(batches with a send time)",
            ratio(report) <= MAX_RATIO,
            f"{ratio(report):.3f} = {_ms(sent.median_est_err)} / {_ms(one_way.median_est_err)}",
        )
    )
    out.append(Target("0 false corrections", sk.false_corrections == 0,
                      f"{sk.false_corrections}"))
    out.append(Target("future clamps never move spans before their true time",
                      report.future_overshoots == 0,
                      f"{report.future_overshoots} of {report.future}"))
    j = report.jumps
    out.append(
        Target("jump recall = 100 % (detectable jumps)",
               j.recall is None or j.recall >= 1.0,
               f"{j.detected_detectable}/{j.detectable}")
    )
    out.append(
        Target("jump precision ≥ 95 %",
               j.precision is None or j.precision >= 0.95,
               f"{j.correct_flags}/{j.flags}")
    )
    return out


SCENARIO_NOTES = {
    "main": "Browser sessions as docs/design.md §1 assumes them: mostly calm paths (30 % "
    "strongly asymmetric, 1 % multi-second stalls), uploads under 10 s.",
    "load": "The main scenario with 70 % of the sessions behind a shared bottleneck: "
    "congestion episodes (mean 4 min apart, 3 s-10 min long) queue every packet of the "
    "congested direction by 50-500 ms (uplink 50 %, downlink 20 %, both 30 %), and 5 % of the "
    "other packets meet a 50-500 ms spike.",
    "asymmetric": "Every path asymmetric: a = (up − down) / (up + down) uniform over ±0.8, "
    "either way (measured Internet paths: about 11 % beyond |a| = 0.1 [Liu et al., GLOBECOM "
    "2022]; here 87 %); 30 % of the sessions loaded as above.",
    "lopsided": "For information (no targets): every path |a| 0.3-0.8, 30 % loaded. A "
    "round trip cannot tell such a path from a symmetric one with a clock (up − down) / 2 "
    "away, so no estimator that sees only timestamps gets below that floor.",
    "stress": "Stated assumptions broken on purpose (informational, no targets): spans held "
    "across a sleep, offline replays after 1-20 min, 0.5 % of uploads 10-40 s, sub-second "
    "clock steps, 30 % of the sessions loaded.",
}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=2500, help="sessions of the main scenario; "
                   "the others run half as many")
    p.add_argument("--seed", type=int, default=20260101)
    p.add_argument("--scenarios", default=",".join(SCENARIOS),
                   help=f"comma-separated, of {', '.join(SCENARIOS)}")
    p.add_argument("--no-stress", action="store_true", help="skip the stress scenario")
    args = p.parse_args(argv)
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    if args.no_stress:
        names = [n for n in names if n != "stress"]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenario(s): {', '.join(unknown)}")

    began = time.perf_counter()
    print("## Clock estimator accuracy (`python -m benchmarks.accuracy`, seed "
          f"{args.seed})\n")
    reports: list[Report] = []
    for name in names:
        sc = SCENARIOS[name]
        n = args.sessions if name == "main" else max(args.sessions // 2, 1)
        report = run(n, args.seed, sc)
        reports.append(report)
        print(SCENARIO_NOTES[name] + "\n")
        print(render(report))
        print()
    checked = [r for r in reports if r.scenario.has_targets]
    summary = [
        "| scenario | ratio | median error: ntp / send_time (floor on ntp) "
        "| calibration (ntp / send_time / causality) | false corrections | jump recall "
        "| future clamps | shift moves |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in reports:
        cal = " / ".join(_share(r.rows[(c, "skewgate")].calibration) for c in CLASSES)
        j = r.jumps
        errors = (
            f"{_ms(r.rows[('ntp', 'skewgate')].median_est_err)} / "
            f"{_ms(r.rows[('send_time', 'skewgate')].median_est_err)} "
            f"({_ms(r.asymmetry_floor)})"
        )
        summary.append(
            f"| {r.scenario.name} | {ratio(r):.3f} | {errors} | {cal} "
            f"| {r.rows[('all', 'skewgate')].false_corrections:,} "
            f"| {j.detected_detectable}/{j.detectable} "
            f"| {r.future:,} ({r.future_overshoots} past the truth) "
            f"| {r.shift_moves:,} of {r.samples:,} |"
        )
    print("\n".join(summary))
    print()
    ok = True
    print("| scenario | target | result | value |")
    print("| --- | --- | --- | --- |")
    for r in checked:
        for c in targets(r):
            ok = ok and c.ok
            print(f"| {r.scenario.name} | {c.name} | {'PASS' if c.ok else 'FAIL'} | {c.detail} |")
    print(
        "\nThe estimate error compares offsets: skewgate's offset_ms with the one-way"
        " received − sent that Relay and Elastic take as the offset. The error after correction"
        " compares what each one does to span times: Relay-like leaves every offset under 55 min"
        " alone and skewgate every clock it cannot prove wrong (|θ| ≤ 25 ms included), so there"
        " the in-sync clients dominate both medians; see the |θ| > 25 ms line."
    )
    print()
    print(DEFINITIONS)
    print(f"\nRuntime: {time.perf_counter() - began:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
