"""Configuration from environment variables; the same names locally and in template.yaml.

One model per function, all declared here as msgspec Structs whose field ``x_y`` *is* the
variable ``X_Y``: a function validates only what it uses (the ingest does not fail on a
forwarder setting), shared fields are declared once (``TableSettings``), and bad configuration
fails at start with a one-line message naming the variable. msgspec rather than
pydantic-settings: the model is read at every cold start, and msgspec is already loaded for the
JSON hot path, where pydantic-settings' import alone costs more than half of a boto3 client's.

An empty variable counts as unset (CloudFormation passes ``""`` for a parameter left blank).

Example:
    >>> s = IngestSettings.from_env({"TABLE_NAME": "skewgate", "MIN_CORRECTION_MS": "40"})
    >>> s.min_correction_ms, s.origins()
    (40.0, None)
    >>> IngestSettings.from_env({"TABLE_NAME": "skewgate", "MAX_BATCH_AGE_MS": "soon"})
    Traceback (most recent call last):
    ...
    skewgate.aws.settings.ConfigError: MAX_BATCH_AGE_MS: expected a number, got 'soon'
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Annotated, Literal, Self
from urllib.parse import unquote, urlsplit

import msgspec

from skewgate.aws.cors import Cors, CorsConfigError, parse_allow_headers, parse_cors, parse_origins
from skewgate.clock.estimate import EstimatorConfig
from skewgate.wire.decode import Limits

_LIMITS = Limits()

__all__ = [
    "ConfigError",
    "ForwardSettings",
    "IngestSettings",
    "ReadSettings",
    "TableSettings",
    "parse_headers",
]


class ConfigError(ValueError):
    """Raised at start for a missing or malformed environment variable."""


Positive = Annotated[float, msgspec.Meta(gt=0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
_WHERE = re.compile(r" - at `\$\.(?P<name>[A-Z0-9_]+)`")
_MISSING = re.compile(r"missing required field `(?P<name>[A-Z0-9_]+)`")
_TYPE_NAMES = {"float": "a number", "int": "an integer", "str": "a string", "bool": "true/false"}


def _csv(value: str | None) -> frozenset[str] | None:
    if value is None:
        return None
    items = frozenset(part.strip() for part in value.split(",") if part.strip())
    return items or None


def _explain(exc: msgspec.ValidationError, values: Mapping[str, str]) -> str:
    """msgspec's message as ``NAME: what is wrong``."""
    text = str(exc)
    missing = _MISSING.search(text)
    if missing:
        return f"{missing['name']}: required but not set"
    where = _WHERE.search(text)
    if where is None:
        return text
    name = where["name"]
    problem = text[: where.start()]
    expected = re.fullmatch(r"Expected `(\w+)`, got `\w+`", problem)
    if expected:
        wanted = _TYPE_NAMES.get(expected[1], expected[1])
        return f"{name}: expected {wanted}, got {values.get(name)!r}"
    return f"{name}: {problem[0].lower() + problem[1:]} (got {values.get(name)!r})"


class _EnvModel(msgspec.Struct, frozen=True, kw_only=True, rename="upper"):
    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Read and validate; ``environ`` defaults to ``os.environ``."""
        env = os.environ if environ is None else environ
        fields = {f.encode_name for f in msgspec.structs.fields(cls)}
        values = {k: v for k, v in env.items() if k in fields and v.strip() != ""}
        try:
            settings = msgspec.convert(values, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise ConfigError(_explain(exc, values)) from None
        settings._check()
        return settings

    def _check(self) -> None:
        """Rules across fields; raise ``ConfigError`` naming the variable."""


class TableSettings(_EnvModel, frozen=True, kw_only=True):
    """What every function needs: the table and how long items live."""

    table_name: Annotated[str, msgspec.Meta(min_length=3, max_length=255)]
    retention_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] = 30
    #: One keys-only item per trace of every batch, so a trace is read by its id alone. It is
    #: half of what a batch of 16-span traces costs to write; without it a trace is read
    #: through its session (``?session=``), whose samples list their batches' traces.
    trace_index: bool = True

    @property
    def retention_seconds(self) -> int:
        return self.retention_days * 86_400


class ReadSettings(TableSettings, frozen=True, kw_only=True):
    """The read API's settings (the table only)."""


class IngestSettings(TableSettings, frozen=True, kw_only=True):
    """Every knob of ``POST /v1/traces`` and ``GET /v1/clock``."""

    allowed_origins: str | None = None
    cors_allow_headers: str | None = None
    ingest_keys: str | None = None
    min_correction_ms: NonNegative = 25.0
    max_correction_ms: Positive | None = None
    max_upload_delay_ms: Positive = 10_000.0
    max_batch_age_ms: Positive = 60_000.0
    max_drift_ppm: Annotated[float, msgspec.Meta(ge=0, le=100_000)] = 200.0
    max_sync_age_ms: Positive = 10 * 60_000.0
    clock_sync_key: str | None = None
    #: Keys that signed tokens still in flight after a rotation (comma-separated): they verify,
    #: they sign nothing new. Tokens name their key (``<key id>.<MAC>``).
    clock_sync_previous_keys: str | None = None
    default_one_way_delay_ms: NonNegative = 20.0
    # The request limits' defaults are the wire room's own (one place says what they are).
    max_body_bytes: PositiveInt = _LIMITS.max_body_bytes
    max_inflated_bytes: PositiveInt = _LIMITS.max_inflated_bytes
    max_spans_per_request: PositiveInt = _LIMITS.max_spans
    max_attributes_per_span: PositiveInt = _LIMITS.max_attributes
    max_attribute_value_bytes: PositiveInt = _LIMITS.max_value_bytes
    max_nested_values: PositiveInt = _LIMITS.max_nested_values
    max_nested_depth: PositiveInt = _LIMITS.max_nested_depth
    max_nested_bytes_per_request: PositiveInt = _LIMITS.max_nested_bytes
    max_messages_per_request: PositiveInt = _LIMITS.max_messages
    # One transaction commits a batch: 3 writes per session and the marker (≤ 100).
    max_sessions_per_request: Annotated[int, msgspec.Meta(ge=1, le=33)] = 32
    max_traces_per_request: PositiveInt = 1_000
    #: A shifted batch's adjusted copy is stored beside the raw body (its times rewritten in
    #: the received encoding). Off, readers derive it from raw + the stored shifts.
    store_adjusted_copy: bool = True

    def _check(self) -> None:
        for name, parse in (
            ("ALLOWED_ORIGINS", lambda: parse_origins(self.allowed_origins)),
            ("CORS_ALLOW_HEADERS", lambda: parse_allow_headers(self.cors_allow_headers)),
        ):
            try:
                parse()
            except CorsConfigError as exc:
                raise ConfigError(f"{name}: {exc}") from None

    def origins(self) -> frozenset[str] | None:
        """``ALLOWED_ORIGINS``' exact origins; ``None`` means any origin (unset or ``*``).

        Wildcard-subdomain entries (``https://*.example.com``) are in :meth:`cors` only.
        """
        return parse_origins(self.allowed_origins)[0]

    def cors(self) -> Cors:
        """The origin allow-list and preflight headers (``ALLOWED_ORIGINS``,
        ``CORS_ALLOW_HEADERS``)."""
        return parse_cors(self.allowed_origins, self.cors_allow_headers)

    def ingest_key_set(self) -> frozenset[str] | None:
        return _csv(self.ingest_keys)

    def estimator(self) -> EstimatorConfig:
        return EstimatorConfig(
            min_correction_ms=self.min_correction_ms,
            max_correction_ms=self.max_correction_ms,
            max_upload_delay_ms=self.max_upload_delay_ms,
            max_batch_age_ms=self.max_batch_age_ms,
            max_drift_ppm=self.max_drift_ppm,
            max_sync_age_ms=self.max_sync_age_ms,
            clock_sync_key=self.clock_sync_key.encode() if self.clock_sync_key else None,
            clock_sync_previous_keys=tuple(
                k.encode() for k in sorted(_csv(self.clock_sync_previous_keys) or ())
            ),
            default_one_way_delay_ms=self.default_one_way_delay_ms,
        )

    def limits(self) -> Limits:
        return Limits(
            max_body_bytes=self.max_body_bytes,
            max_inflated_bytes=self.max_inflated_bytes,
            max_spans=self.max_spans_per_request,
            max_attributes=self.max_attributes_per_span,
            max_value_bytes=self.max_attribute_value_bytes,
            max_nested_values=self.max_nested_values,
            max_nested_depth=self.max_nested_depth,
            max_nested_bytes=self.max_nested_bytes_per_request,
            max_messages=self.max_messages_per_request,
        )


def parse_headers(text: str | None) -> dict[str, str]:
    """``FORWARD_HEADERS``: comma-separated ``key=value``, trimmed, percent-decoded.

    >>> parse_headers("api-key=s3cr%3Dt, x-scope = tenant a")
    {'api-key': 's3cr=t', 'x-scope': 'tenant a'}
    """
    headers: dict[str, str] = {}
    for entry in (text or "").split(","):
        if not entry.strip():
            continue
        key, sep, value = entry.partition("=")
        key = unquote(key).strip()
        if not sep or not key:
            raise ConfigError(f"FORWARD_HEADERS: {entry.strip()!r} is not key=value")
        if any(c in key for c in " \t\r\n:"):
            raise ConfigError(f"FORWARD_HEADERS: {key!r} is not a valid header name")
        value = unquote(value).strip()
        if any(c in value for c in "\r\n"):
            raise ConfigError(f"FORWARD_HEADERS: the value of {key!r} contains a line break")
        headers[key] = value
    return headers


class ForwardSettings(_EnvModel, frozen=True, kw_only=True):
    """The forwarder's knobs; ``TABLE_NAME`` is where it reads committed batches back."""

    table_name: str | None = None
    forward_target: Literal["otlp", "xray", "none"] = "none"
    forward_endpoint: str | None = None
    forward_headers: str | None = None
    forward_dlq_url: str | None = None
    forward_dlq_file: str | None = None
    forward_max_request_bytes: PositiveInt = 5_000_000
    forward_max_request_spans: PositiveInt = 10_000
    forward_timeout_ms: Positive = 10_000.0
    forward_margin_ms: NonNegative = 3_000.0
    aws_region: str | None = None
    aws_default_region: str | None = None

    def _check(self) -> None:
        self.headers()  # validates FORWARD_HEADERS
        if self.forward_target == "otlp" and not self.forward_endpoint:
            raise ConfigError("FORWARD_ENDPOINT: required when FORWARD_TARGET=otlp")
        if self.forward_endpoint:
            url = urlsplit(self.forward_endpoint)
            if url.scheme not in ("http", "https") or not url.netloc:
                raise ConfigError(
                    f"FORWARD_ENDPOINT: {self.forward_endpoint!r} is not an http(s) URL"
                )
        if self.forward_target == "xray" and not self.region:
            raise ConfigError("AWS_REGION: required when FORWARD_TARGET=xray")

    @property
    def region(self) -> str | None:
        return self.aws_region or self.aws_default_region

    def headers(self) -> dict[str, str]:
        return parse_headers(self.forward_headers)

    def endpoint(self) -> str | None:
        """Where requests go: ``FORWARD_ENDPOINT``, or X-Ray's regional OTLP endpoint."""
        if self.forward_endpoint:
            return self.forward_endpoint
        if self.forward_target == "xray":
            return f"https://xray.{self.region}.amazonaws.com/v1/traces"
        return None

    def describe(self) -> str:
        """One line for logs and ``make run``: where spans go (never the header values)."""
        if self.forward_target == "none":
            return "off (FORWARD_TARGET=none)"
        names = ", ".join(sorted(self.headers())) or "none"
        auth = "SigV4 (xray)" if self.forward_target == "xray" else f"headers: {names}"
        return f"{self.forward_target} -> {self.endpoint()} ({auth})"
