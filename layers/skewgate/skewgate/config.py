"""Configuration from environment variables; the same names locally and in template.yaml.

Bad configuration fails at start, naming the variable.

Example:
    >>> s = Settings.from_env({"TABLE_NAME": "skewgate", "MIN_CORRECTION_MS": "40"})
    >>> s.min_correction_ms, s.allowed_origins
    (40.0, None)
    >>> Settings.from_env({"TABLE_NAME": "skewgate", "MAX_BATCH_AGE_MS": "soon"})
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    skewgate.config.ConfigError: MAX_BATCH_AGE_MS: Input should be a valid number...
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from skewgate.clock import EstimatorConfig
from skewgate.otlp import Limits

__all__ = ["ConfigError", "Settings"]


class ConfigError(ValueError):
    """Raised at start for a missing or malformed environment variable."""


def _csv(value: str | None) -> frozenset[str] | None:
    if value is None:
        return None
    items = frozenset(part.strip() for part in value.split(",") if part.strip())
    return items or None


class Settings(BaseSettings):
    """Every knob of the gateway. Field ``x_y`` is environment variable ``X_Y``."""

    model_config = SettingsConfigDict(case_sensitive=False, frozen=True, extra="ignore")

    table_name: str = Field(min_length=3, max_length=255)
    allowed_origins_raw: str | None = Field(default=None, alias="ALLOWED_ORIGINS")
    ingest_keys_raw: str | None = Field(default=None, alias="INGEST_KEYS")
    min_correction_ms: float = Field(default=25.0, ge=0)
    max_correction_ms: float | None = Field(default=None, gt=0)
    retention_days: int = Field(default=30, ge=1, le=3650)
    max_upload_delay_ms: float = Field(default=10_000.0, gt=0)
    max_batch_age_ms: float = Field(default=60_000.0, gt=0)
    max_drift_ppm: float = Field(default=200.0, ge=0, le=100_000)
    max_sync_age_ms: float = Field(default=6 * 3_600_000.0, gt=0)
    clock_sync_key: str | None = None
    forward_target: Literal["otlp", "xray", "none"] = "none"
    forward_endpoint: str | None = None
    forward_headers: str | None = None
    max_body_bytes: int = Field(default=5 * 1024 * 1024, gt=0)
    max_inflated_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    max_spans_per_request: int = Field(default=10_000, gt=0)
    max_attributes_per_span: int = Field(default=128, gt=0)
    max_attribute_value_bytes: int = Field(default=16 * 1024, gt=0)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # ``from_env`` hands over the one mapping to read, so a test's explicit environment
        # is never mixed with the process's.
        return (init_settings,)

    @field_validator(
        "max_correction_ms", "clock_sync_key", "forward_endpoint", "forward_headers", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate; ``environ`` defaults to ``os.environ``."""
        env = dict(os.environ if environ is None else environ)
        names = {name.upper(): name for name in cls.model_fields}
        names.update({f.alias: n for n, f in cls.model_fields.items() if f.alias})
        values = {names[k.upper()]: v for k, v in env.items() if k.upper() in names}
        values = {cls.model_fields[k].alias or k: v for k, v in values.items()}
        try:
            settings = cls.model_validate(values)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = str(first["loc"][0]) if first["loc"] else "configuration"
            field_info = cls.model_fields.get(field)
            name = (field_info.alias if field_info and field_info.alias else field).upper()
            if first["type"] == "missing":
                raise ConfigError(f"{name}: required but not set") from None
            raise ConfigError(f"{name}: {first['msg']}") from None
        if settings.forward_target == "otlp" and not settings.forward_endpoint:
            raise ConfigError("FORWARD_ENDPOINT: required when FORWARD_TARGET=otlp")
        return settings

    @property
    def allowed_origins(self) -> frozenset[str] | None:
        """``None`` means any origin (unset or ``*``)."""
        origins = _csv(self.allowed_origins_raw)
        if origins is None or "*" in origins:
            return None
        return frozenset(o.rstrip("/") for o in origins)

    @property
    def ingest_keys(self) -> frozenset[str] | None:
        return _csv(self.ingest_keys_raw)

    @property
    def retention_seconds(self) -> int:
        return self.retention_days * 86_400

    def estimator(self) -> EstimatorConfig:
        return EstimatorConfig(
            min_correction_ms=self.min_correction_ms,
            max_correction_ms=self.max_correction_ms,
            max_upload_delay_ms=self.max_upload_delay_ms,
            max_batch_age_ms=self.max_batch_age_ms,
            max_drift_ppm=self.max_drift_ppm,
            max_sync_age_ms=self.max_sync_age_ms,
            clock_sync_key=self.clock_sync_key.encode() if self.clock_sync_key else None,
        )

    def limits(self) -> Limits:
        return Limits(
            max_body_bytes=self.max_body_bytes,
            max_inflated_bytes=self.max_inflated_bytes,
            max_spans=self.max_spans_per_request,
            max_attributes=self.max_attributes_per_span,
            max_value_bytes=self.max_attribute_value_bytes,
        )
