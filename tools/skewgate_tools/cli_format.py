"""Human units for clock offsets and times (CLI tables, plot ticks).

Offsets span a millisecond to days, so each one is shown in the unit that fits it.

Example:
    >>> fmt_ms(-760.0), fmt_ms(10_799_262.0), fmt_ms(172_800_037.0), fmt_ms(0.4)
    ('-760 ms', '+3.00 h', '+2.00 d', '+0.40 ms')
    >>> fmt_interval(-10_760.0, None)
    '[-10.76 s, +inf]'
    >>> count(1, "span"), count(3, "span"), count(1, "batch", "es"), count(0, "batch", "es")
    ('1 span', '3 spans', '1 batch', '0 batches')
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["count", "fmt_interval", "fmt_ms", "fmt_ns_time", "fmt_time", "human_unit"]

#: (name, milliseconds), largest first.
_UNITS = (("d", 86_400_000.0), ("h", 3_600_000.0), ("min", 60_000.0), ("s", 1_000.0))


def count(n: int, one: str, suffix: str = "s") -> str:
    """``n`` things, singular for exactly one: ``1 span``, ``2 spans``, ``2 batches``."""
    return f"{n} {one if n == 1 else one + suffix}"


def fmt_ms(value: float | None, *, signed: bool = True, none: str = "-") -> str:
    """``value`` milliseconds in the largest unit it reaches, 3 significant-ish digits."""
    if value is None:
        return none
    sign = ("+" if value > 0 else "-" if value < 0 else "") if signed else ""
    magnitude = abs(value) if signed else value
    for name, size in _UNITS:
        if magnitude >= size:
            return f"{sign}{magnitude / size:.2f} {name}"
    if magnitude >= 10 or magnitude == 0:
        return f"{sign}{magnitude:.0f} ms"
    return f"{sign}{magnitude:.2f} ms"


def fmt_interval(lower: float | None, upper: float | None) -> str:
    """``[lower, upper]``, an unbounded side as ``-inf`` / ``+inf``; ``mid ± half`` when the
    bounds would print the same (a clock two days off, known to seconds).

    >>> fmt_interval(172_790_087.0, 172_800_057.0)
    '+2.00 d ± 4.99 s'
    """
    low, high = fmt_ms(lower, none="-inf"), fmt_ms(upper, none="+inf")
    if lower is not None and upper is not None and low == high and upper > lower:
        return f"{fmt_ms((lower + upper) / 2)} ± {fmt_ms((upper - lower) / 2, signed=False)}"
    return f"[{low}, {high}]"


def human_unit(range_ms: float) -> tuple[str, float]:
    """A unit in which a span of ``range_ms`` reads as a few units to a few hundred."""
    if range_ms >= 2 * 86_400_000:
        return "d", 86_400_000.0
    if range_ms >= 2 * 3_600_000:
        return "h", 3_600_000.0
    if range_ms >= 2 * 60_000:
        return "min", 60_000.0
    if range_ms >= 2 * 1_000:
        return "s", 1_000.0
    return "ms", 1.0


def fmt_time(epoch_ms: float, *, with_date: bool = True) -> str:
    """UTC wall time of an epoch in ms, to the millisecond."""
    moment = datetime.fromtimestamp(epoch_ms / 1000.0, tz=UTC)
    text = moment.strftime("%Y-%m-%d %H:%M:%S.%f" if with_date else "%H:%M:%S.%f")
    return text[:-3]


def fmt_ns_time(epoch_ns: int | str, *, with_date: bool = False) -> str:
    """UTC wall time of an OTLP ``*_unix_nano`` to the microsecond."""
    seconds, nanos = divmod(int(epoch_ns), 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    clock = moment.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")
    return f"{clock}.{nanos // 1000:06d}"
