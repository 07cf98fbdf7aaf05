"""``skewgate dashboard``: the local page over DynamoDB Local, its API, and headless Chromium.

The browser test drives Debian's /usr/bin/chromium through Python playwright (no `playwright
install`): load the page for a day, pick a session, check the timeline SVG and take a
screenshot; any console error fails it. Missing Chromium or playwright skips it locally and
fails it under CI (``CI`` set), where .ci/run installs them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import support
from scenarios import ACROSS, D1, D2, EMPTY_DAY, PER_SESSION

from skewgate.aws.read import ReadApp
from skewgate.aws.store import Store
from skewgate_tools.dashboard import make_server
from skewgate_tools.local.server import build_event

CHROMIUM, LAUNCH_FLAGS = support.CHROMIUM, support.CHROMIUM_FLAGS


@pytest.fixture(scope="module")
def dashboard(ddb_client: Any, seeded_table: str) -> Iterator[str]:
    server = make_server(Store(ddb_client, seeded_table), port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def fetch(url: str, *, method: str = "GET", headers: dict[str, str] | None = None
          ) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read()


def test_api_is_the_read_api(dashboard: str, ddb_client: Any, seeded_table: str) -> None:
    read = ReadApp(Store(ddb_client, seeded_table))
    for target in (f"/v1/sessions?day={D1}", f"/v1/sessions?day={EMPTY_DAY}",
                   f"/v1/stats?day={D1}", "/v1/sessions/demo-jump-3h/skew",
                   f"/v1/sessions/{ACROSS.session_id}/skew", "/v1/sessions/nobody/skew",
                   "/v1/sessions?day=bad"):
        expected = read.handle(build_event("GET", target, [], b"", 0))
        status, headers, body = fetch(dashboard + target)
        assert status == expected["statusCode"], target
        assert body.decode() == expected["body"], target
        assert headers["content-type"] == "application/json"
        assert headers["cache-control"] == "no-store"


def test_page_and_assets(dashboard: str) -> None:
    status, headers, body = fetch(dashboard + "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b'<script src="/static/dashboard.js"' in body
    assert "script-src 'self'" in headers["content-security-policy"]
    for name, kind in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        status, headers, _ = fetch(f"{dashboard}/static/{name}")
        assert status == 200 and headers["content-type"].startswith(kind)
    assert fetch(dashboard + "/favicon.ico")[0] == 204


def test_only_its_own_files_and_get(dashboard: str) -> None:
    for path in ("/static/../dashboard.py", "/static/%2e%2e/dashboard.py", "/static/nope.js",
                 "/etc/passwd", "/static/"):
        assert fetch(dashboard + path)[0] == 404, path
    status, headers, _ = fetch(dashboard + "/v1/sessions", method="POST")
    assert status == 405 and headers["allow"] == "GET, HEAD"


def test_foreign_host_header_is_refused(dashboard: str) -> None:
    """A page on another site that rebinds its name to 127.0.0.1 cannot read the table."""
    port = dashboard.rsplit(":", 1)[1]
    status, _, _ = fetch(dashboard + "/v1/sessions", headers={"Host": f"evil.example:{port}"})
    assert status == 403
    assert fetch(dashboard + "/", headers={"Host": f"localhost:{port}"})[0] == 200


def _chromium_or_skip() -> Any:
    reason = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "python playwright is not installed"
    if reason is None and not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        reason = f"no Chromium at {CHROMIUM}"
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (.ci/run installs it)")
        pytest.skip(reason)
    return sync_playwright


def test_browser_shows_a_session_timeline(dashboard: str, tmp_path: Path) -> None:
    sync_playwright = _chromium_or_skip()
    from playwright.sync_api import expect

    errors: list[str] = []
    screenshot = tmp_path / "dashboard.png"
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tempfile.mkdtemp(prefix="skewgate-chromium-", dir=tmp_path),
            executable_path=CHROMIUM,
            headless=True,
            args=LAUNCH_FLAGS,
            viewport={"width": 1400, "height": 950},
        )
        try:
            page = context.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{dashboard}/#day={D1}")
            page.wait_for_selector("#sessions tbody tr")
            rows = page.locator("#sessions tbody tr")
            assert rows.count() == 6
            assert rows.first.get_attribute("data-session") == "demo-behind-2d"
            assert "6 sessions" in page.inner_text("#stats")

            page.click("#sessions tbody tr[data-session='demo-jump-3h']")
            page.wait_for_selector("#timeline svg circle.point")
            assert page.inner_text("#detail-title") == "Clock offset of session demo-jump-3h"
            timeline = page.locator("#timeline svg")
            assert timeline.locator("circle.point").count() == PER_SESSION
            assert timeline.locator("circle.point.corrected").count() >= PER_SESSION - 1
            assert timeline.locator("line.jump-line").count() == 1
            assert timeline.locator("polygon.band").count() == 2  # one band per clock segment
            assert page.locator("#samples tbody tr").count() == PER_SESSION
            box = timeline.bounding_box()
            assert box is not None and box["width"] > 500 and box["height"] > 250
            labels = timeline.locator(".axis text").all_text_contents()
            assert "+1 h" in labels and "-1 s" in labels  # symlog with human ticks
            assert "#day=2026-01-01&session=demo-jump-3h" in page.url
            page.screenshot(path=str(screenshot), full_page=True)

            # A session across midnight, found on the next day; then an empty day.
            page.fill("#day", D2)
            page.click("#filters button")
            page.wait_for_selector(f"#sessions tbody tr[data-session='{ACROSS.session_id}']")
            page.click(f"#sessions tbody tr[data-session='{ACROSS.session_id}']")
            expect(page.locator("#timeline circle.point")).to_have_count(6)
            expect(page.locator("#detail-title")).to_contain_text(ACROSS.session_id)
            page.fill("#day", EMPTY_DAY)
            page.click("#filters button")
            page.wait_for_selector("#empty:not([hidden])")
            assert page.inner_text("#empty") == f"No sessions on {EMPTY_DAY}."
        finally:
            context.close()
    assert screenshot.stat().st_size > 30_000
    keep = os.environ.get("SKEWGATE_SCREENSHOT_DIR")
    if keep:
        shutil.copy(screenshot, Path(keep) / screenshot.name)
    assert errors == [], errors


def test_cli_starts_the_dashboard(seeded_table: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``skewgate dashboard`` binds loopback and serves until interrupted."""
    import skewgate_tools.dashboard as dashboard_module
    from skewgate_tools.cli import main

    started: dict[str, Any] = {}

    def fake_serve_forever(self: Any) -> None:
        started["address"] = self.server_address
        status, _, body = fetch(f"http://127.0.0.1:{self.server_address[1]}/v1/sessions?day={D2}")
        started["body"] = json.loads(body) if status == 200 else status
        raise KeyboardInterrupt

    monkeypatch.setattr(dashboard_module.ThreadingHTTPServer, "serve_forever",
                        fake_serve_forever)
    # serve_forever is replaced, so the request above is answered by handle_request here.
    original = fake_serve_forever

    def serve_one(self: Any) -> None:
        threading.Thread(target=self.handle_request, daemon=True).start()
        original(self)

    monkeypatch.setattr(dashboard_module.ThreadingHTTPServer, "serve_forever", serve_one)
    assert main(["--table", seeded_table, "dashboard", "--port", "0"]) == 0
    assert started["address"][0] == "127.0.0.1"
    assert started["body"]["sessions"][0]["session_id"] == ACROSS.session_id
