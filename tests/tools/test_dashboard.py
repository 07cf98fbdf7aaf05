"""``skewgate dashboard``: the local server over DynamoDB Local — its read API, its files, its
Host check, and the CLI that starts it. The page itself is tested in Chromium by
``test_dashboard_views.py``.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from typing import Any

import pytest
import support
from scenarios import ACROSS, D1, D2, EMPTY_DAY

from skewgate.aws.read import ReadApp
from skewgate.aws.store import Store
from skewgate_tools.local.server import build_event

CHROMIUM, LAUNCH_FLAGS = support.CHROMIUM, support.CHROMIUM_FLAGS


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
    assert b'<script type="module" src="/static/dashboard.js"' in body
    assert "script-src 'self'" in headers["content-security-policy"]
    for name, kind in (("dashboard.js", "text/javascript"), ("format.js", "text/javascript"),
                       ("timeline.js", "text/javascript"), ("waterfall.js", "text/javascript"),
                       ("dashboard.css", "text/css")):
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
