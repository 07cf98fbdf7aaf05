"""Typed views of the read API's documents, for the CLI and the tests (pydantic v2).

The documents themselves are built once, by ``skewgate.read.*_document``; the read routes
serve them and ``skewgate --json`` prints them unchanged. These models parse the same dicts
for rendering and pin the contract: ``extra="forbid"``, and ``dump()`` gives the input back.

Example:
    >>> doc = {"session_id": "s", "samples": []}
    >>> SkewDocument.model_validate(doc).dump() == doc
    True
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = [
    "SessionDay",
    "SessionsDocument",
    "SkewDocument",
    "SkewSample",
    "StatsDocument",
    "Tally",
    "TraceDocument",
    "TraceSpan",
]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def dump(self) -> dict[str, Any]:
        """The JSON document again (optional keys the input did not have stay absent)."""
        return self.model_dump(mode="json", exclude_unset=True)


class SkewSample(_Doc):
    """One batch of one session: the verdict on its clock (DESIGN.md §2)."""

    received_at_ms: int
    offset_ms: float
    lower_ms: float | None
    upper_ms: float | None
    method: str
    applied: bool
    jump: bool
    flags: list[str]
    span_count: int
    trace_ids: list[str]


class SkewDocument(_Doc):
    """``GET /v1/sessions/{id}/skew``."""

    session_id: str
    samples: list[SkewSample]
    next_cursor: str | None = None


class SessionDay(_Doc):
    """One session on one (UTC) day: its latest verdict and the day's counts."""

    session_id: str
    max_proven_abs_offset_ms: float
    offset_ms: float
    lower_ms: float | None
    upper_ms: float | None
    method: str
    applied: bool
    batches: int
    corrected_batches: int
    jumps: int
    first_received_at_ms: int | None
    last_received_at_ms: int


class SessionsDocument(_Doc):
    """``GET /v1/sessions?day=``: most skewed first."""

    day: str
    sessions: list[SessionDay]
    next_cursor: str | None = None


class TraceSpan(_Doc):
    """One stored span with its raw (client clock) and corrected times."""

    span_id: str
    parent_span_id: str | None
    name: str
    service: str | None
    session_id: str | None
    received_at_ms: int
    raw_start_time_unix_nano: int
    raw_end_time_unix_nano: int
    start_time_unix_nano: int
    end_time_unix_nano: int
    offset_ms: float
    lower_ms: float | None
    upper_ms: float | None
    method: str
    applied: bool

    @property
    def shift_ms(self) -> float:
        return (self.start_time_unix_nano - self.raw_start_time_unix_nano) / 1e6


class TraceDocument(_Doc):
    """``GET /v1/traces/{id}``."""

    trace_id: str
    spans: list[TraceSpan]


class Tally(_Doc):
    """How many, and how many of them proven beyond each threshold."""

    total: int
    over: dict[str, int]
    share: dict[str, float | None]


class MethodTallies(_Doc):
    sessions: Tally
    batches: Tally


class StatsDocument(_Doc):
    """``GET /v1/stats?day=``."""

    day: str
    thresholds_ms: dict[str, float]
    sessions: Tally
    batches: Tally
    by_method: dict[str, MethodTallies]
    corrected_batches: int
    jumps: int
    unclassified_batches: int
