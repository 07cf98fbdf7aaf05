"""What a request tells about the client clock: send time, causality, round trips. Pure.

* send time ``u = t_recv − t_send``: the upload delay is ≥ 0, so θ ≤ u;
* causality ``c = t_recv − max(client times in the batch)``: every span ended before the batch
  was received, so θ ≤ c;
* round trip (RFC 5905 §8) ``t2 − t3 ≤ θ ≤ t1 − t0``, from an ``X-Clock-Sync`` echo of a
  ``GET /v1/clock`` exchange.

Example:
    >>> ClockSync.parse("t0=1;t1=5;t2=6;t3=4").interval
    OffsetInterval(lower_ms=2.0, upper_ms=4.0)
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass

from skewgate.clock.interval import OffsetInterval

__all__ = ["MAX_PLAUSIBLE_OFFSET_MS", "BatchEvidence", "ClockSync", "sign_clock_reading"]


# A device clock can be wrong by days, not by centuries: evidence claiming more is garbage
# (and would not fit a DynamoDB number either).
MAX_PLAUSIBLE_OFFSET_MS = 10 * 365.25 * 86_400_000.0


def sign_clock_reading(key: bytes, t1: str, t2: str) -> str:
    """The token ``/v1/clock`` hands out so an echo of (t1, t2) can be trusted.

    Example:
        >>> sign_clock_reading(b"k", "1.5", "2.5")[:8]
        '35781312'
    """
    mac = hmac.new(key, f"{t1};{t2}".encode(), hashlib.sha256)
    return mac.hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class ClockSync:
    """One NTP-style exchange: t0/t3 on the client clock, t1/t2 on ours.

    ``t1_text``/``t2_text`` keep the echoed text so a token over it can be checked exactly.
    """

    t0: float
    t1: float
    t2: float
    t3: float
    token: str | None = None
    t1_text: str = ""
    t2_text: str = ""

    @classmethod
    def parse(cls, header: str) -> ClockSync | None:
        """Parse ``t0=..;t1=..;t2=..;t3=..[;token=..]``; ``None`` if malformed.

        Example:
            >>> ClockSync.parse("t0=1;t1=5;t2=6;t3=4").interval
            OffsetInterval(lower_ms=2.0, upper_ms=4.0)
        """
        parts: dict[str, str] = {}
        for piece in header.split(";"):
            name, sep, value = piece.strip().partition("=")
            if not sep:
                return None
            parts[name.strip().lower()] = value.strip()
        try:
            t0, t1, t2, t3 = (float(parts[k]) for k in ("t0", "t1", "t2", "t3"))
        except (KeyError, ValueError):
            return None
        if not all(math.isfinite(t) for t in (t0, t1, t2, t3)):
            return None
        return cls(t0, t1, t2, t3, parts.get("token") or None, parts["t1"], parts["t2"])

    @property
    def interval(self) -> OffsetInterval:
        return OffsetInterval(self.t2 - self.t3, self.t1 - self.t0)

    @property
    def delay_ms(self) -> float:
        """Round-trip delay δ = (t3 − t0) − (t2 − t1): the interval's width."""
        return (self.t3 - self.t0) - (self.t2 - self.t1)

    @property
    def midpoint_ms(self) -> float:
        return ((self.t1 - self.t0) + (self.t2 - self.t3)) / 2.0

    def implausibility(
        self, received_at_ms: float, max_age_ms: float, key: bytes | None
    ) -> str | None:
        """Why this echo must not be used, or ``None`` when it is usable.

        t1/t2 must be readings of our clock issued before this request and not too long ago
        (an old exchange says nothing about a clock that may have been set since), and when a
        key is configured the token must authenticate them.
        """
        if self.t3 < self.t0:
            return "t3 before t0"
        if self.t2 < self.t1:
            return "t2 before t1"
        if self.delay_ms < -2.0:
            # The client saw less time pass than we spent answering: not one exchange.
            # (Up to 2 ms is ms rounding of t0, t1 and t3; the companion drops any < 0.)
            return "negative round trip"
        if self.t2 > received_at_ms + 1.0:
            return "t2 after receipt"
        if received_at_ms - self.t2 > max_age_ms:
            return "exchange too old"
        if max(abs(self.t1 - self.t0), abs(self.t2 - self.t3)) > MAX_PLAUSIBLE_OFFSET_MS:
            return "client times decades away"
        if key is not None:
            expected = sign_clock_reading(key, self.t1_text, self.t2_text)
            if self.token is None or not hmac.compare_digest(expected, self.token):
                return "bad token"
        return None


@dataclass(frozen=True, slots=True)
class BatchEvidence:
    """What one request tells about the client clock (all times in ms)."""

    received_at_ms: float
    sent_at_ms: float | None = None
    max_client_time_ms: float | None = None
    clock_sync: ClockSync | None = None
