"""CORS in a real browser: wildcard-subdomain origins and extra allowed request headers.

The e2e page (tests/browser/e2e.mjs: the real OTel JS exporter) is served on
``http://<name>.skewgate.test:<port>``; Chromium resolves every ``*.skewgate.test`` to
127.0.0.1 (``--host-resolver-rules``). The local runner allows
``ALLOWED_ORIGINS=http://*.skewgate.test:<port>`` and ``CORS_ALLOW_HEADERS=Authorization,
X-Vendor-Key``. Chromium itself decides whether each export passes its preflight.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from support import get_json, local_runner, runner_env
from test_browser_e2e import (
    CHROMIUM,
    KEY,
    LAUNCH_FLAGS,
    Gateway,
    _missing,
    e2e_page_server,
    watch,
)

from skewgate_tools.local.dynamodb import free_port

DOMAIN = "skewgate.test"


@pytest.fixture(scope="module")
def page_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with e2e_page_server(tmp_path_factory.mktemp("cors-page")) as port:
        yield port


@pytest.fixture(scope="module")
def gateway(
    dynamodb_endpoint: str, page_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    port = free_port()
    log = tmp_path_factory.mktemp("cors-runner") / "runner.log"
    env = runner_env(
        dynamodb_endpoint, port, "browser-cors",
        ALLOWED_ORIGINS=f"http://*.{DOMAIN}:{page_port}",
        CORS_ALLOW_HEADERS="Authorization, X-Vendor-Key",
        INGEST_KEYS=KEY,
    )
    with local_runner(env, port, log) as url:
        yield Gateway(url, log)


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the Python package playwright is not installed")
    if not os.access(CHROMIUM, os.X_OK):
        _missing(f"{CHROMIUM} not found (Debian package chromium)")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-cors")),
            executable_path=CHROMIUM,
            headless=True,
            args=[
                *LAUNCH_FLAGS,
                f"--host-resolver-rules=MAP *.{DOMAIN} 127.0.0.1, MAP {DOMAIN} 127.0.0.1",
            ],
            timeout=60_000,
        )
        yield context
        context.close()


def export(chromium: Any, gateway: Gateway, page: str, headers: dict[str, str]) -> tuple[str, str]:
    """Run one sent_at export from ``page``; returns its outcome and the runner's log of it."""
    tab = chromium.new_page()
    problems = watch(tab)
    try:
        tab.goto(f"{page}/index.html")
        tab.wait_for_function("window.e2eReady === true")
        log_at = gateway.log_size()
        session = f"br-cors-{secrets.token_hex(4)}"
        outcome: str = tab.evaluate(
            """args => window.runCase(args).then(() => 'exported', e => 'failed: ' + e)""",
            {"gateway": gateway.url, "mode": "sent_at", "key": KEY, "sessionId": session,
             "extraHeaders": headers},
        )
        status = get_json(f"{gateway.url}/v1/sessions/{session}/skew")[0]
    finally:
        tab.close()
    if outcome == "exported":
        assert problems == [] and status == 200, (problems, status)
    else:
        assert status == 404
    return outcome, gateway.log_since(log_at)


def test_subdomain_page_with_vendor_headers_gets_through(
    chromium: Any, gateway: Gateway, page_port: int
) -> None:
    for name in ("app", "eu.shop"):
        outcome, log = export(
            chromium, gateway, f"http://{name}.{DOMAIN}:{page_port}",
            {"Authorization": "Bearer t0ken", "X-Vendor-Key": "v1"},
        )
        assert outcome == "exported", (outcome, log)
        assert '"POST /v1/traces HTTP/1.1" 200' in log


def test_the_bare_domain_is_not_a_subdomain(
    chromium: Any, gateway: Gateway, page_port: int
) -> None:
    outcome, log = export(chromium, gateway, f"http://{DOMAIN}:{page_port}", {})
    assert outcome.startswith("failed"), outcome
    assert '"OPTIONS /v1/traces HTTP/1.1" 403' in log
    assert '"POST /v1/traces' not in log


def test_a_header_not_allowed_fails_the_preflight(
    chromium: Any, gateway: Gateway, page_port: int
) -> None:
    outcome, log = export(
        chromium, gateway, f"http://app.{DOMAIN}:{page_port}", {"X-Not-Listed": "1"}
    )
    assert outcome.startswith("failed"), outcome
    assert '"POST /v1/traces' not in log
