"""The wire primitives against the official protobuf runtime's own encoding."""

from __future__ import annotations

import pytest
from google.protobuf.internal import decoder, encoder

from skewgate.wire.protobuf import read_varint, varint

EDGES = [0, 1, 127, 128, 255, 300, 16_383, 16_384, 2**21 - 1, 2**21, 2**35, 2**63 - 1, 2**64 - 1]


def protobuf_varint(value: int) -> bytes:
    out: list[bytes] = []
    encoder._VarintEncoder()(out.append, value, True)
    return b"".join(out)


def test_varint_is_protobufs() -> None:
    for value in [*EDGES, *range(1 << 15)]:  # every value of the lookup table, and past it
        encoded = varint(value)
        assert encoded == protobuf_varint(value), value
        assert read_varint(encoded, 0, len(encoded)) == (value, len(encoded))
        assert decoder._DecodeVarint(encoded, 0) == (value, len(encoded))


@pytest.mark.parametrize("value", [-1, -2**31, -2**63])
def test_negative_int64_is_ten_bytes_of_twos_complement(value: int) -> None:
    assert varint(value) == protobuf_varint(value & (2**64 - 1))
    assert len(varint(value)) == 10
