"""``skewgate dashboard``: a local web page of a day's sessions, a session's clock timeline and
a trace's raw ↔ corrected waterfall.

A loopback HTTP server (default http://127.0.0.1:8089) that serves one static page
(``dashboard_static/``: ``index.html``, its ES modules and stylesheet) and, under ``/v1/``,
the read API itself: the very ``ReadApp`` the
read Lambda runs, over the same ``Store`` the CLI uses. So the page needs no AWS account
against ``make run``'s DynamoDB Local, and uses the caller's credentials against a deployed
table; nothing is exposed beyond the machine (loopback only; the Host header is checked, so
another web page cannot reach it through DNS rebinding).

Example:
    >>> server = make_server(store, port=0)  # doctest: +SKIP
    >>> threading.Thread(target=server.serve_forever, daemon=True).start()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from skewgate.aws.client import is_loopback_host
from skewgate.aws.read import ReadApp
from skewgate.aws.store import Store

__all__ = ["STATIC_DIR", "make_server", "serve"]

logger = logging.getLogger("skewgate_tools.dashboard")

STATIC_DIR = Path(__file__).parent / "dashboard_static"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_SECURITY_HEADERS = {
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'"
    ),
}


class _Handler(BaseHTTPRequestHandler):
    server_version = "skewgate-dashboard"
    protocol_version = "HTTP/1.1"
    timeout = 30
    read_app: ReadApp
    allowed_hosts: frozenset[str] | None

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, content_type: str,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        for name, value in {**_SECURITY_HEADERS, **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _host_ok(self) -> bool:
        if self.allowed_hosts is None:
            return True
        return (self.headers.get("host") or "").lower() in self.allowed_hosts

    def do_GET(self) -> None:
        if not self._host_ok():
            self._send(403, b'{"message":"unexpected Host header"}', "application/json")
            return
        path = urlsplit(self.path).path
        if path in ("/", "/index.html"):
            self._static("index.html")
        elif path.startswith("/static/"):
            self._static(path.removeprefix("/static/"))
        elif path == "/favicon.ico":
            self._send(204, b"", "image/x-icon")
        elif path.startswith("/v1/"):
            self._read()
        else:
            self._send(404, b'{"message":"Not Found"}', "application/json")

    do_HEAD = do_GET

    def _not_allowed(self) -> None:
        self._send(405, b'{"message":"GET only"}', "application/json", {"allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    def _static(self, name: str) -> None:
        # Only plain files directly in the static folder: no traversal, no subfolders.
        candidates = {p.name: p for p in STATIC_DIR.iterdir() if p.is_file()}
        path = candidates.get(name)
        if path is None or path.suffix not in _TYPES:
            self._send(404, b'{"message":"Not Found"}', "application/json")
            return
        self._send(200, path.read_bytes(), _TYPES[path.suffix])

    def _read(self) -> None:
        from skewgate_tools.local.server import build_event

        event = build_event("GET", self.path, [], b"", int(time.time() * 1000))
        response = self.read_app.handle(event)
        body = (response.get("body") or "").encode()
        headers = {k: v for k, v in (response.get("headers") or {}).items()
                   if k.lower() != "content-type"}
        content_type = (response.get("headers") or {}).get("content-type", "application/json")
        self._send(int(response.get("statusCode", 200)), body, content_type, headers)


def make_server(store: Store, *, host: str = "127.0.0.1", port: int = 8089) -> ThreadingHTTPServer:
    """The dashboard's HTTP server (not started); ``port=0`` picks a free one."""
    handler = type("DashboardHandler", (_Handler,), {"read_app": ReadApp(store),
                                                       "allowed_hosts": None})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    bound = server.server_address[1]
    if is_loopback_host(host):
        names = {host, "127.0.0.1", "localhost", "[::1]"}
        handler.allowed_hosts = frozenset(f"{name}:{bound}".lower() for name in names)
    return server


def serve(store: Store, *, host: str = "127.0.0.1", port: int = 8089) -> int:
    """Run the dashboard until Ctrl-C."""
    try:
        server = make_server(store, host=host, port=port)
    except OSError as exc:
        print(f"skewgate: cannot listen on {host}:{port}: {exc}")
        return 1
    shown = f"[{host}]" if ":" in host else host
    print(f"skewgate dashboard on http://{shown}:{server.server_address[1]}/  "
          f"(table {store.table!r}; Ctrl-C stops)", flush=True)
    if not is_loopback_host(host):
        print("warning: listening beyond loopback; anyone who reaches this port reads the table",
              flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
