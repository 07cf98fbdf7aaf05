"""The OTLP trace model as msgspec Structs, mirroring OTLP/JSON. Pure: no I/O.

lowerCamelCase names, hex ids, int64 as string or number; ``gc=False`` because the tree holds
no cycles and a batch allocates tens of thousands of these. Everything after decoding (JSON or
protobuf) sees this one representation.

Example:
    >>> Span(trace_id="01" * 16, span_id="02" * 8).end_time_unix_nano
    0
"""

from __future__ import annotations

import msgspec

__all__ = [
    "AnyValue",
    "ArrayValue",
    "Event",
    "KeyValue",
    "KeyValueList",
    "Link",
    "Resource",
    "ResourceSpans",
    "Scope",
    "ScopeSpans",
    "Span",
    "Status",
    "TracesRequest",
]


class ArrayValue(msgspec.Struct, rename="camel", omit_defaults=True, gc=False):
    values: list[AnyValue] = []


class KeyValueList(msgspec.Struct, rename="camel", omit_defaults=True, gc=False):
    values: list[KeyValue] = []


class AnyValue(msgspec.Struct, rename="camel", omit_defaults=True, gc=False):
    """One of the fields is set (OTLP's ``oneof value``); ``int_value`` accepts "123" too."""

    string_value: str | None = None
    bool_value: bool | None = None
    int_value: int | None = None
    double_value: float | None = None
    array_value: ArrayValue | None = None
    kvlist_value: KeyValueList | None = None
    bytes_value: str | None = None  # base64, as OTLP/JSON has it


class KeyValue(msgspec.Struct, rename="camel", omit_defaults=True, gc=False):
    key: str = ""
    value: AnyValue | None = None


class Resource(msgspec.Struct, rename="camel", omit_defaults=True, gc=False):
    attributes: list[KeyValue] = []
    dropped_attributes_count: int = 0


class Scope(msgspec.Struct, rename="camel", omit_defaults=True, gc=False):
    name: str = ""
    version: str = ""
    attributes: list[KeyValue] = []
    dropped_attributes_count: int = 0


class Event(msgspec.Struct, rename="camel", omit_defaults=True, gc=False):
    time_unix_nano: int = 0
    name: str = ""
    attributes: list[KeyValue] = []
    dropped_attributes_count: int = 0


class Link(msgspec.Struct, rename="camel", omit_defaults=True, gc=False):
    trace_id: str = ""
    span_id: str = ""
    trace_state: str = ""
    attributes: list[KeyValue] = []
    dropped_attributes_count: int = 0
    flags: int = 0


class Status(msgspec.Struct, rename="camel", omit_defaults=True, gc=False):
    message: str = ""
    code: int = 0


class Span(msgspec.Struct, rename="camel", omit_defaults=True, gc=False):
    trace_id: str = ""
    span_id: str = ""
    trace_state: str = ""
    parent_span_id: str = ""
    flags: int = 0
    name: str = ""
    kind: int = 0
    start_time_unix_nano: int = 0
    end_time_unix_nano: int = 0
    attributes: list[KeyValue] = []
    dropped_attributes_count: int = 0
    events: list[Event] = []
    dropped_events_count: int = 0
    links: list[Link] = []
    dropped_links_count: int = 0
    status: Status | None = None


class ScopeSpans(msgspec.Struct, rename="camel", omit_defaults=True, gc=False):
    scope: Scope | None = None
    spans: list[Span] = []
    schema_url: str = ""


class ResourceSpans(msgspec.Struct, rename="camel", omit_defaults=True, gc=False):
    resource: Resource | None = None
    scope_spans: list[ScopeSpans] = []
    schema_url: str = ""


class TracesRequest(msgspec.Struct, rename="camel", omit_defaults=True, gc=False):
    resource_spans: list[ResourceSpans] = []
