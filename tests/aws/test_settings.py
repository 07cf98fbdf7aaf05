"""Configuration: one model per function, each validating only what it uses, errors naming
the variable."""

from __future__ import annotations

import pytest

from skewgate.aws.settings import ConfigError, ForwardSettings, IngestSettings, ReadSettings


def test_each_function_validates_only_its_own_settings() -> None:
    forward_broken = {"TABLE_NAME": "skewgate", "FORWARD_TARGET": "kafka",
                      "FORWARD_MAX_REQUEST_SPANS": "0"}
    assert IngestSettings.from_env(forward_broken).table_name == "skewgate"
    assert ReadSettings.from_env(forward_broken).table_name == "skewgate"
    with pytest.raises(ConfigError, match="FORWARD_TARGET"):
        ForwardSettings.from_env(forward_broken)
    # ... and the forwarder does not need the table or the ingest's knobs.
    assert ForwardSettings.from_env({"MIN_CORRECTION_MS": "soon"}).forward_target == "none"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "TABLE_NAME: required but not set"),
        ({"TABLE_NAME": "ab"}, "TABLE_NAME: "),
        ({"TABLE_NAME": "t" * 3, "MIN_CORRECTION_MS": "-1"}, "MIN_CORRECTION_MS: "),
        ({"TABLE_NAME": "ttt", "MAX_BATCH_AGE_MS": "soon"}, "MAX_BATCH_AGE_MS: expected a number"),
        ({"TABLE_NAME": "ttt", "RETENTION_DAYS": "1.5"}, "RETENTION_DAYS: "),
        ({"TABLE_NAME": "ttt", "MAX_SPANS_PER_REQUEST": "0"}, "MAX_SPANS_PER_REQUEST: "),
    ],
)
def test_bad_values_fail_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        IngestSettings.from_env(env)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_blank_is_unset_and_the_real_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    # CloudFormation passes "" for a parameter left blank.
    s = IngestSettings.from_env({"TABLE_NAME": "ttt", "MAX_CORRECTION_MS": "", "INGEST_KEYS": " "})
    assert s.max_correction_ms is None and s.ingest_key_set() is None
    monkeypatch.setenv("TABLE_NAME", "from-env")
    monkeypatch.setenv("MIN_CORRECTION_MS", "40")
    monkeypatch.setenv("ALLOWED_ORIGINS", "https://a.example, https://b.example/")
    s = IngestSettings.from_env()
    assert (s.table_name, s.min_correction_ms) == ("from-env", 40.0)
    assert s.origins() == {"https://a.example", "https://b.example"}
    assert s.estimator().min_correction_ms == 40.0
