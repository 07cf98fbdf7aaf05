"""A stored body: the request as received and its adjusted copy, compressed together. Pure.

zstd, chosen by measurement (``benchmarks/pipeline.py`` prints the codecs side by side): on a
512-span OTel JS batch it compresses to about 4 % of the JSON in a sixth of a millisecond,
at once smaller and 5× faster than zlib, and half lz4's size. Level 2, not 1: on such bodies
(hex ids, 19-digit times) it is both a little faster and a little smaller. The adjusted copy
differs from the raw one only in its times, so both go into one zstd frame, raw first: the
adjusted copy is mostly back-references into the raw one and costs a few kilobytes (a separate
frame with the raw body as its dictionary would cost ten times the CPU to load the
dictionary). ``layout``
records each part's size, for :func:`unpack`.

Example:
    >>> blob, layout = pack(b'{"a":"1000"}' * 50, b'{"a":"1005"}' * 50)
    >>> raw, adjusted = unpack(blob, layout)
    >>> len(blob) < 100, raw[:12], adjusted[:12]
    (True, b'{"a":"1000"}', b'{"a":"1005"}')
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

import msgspec

__all__ = ["CODEC", "BodyLayout", "pack", "unpack"]

CODEC: Final = "zstd"
_LEVEL: Final = 2
_LOCAL: Final = threading.local()  # a compressor is reused, but never by two threads at once

if TYPE_CHECKING:
    import zstandard


def _compressor(level: int) -> zstandard.ZstdCompressor:
    compressors: dict[int, zstandard.ZstdCompressor] | None = getattr(_LOCAL, "by_level", None)
    if compressors is None:
        compressors = _LOCAL.by_level = {}
    compressor = compressors.get(level)
    if compressor is None:
        import zstandard

        compressor = compressors[level] = zstandard.ZstdCompressor(level=level)
    return compressor


class BodyLayout(msgspec.Struct, frozen=True, kw_only=True):
    """A blob: ``stored`` compressed bytes of the raw body then the adjusted copy."""

    codec: str = CODEC
    raw_size: int
    stored: int
    #: 0: no adjusted copy stored; it is the raw body with each session's shift applied
    #: (nothing, when nothing moved; else ``STORE_ADJUSTED_COPY`` was off).
    adjusted_size: int = 0


def pack(
    raw: bytes, adjusted: bytes | bytearray | Iterable[bytes] | None, level: int = _LEVEL
) -> tuple[bytes, BodyLayout]:
    """Compress ``raw`` and (if any) ``adjusted`` into one blob.

    ``adjusted`` may come as consecutive pieces (a large body's, never held whole); whatever
    the iterable raises propagates, and nothing is returned.
    """
    compressor = _compressor(level)
    if adjusted is None:
        blob = compressor.compress(raw)
        adjusted_size = 0
    elif isinstance(adjusted, bytes | bytearray):
        # One frame, fed in two parts: no copy of raw + adjusted is ever made.
        stream = compressor.compressobj(size=len(raw) + len(adjusted))
        blob = stream.compress(raw) + stream.compress(adjusted) + stream.flush()
        adjusted_size = len(adjusted)
    else:
        stream = compressor.compressobj()
        parts = [stream.compress(raw)]
        adjusted_size = 0
        for piece in adjusted:
            adjusted_size += len(piece)
            parts.append(stream.compress(piece))
        parts.append(stream.flush())
        blob = b"".join(parts)
    layout = BodyLayout(raw_size=len(raw), stored=len(blob), adjusted_size=adjusted_size)
    return blob, layout


def unpack(blob: bytes, layout: BodyLayout) -> tuple[bytes, bytes | None]:
    """The raw body and the adjusted copy (``None`` when nothing was shifted)."""
    import zstandard

    if layout.codec != CODEC:
        raise ValueError(f"unknown body codec {layout.codec!r}")
    if len(blob) != layout.stored:
        raise ValueError("stored body is incomplete")
    size = layout.raw_size + layout.adjusted_size
    data = zstandard.ZstdDecompressor().decompress(blob, max_output_size=size)
    if len(data) != size:
        raise ValueError("stored body does not match its layout")
    raw = data[: layout.raw_size]
    return raw, (data[layout.raw_size :] if layout.adjusted_size else None)
