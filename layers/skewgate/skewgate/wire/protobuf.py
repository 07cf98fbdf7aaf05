"""Protobuf wire-format primitives, written once for the encoder and the splicer. Pure.

Varints, field keys, length-delimited fields, and a reader that walks a message's fields
without decoding them. Field numbers live beside the code that uses them.

Example:
    >>> field = len_field(tag(1, WIRE_LEN), b"hi")
    >>> field, [(n, field[vs:ve]) for n, _fs, vs, ve in iter_fields(field)]
    (b'\\n\\x02hi', [(1, b'hi')])
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

__all__ = [
    "WIRE_FIXED32",
    "WIRE_FIXED64",
    "WIRE_LEN",
    "WIRE_VARINT",
    "WireError",
    "iter_fields",
    "len_field",
    "read_varint",
    "tag",
    "varint",
]

WIRE_VARINT: Final = 0
WIRE_FIXED64: Final = 1
WIRE_LEN: Final = 2
WIRE_FIXED32: Final = 5
_MASK64: Final = (1 << 64) - 1


class WireError(ValueError):
    """Bytes that are not well-formed protobuf at the level being walked."""


def _varint_slow(value: int) -> bytes:
    if value < 0:
        value &= _MASK64  # int64 on the wire: two's complement in 10 bytes
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# Lengths and small ints are almost always below 2**14: look them up instead of looping.
# Built as byte pairs, not by looping _varint_slow: a fifth of the import time.
_SMALL_VARINTS: Final = tuple(
    [bytes((i,)) for i in range(128)]
    + [bytes((low, high)) for high in range(1, 128) for low in range(128, 256)]
)


def varint(value: int) -> bytes:
    """A base-128 varint; negative values as 64-bit two's complement (int64 fields)."""
    if 0 <= value < 16384:
        return _SMALL_VARINTS[value]
    return _varint_slow(value)


def tag(field: int, wire: int) -> bytes:
    """A field key: ``(field << 3) | wire``."""
    return varint((field << 3) | wire)


def len_field(field_tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: key, length, payload."""
    n = len(payload)
    return field_tag + (_SMALL_VARINTS[n] if n < 16384 else _varint_slow(n)) + payload


def read_varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it."""
    result = 0
    shift = 0
    while True:
        if pos >= end or shift > 63:
            raise WireError("truncated or overlong varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def iter_fields(
    buf: bytes, start: int = 0, end: int | None = None
) -> Iterator[tuple[int, int, int, int]]:
    """Yield ``(field_number, field_start, value_start, value_end)`` for each field.

    ``buf[field_start:value_end]`` is the whole field (key, length and value) ready to be
    copied; for length-delimited fields ``buf[value_start:value_end]`` is the payload.
    """
    end = len(buf) if end is None else end
    pos = start
    while pos < end:
        field_start = pos
        key, pos = read_varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        if wire == WIRE_VARINT:
            _, pos = read_varint(buf, pos, end)
            value_start = value_end = pos
        elif wire == WIRE_FIXED64:
            value_start, value_end = pos, pos + 8
        elif wire == WIRE_LEN:
            length, value_start = read_varint(buf, pos, end)
            value_end = value_start + length
        elif wire == WIRE_FIXED32:
            value_start, value_end = pos, pos + 4
        else:
            raise WireError(f"unsupported wire type {wire}")
        if value_end > end:
            raise WireError("field runs past the end of its message")
        pos = value_end
        yield number, field_start, value_start, value_end
