"""What a request tells about the client clock: send time, causality, round trips. Pure.

* send time ``u = t_recv − t_send``: the upload delay is ≥ 0, so θ ≤ u;
* causality ``c = t_recv − max(client times in the batch)``: every span ended before the batch
  was received, so θ ≤ c;
* round trip (RFC 5905 §8) ``t2 − t3 ≤ θ ≤ t1 − t0``, from an ``X-Clock-Sync`` echo of a
  ``GET /v1/clock`` exchange; the same header carries the companion's drift ``epoch`` (how
  many times it saw ``Date.now()`` and its monotonic clock disagree).

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

__all__ = [
    "MAX_PLAUSIBLE_OFFSET_MS",
    "BatchEvidence",
    "ClockSync",
    "ClockSyncHeader",
    "clock_key_id",
    "sign_clock_reading",
]


# A device clock can be wrong by days, not by centuries: evidence claiming more is garbage
# (and would not fit a DynamoDB number either).
MAX_PLAUSIBLE_OFFSET_MS = 10 * 365.25 * 86_400_000.0
# A drift epoch is a small counter; anything longer is not the companion's.
_MAX_EPOCH = 1_000_000


def clock_key_id(key: bytes) -> str:
    """The public id of a ``CLOCK_SYNC_KEY`` (8 hex digits), so a token names its key.

    Tokens carry it so a key can be rotated (the previous one still verifies what it signed)
    and so the MAC covers which key was meant; it reveals nothing about the key.

    Example:
        >>> clock_key_id(b"k")
        '2d063644'
    """
    return hashlib.sha256(b"skewgate clock key id\0" + key).hexdigest()[:8]


def sign_clock_reading(key: bytes, t1: str, t2: str, session: str = "") -> str:
    """The token ``/v1/clock`` hands out so an echo of (t1, t2) can be trusted.

    ``<key id>.<MAC>``: the MAC covers the key id, the session the exchange was made for
    (``""`` for none) and the exact text of t1 and t2. A token therefore verifies only for
    batches of that session: one copied into another session is a bad token. How long it is
    good for follows from t2 itself (``max_sync_age_ms``); that the same exchange counts
    once per session is the session state's job (:mod:`skewgate.clock.filter`).

    Example:
        >>> sign_clock_reading(b"k", "1.5", "2.5", "s1")
        '2d063644.2267eb35dd84eaf7a89df505dc36ab06'
    """
    kid = clock_key_id(key)
    message = f"skewgate-clock-v2;{kid};{session};{t1};{t2}"
    return kid + "." + hmac.new(key, message.encode(), hashlib.sha256).hexdigest()[:32]


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
        self,
        received_at_ms: float,
        max_age_ms: float,
        key: bytes | None,
        session: str | None = None,
        previous_keys: tuple[bytes, ...] = (),
    ) -> str | None:
        """Why this echo must not be used, or ``None`` when it is usable.

        t1/t2 must be readings of our clock issued before this request and not too long ago
        (an old exchange says nothing about a clock that may have been set since), and when a
        key is configured the token must authenticate them for this batch's ``session``
        (``None``: no session), under the current key or one of ``previous_keys``.
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
            kid = (self.token or "").partition(".")[0]
            signer = next((k for k in (key, *previous_keys) if clock_key_id(k) == kid), None)
            if signer is None or self.token is None:
                return "bad token"
            expected = sign_clock_reading(signer, self.t1_text, self.t2_text, session or "")
            if not hmac.compare_digest(expected, self.token):
                return "bad token"
        return None


@dataclass(frozen=True, slots=True)
class ClockSyncHeader:
    """An ``X-Clock-Sync`` header: an exchange, the companion's drift epoch, or both.

    ``t0=..;t1=..;t2=..;t3=..[;token=..][;epoch=N]`` or ``epoch=N`` alone (the companion
    dropped its exchange after seeing its clocks disagree and has no new one yet).

    Example:
        >>> h = ClockSyncHeader.parse("t0=1;t1=5;t2=6;t3=4;epoch=2")
        >>> h.sync is not None, h.epoch, h.malformed
        (True, 2, False)
        >>> ClockSyncHeader.parse("epoch=1").epoch, ClockSyncHeader.parse("t0=1").malformed
        (1, True)
    """

    sync: ClockSync | None = None
    epoch: int | None = None
    malformed: bool = False

    @classmethod
    def parse(cls, header: str | None) -> ClockSyncHeader:
        if not header:
            return cls()
        epoch: int | None = None
        pieces = []
        for piece in header.split(";"):
            name, sep, value = piece.strip().partition("=")
            if name.strip().lower() == "epoch" and sep:
                text = value.strip()
                if not text.isdigit() or int(text) > _MAX_EPOCH:
                    return cls(malformed=True)
                epoch = int(text)
            else:
                pieces.append(piece)
        if not pieces and epoch is not None:
            return cls(epoch=epoch)
        sync = ClockSync.parse(";".join(pieces))
        return cls(sync, epoch, sync is None)


@dataclass(frozen=True, slots=True)
class BatchEvidence:
    """What one request tells about the client clock (all times in ms)."""

    received_at_ms: float
    sent_at_ms: float | None = None
    max_client_time_ms: float | None = None
    clock_sync: ClockSync | None = None
    #: The session the batch belongs to: a sync token must have been issued for it.
    session_id: str | None = None
    #: The companion's drift epoch (``X-Clock-Sync: ...;epoch=N``), when it sent one.
    drift_epoch: int | None = None
