"""CORS: exact and wildcard-subdomain origins, extra allowed headers, bad configuration."""

from __future__ import annotations

import json
from typing import Any

import pytest

from skewgate.aws.cors import CORS_ALLOW_HEADERS, parse_cors
from skewgate.aws.ingest import IngestApp
from skewgate.aws.settings import ConfigError, IngestSettings
from skewgate.aws.store import Store
from skewgate_tools.local.server import build_event


@pytest.mark.parametrize(
    "origin",
    [
        "https://app.example.com",
        "https://a.b.example.com",
        "https://xn--bcher-kva.example.com",
        "https://APP.Example.com",  # hosts are case-insensitive
        "https://app.example.com/",
    ],
)
def test_wildcard_matches_one_or_more_subdomain_labels(origin: str) -> None:
    assert parse_cors("https://*.example.com").problem(origin) is None


@pytest.mark.parametrize(
    "origin",
    [
        "https://example.com",  # no subdomain
        "https://app.example.com.evil.com",
        "https://evilexample.com",
        "https://app-example.com",
        "http://app.example.com",  # another scheme
        "https://app.example.com:8443",  # another port
        "https://.example.com",
        "https://-a.example.com",
        "https://a..example.com",
        "https://a_b.example.com",
        "https://app.example.com.",
        "https://user@app.example.com",
        "https://app.example.com/path",
        "null",
    ],
)
def test_wildcard_refuses_everything_else(origin: str) -> None:
    problem = parse_cors("https://*.example.com").problem(origin)
    assert problem == f"origin {origin!r} is not allowed"


def test_wildcard_with_a_port_and_exact_origins_together() -> None:
    cors = parse_cors("https://shop.example, http://*.dev.example:5173, null")
    for ok in ("https://shop.example", "http://a.dev.example:5173", "null"):
        assert cors.problem(ok) is None, ok
    for bad in ("http://a.dev.example", "http://a.dev.example:5174", "https://a.dev.example:5173",
                "https://www.shop.example"):
        assert cors.problem(bad) is not None, bad


def test_exact_origins_stay_exact_and_star_allows_any() -> None:
    cors = parse_cors("https://App.Example.com")  # configured in any case
    assert cors.problem("https://app.example.com") is None
    assert cors.problem("https://www.app.example.com") is not None
    assert parse_cors("https://a.example,*").problem("https://anything.example") is None
    assert parse_cors(None).problem("null") is None


def test_extra_headers_are_merged_after_the_built_in_ones() -> None:
    cors = parse_cors(None, " Authorization, x-sent-at,X-Vendor-Key ,authorization")
    assert cors.allow_headers == f"{CORS_ALLOW_HEADERS}, Authorization, X-Vendor-Key"
    preflight = cors.preflight("https://a.example", ("POST", "OPTIONS"))
    assert preflight["headers"]["access-control-allow-headers"] == cors.allow_headers
    assert parse_cors(None).allow_headers == CORS_ALLOW_HEADERS


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ALLOWED_ORIGINS": "https://*.com"}, "ALLOWED_ORIGINS: 'https://*.com': the part after"),
        ({"ALLOWED_ORIGINS": "https://a.*.example.com"}, "ALLOWED_ORIGINS: 'https://a.*.exampl"),
        ({"ALLOWED_ORIGINS": "*.example.com"}, "ALLOWED_ORIGINS: '*.example.com': a wildcard"),
        ({"ALLOWED_ORIGINS": "https://*example.com"}, "ALLOWED_ORIGINS: 'https://*example.com'"),
        ({"ALLOWED_ORIGINS": "https://a.example/app"}, "ALLOWED_ORIGINS: 'https://a.example/app'"),
        ({"ALLOWED_ORIGINS": "app.example.com"}, "ALLOWED_ORIGINS: 'app.example.com' is not an"),
        ({"CORS_ALLOW_HEADERS": "X-Ok, Bad Header"}, "CORS_ALLOW_HEADERS: 'Bad Header' is not a"),
        ({"CORS_ALLOW_HEADERS": "X-A:b"}, "CORS_ALLOW_HEADERS: 'X-A:b' is not a header name"),
    ],
)
def test_bad_configuration_names_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        IngestSettings.from_env({"TABLE_NAME": "skewgate", **env})
    assert str(info.value).startswith(message), info.value


def test_ingest_answers_wildcard_origins_and_extra_headers(
    ddb_client: Any, table_name: str
) -> None:
    settings = IngestSettings.from_env(
        {
            "TABLE_NAME": table_name,
            "ALLOWED_ORIGINS": "https://*.shop.example",
            "CORS_ALLOW_HEADERS": "Authorization,X-Vendor-Key",
        }
    )
    ingest = IngestApp(settings, Store(ddb_client, table_name, settings.retention_seconds))
    origin = "https://eu.www.shop.example"
    preflight = build_event(
        "OPTIONS",
        "/v1/traces",
        [
            ("origin", origin),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "authorization,content-type,x-vendor-key"),
        ],
        b"",
        1,
    )
    response = ingest.handle(preflight)
    assert response["statusCode"] == 204
    headers = response["headers"]
    assert headers["access-control-allow-origin"] == origin
    allowed = {h.strip().lower() for h in headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "x-vendor-key", "x-sent-at"} <= allowed

    body = json.dumps({"resourceSpans": []}).encode()
    post = build_event(
        "POST", "/v1/traces", [("origin", origin), ("content-type", "application/json"),
                                ("authorization", "Bearer t")], body, 1,
    )
    response = ingest.handle(post)
    assert response["statusCode"] == 200
    assert response["headers"]["access-control-allow-origin"] == origin
    for bad in ("https://shop.example", "https://eu.shop.example.evil"):
        preflight["headers"]["origin"] = bad
        assert ingest.handle(preflight)["statusCode"] == 403
