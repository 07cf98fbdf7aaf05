"""Records ⇄ DynamoDB items: the single table's keys and one generic value codec. Pure.

Access paths (table ``PK``/``SK``, LSI ``ByReceipt`` on ``RSK``, GSI ``ByDay`` on ``DPK``/``DSK``):

===================  ===============================  ===========================================
item                 key                              read by
===================  ===============================  ===========================================
batch marker         BATCH#<b> / BATCH                the commit point: a retry is answered from
                                                      it; the stream (forwarder); reads of a body
body chunk           BATCH#<b> / BODY#<attempt>#<n>   the marker's reader (raw + adjusted, zstd)
trace index          TRACE#<trace> / B#<b>            a trace's batches (keys only)
skew sample          SESSION#<sid> / SAMPLE#<b>       LSI ByReceipt: a session, receipt order
session state        SESSION#<sid> / STATE            history and jump detection (versioned)
session day          SESSION#<sid> / DAY#<d>          GSI ByDay: a day's sessions, most skewed
===================  ===============================  ===========================================

Format 1 (before the body was kept once) wrote ``TRACE#<trace>`` / ``SPANS#...`` items with
each trace's spans encoded; they stay readable (:mod:`skewgate.aws.read`) and forwardable.

A record's fields become attributes of the same name through :func:`to_attributes`, and come
back through :func:`from_item`; only keys, ``type`` and ``ttl`` are added here.

Example:
    >>> from skewgate.clock.records import BatchRecord
    >>> item = batch_item(BatchRecord(batch_id="b", received_at_ms=5, span_count=1,
    ...                               rejected_spans=0), ttl=9)
    >>> item["PK"], item["span_count"], from_item(BatchRecord, item).span_count
    ({'S': 'BATCH#b'}, {'N': '1'}, 1)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final, TypeVar

import msgspec

from skewgate.clock.interval import SKEW_THRESHOLDS, proven_abs_offset_ms
from skewgate.clock.records import BatchRecord, SessionDay, SessionState, SkewSample, day_of

__all__ = [
    "DAY_INDEX",
    "SAMPLE_INDEX",
    "batch_item",
    "batch_key",
    "body_items",
    "body_prefix",
    "day_update",
    "from_item",
    "packed_trace_ids",
    "sample_from_item",
    "sample_item",
    "sample_trace_ids",
    "session_day_from_item",
    "state_key",
    "state_put",
    "to_attributes",
    "to_value",
    "trace_index_items",
]

SAMPLE_INDEX: Final = "ByReceipt"
DAY_INDEX: Final = "ByDay"

R = TypeVar("R", bound=msgspec.Struct)


# --- values --------------------------------------------------------------------------------


def to_value(value: Any) -> dict[str, Any]:
    """One Python value (as ``msgspec.to_builtins`` gives it) as a DynamoDB attribute value."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} cannot be stored")
        return {"N": repr(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"B": bytes(value)}
    if isinstance(value, list | tuple):
        return {"L": [to_value(v) for v in value]}
    if isinstance(value, dict):
        return {"M": {str(k): to_value(v) for k, v in value.items()}}
    raise TypeError(f"cannot store {type(value).__name__}")


def _from_value(attr: Mapping[str, Any]) -> Any:
    ((kind, value),) = attr.items()
    if kind == "N":
        text = str(value)
        return float(text) if any(c in text for c in ".eE") else int(text)
    if kind in ("S", "BOOL"):
        return value
    if kind == "NULL":
        return None
    if kind == "B":
        return bytes(value)
    if kind == "L":
        return [_from_value(v) for v in value]
    if kind == "M":
        return {k: _from_value(v) for k, v in value.items()}
    if kind == "SS":
        return sorted(value)
    raise ValueError(f"unsupported attribute type {kind}")


def to_attributes(record: msgspec.Struct) -> dict[str, dict[str, Any]]:
    """A record's fields as attributes of the same names."""
    return {
        name: to_value(value)
        for name, value in msgspec.to_builtins(record, builtin_types=(bytes,)).items()
    }


def from_item(cls: type[R], item: Mapping[str, Any]) -> R:
    """The record of type ``cls`` an item holds (keys and unknown attributes are ignored)."""
    fields = {f.encode_name for f in msgspec.structs.fields(cls)}
    values = {k: _from_value(v) for k, v in item.items() if k in fields}
    return msgspec.convert(values, cls, strict=False)


def _ttl(received_at_ms: float, retention_seconds: int) -> dict[str, str]:
    return {"N": str(int(received_at_ms / 1000) + retention_seconds)}


# --- batch marker ----------------------------------------------------------------------------


def batch_key(batch_id: str) -> dict[str, dict[str, str]]:
    return {"PK": {"S": f"BATCH#{batch_id}"}, "SK": {"S": "BATCH"}}


def batch_item(record: BatchRecord, *, ttl: int) -> dict[str, Any]:
    return {
        **batch_key(record.batch_id),
        "type": {"S": "batch"},
        **to_attributes(record),
        "ttl": {"N": str(ttl)},
    }


# --- skew samples, state, day ----------------------------------------------------------------


def sample_item(sample: SkewSample, retention_seconds: int) -> dict[str, Any]:
    attributes = to_attributes(sample)
    packed = packed_trace_ids(sample.trace_ids)
    if packed is not None:
        attributes["trace_ids"] = {"B": packed}
    return {
        "PK": {"S": f"SESSION#{sample.session_id}"},
        "SK": {"S": f"SAMPLE#{sample.batch_id}"},
        "RSK": {"S": f"{sample.received_at_ms:015d}#{sample.batch_id}"},
        "type": {"S": "sample"},
        **attributes,
        "ttl": _ttl(sample.received_at_ms, retention_seconds),
    }


def packed_trace_ids(trace_ids: Sequence[str]) -> bytes | None:
    """Trace ids as 16 bytes each, or ``None`` if one is not 32 lowercase hex digits.

    A sample is written in the commit transaction (2 write units per KB): as text the 32
    trace ids of a 512-span batch are a kilobyte, 2 of the 4 units its sample cost.

    >>> packed_trace_ids(["ab" * 16, "0f" * 16]).hex() == "ab" * 16 + "0f" * 16
    True
    >>> packed_trace_ids(["AB" * 16]) is None
    True
    """
    joined = "".join(trace_ids)
    if len(joined) != 32 * len(trace_ids):
        return None
    try:
        packed = bytes.fromhex(joined)
    except ValueError:
        return None
    return packed if packed.hex() == joined else None


def sample_trace_ids(attribute: Mapping[str, Any] | None) -> list[str]:
    """A sample item's ``trace_ids``: packed (``B``) or, as older items hold them, a list."""
    if attribute is None:
        return []
    if "B" in attribute:
        packed = bytes(attribute["B"])
        return [packed[i : i + 16].hex() for i in range(0, len(packed), 16)]
    return [value["S"] for value in attribute.get("L", [])]


def sample_from_item(item: Mapping[str, Any]) -> SkewSample:
    ids = sample_trace_ids(item.get("trace_ids"))
    return from_item(SkewSample, {**item, "trace_ids": {"L": [{"S": t} for t in ids]}})


def state_key(session_id: str) -> dict[str, dict[str, str]]:
    return {"PK": {"S": f"SESSION#{session_id}"}, "SK": {"S": "STATE"}}


def state_put(
    table: str, new: SessionState, previous: SessionState | None, ttl: dict[str, str]
) -> dict[str, Any]:
    """The conditional Put of a session's next state (version ``previous.version + 1``)."""
    put: dict[str, Any] = {
        "TableName": table,
        "Item": {**state_key(new.session_id), "type": {"S": "state"}, **to_attributes(new),
                 "ttl": ttl},
    }
    if previous is None:
        put["ConditionExpression"] = "attribute_not_exists(PK)"
    else:
        put["ConditionExpression"] = "version = :v"
        put["ExpressionAttributeValues"] = {":v": {"N": str(previous.version)}}
    return put


def day_update(
    table: str, sample: SkewSample, day_max_abs_ms: float, retention_seconds: int
) -> dict[str, Any]:
    """Per session and day: the latest verdict and the largest proven |offset| (day index)."""
    day = day_of(sample.received_at_ms)
    magnitude = min(day_max_abs_ms, 1e15)
    # Fleet counters (``skewgate stats``): batches per method, and of those the ones whose
    # interval proves |θ| beyond each threshold. Only counters that grow are written.
    method = sample.method.value
    proven = proven_abs_offset_ms(sample.lower_ms, sample.upper_ms)
    counters = [f"batches_{method}"] + [
        f"over_{name}_{method}" for name, bound in SKEW_THRESHOLDS if proven > bound
    ]
    names = {"#type": "type", "#method": "method", "#ttl": "ttl"}
    names.update({f"#c{i}": counter for i, counter in enumerate(counters)})
    counter_updates = "".join(
        f", #c{i} = if_not_exists(#c{i}, :zero) + :one" for i in range(len(counters))
    )
    return {
        "TableName": table,
        "Key": {"PK": {"S": f"SESSION#{sample.session_id}"}, "SK": {"S": f"DAY#{day}"}},
        "UpdateExpression": (
            "SET #type = :type, session_id = :sid, DPK = :dpk, last_received_at_ms = :recv,"
            " first_received_at_ms = if_not_exists(first_received_at_ms, :recv),"
            " offset_ms = :off, lower_ms = :lo, upper_ms = :up, #method = :method,"
            " applied = :applied, #ttl = :ttl,"
            " batches = if_not_exists(batches, :zero) + :one,"
            " jumps = if_not_exists(jumps, :zero) + :jump,"
            " corrected_batches = if_not_exists(corrected_batches, :zero) + :corrected,"
            " max_proven_abs_offset_ms = :mag, DSK = :dsk" + counter_updates
        ),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": {
            ":type": {"S": "session_day"},
            ":sid": {"S": sample.session_id},
            ":dpk": {"S": f"DAY#{day}"},
            ":recv": to_value(sample.received_at_ms),
            ":off": to_value(float(sample.offset_ms)),
            ":lo": to_value(sample.lower_ms),
            ":up": to_value(sample.upper_ms),
            ":method": {"S": method},
            ":applied": {"BOOL": sample.applied},
            ":ttl": _ttl(sample.received_at_ms, retention_seconds),
            ":zero": {"N": "0"},
            ":one": {"N": "1"},
            ":jump": {"N": "1" if sample.jump else "0"},
            ":corrected": {"N": "1" if sample.applied else "0"},
            ":mag": to_value(float(magnitude)),
            ":dsk": {"S": f"{magnitude:020.3f}#{sample.session_id}"},
        },
    }


def session_day_from_item(item: Mapping[str, Any]) -> SessionDay:
    counters = {
        name: int(value["N"])
        for name, value in item.items()
        if name.startswith(("batches_", "over_")) and "N" in value
    }
    values = {**item, "day": {"S": item["SK"]["S"].removeprefix("DAY#")}}
    record = from_item(SessionDay, values)
    return msgspec.structs.replace(record, counters=counters)


# --- body chunks and trace index -----------------------------------------------------------


def body_prefix(batch_id: str, attempt: str) -> tuple[dict[str, str], str]:
    """The partition key and sort-key prefix of one attempt's body chunks."""
    return {"S": f"BATCH#{batch_id}"}, f"BODY#{attempt}#"


def body_items(
    batch_id: str, attempt: str, chunks: list[bytes], ttl: int
) -> list[dict[str, Any]]:
    """The blob of one attempt, one item per chunk (no ``type``: the stream ignores them)."""
    pk, prefix = body_prefix(batch_id, attempt)
    return [
        {"PK": pk, "SK": {"S": f"{prefix}{i:04d}"}, "b": {"B": chunk}, "ttl": {"N": str(ttl)}}
        for i, chunk in enumerate(chunks)
    ]


def trace_index_items(batch_id: str, trace_ids: list[str], ttl: int) -> list[dict[str, Any]]:
    """One keys-only item per trace of the batch: ``TRACE#<trace>`` / ``B#<batch>``."""
    sk = {"S": f"B#{batch_id}"}
    expires = {"N": str(ttl)}
    return [{"PK": {"S": f"TRACE#{t}"}, "SK": sk, "ttl": expires} for t in trace_ids]
