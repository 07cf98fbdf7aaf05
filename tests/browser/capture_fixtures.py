"""Record real OpenTelemetry JS exports into tests/fixtures/otel-js/ (``make fixtures``).

Runs the real OTel JS web SDK (tests/browser/capture.mjs, bundled by build.mjs with the
versions in package.json) in Debian's headless Chromium, driven by Python playwright against
the system binary, exporting cross-origin to a plain OTLP/HTTP receiver on 127.0.0.1 (it
answers preflights and ``200 {}``, nothing else). Two cases, four exports each:

- ``export-1.json`` … ``export-4.json``: Chromium's clock 800 ms ahead (libfaketime
  ``FAKETIME=+0.800``: ``Date.now()`` and ``performance.timeOrigin`` alike), ``X-Sent-At``
  from an async ``headers`` function, session ``6f1c2d9a-browser-session``;
- ``export-5.json`` … ``export-8.json``: clock in sync, no custom header, session
  ``0b7e44c1-plain-session``.

Each file: ``received_at_ms`` (the receiver's clock when the request arrived, before its body),
the request headers that matter (``user-agent``, ``content-type``, ``x-sent-at``, ``origin``)
and the JSON body exactly as the SDK sent it. Before writing, every case checks the browser's
clock against this process's and every export's shape; nothing is written when one fails.

Usage:
    .venv/bin/python tests/browser/capture_fixtures.py [OUTDIR]   # default tests/fixtures/otel-js
"""

from __future__ import annotations

import functools
import glob
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))
import support  # noqa: E402  (tests/support.py: Chromium's path and flags)

OUT = REPO / "tests" / "fixtures" / "otel-js"
KEPT_HEADERS = ("user-agent", "content-type", "x-sent-at", "origin")
UNITS = 4
SPANS_PER_EXPORT = 3


@dataclass(frozen=True)
class Case:
    mode: str
    session_id: str
    shift_ms: float
    first: int


CASES = (
    Case("header", "6f1c2d9a-browser-session", 800.0, 1),
    Case("plain", "0b7e44c1-plain-session", 0.0, 5),
)


class CaptureError(RuntimeError):
    """A missing tool or an export that is not what the fixtures promise."""


def faketime_lib() -> str | None:
    for pattern in ("/usr/lib/*/faketime/libfaketime.so.1", "/usr/lib/faketime/libfaketime.so.1"):
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


# --- the receiver and the page's server ------------------------------------------------------


class _Receiver(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    exports: list[dict[str, Any]]

    def _cors(self) -> None:
        self.send_header("access-control-allow-origin", self.headers.get("origin", "*"))
        self.send_header("vary", "Origin")

    def do_OPTIONS(self) -> None:
        self.send_response(204)
        self._cors()
        self.send_header("access-control-allow-methods", "POST, OPTIONS")
        self.send_header("access-control-allow-headers", "Content-Type, X-Sent-At")
        self.send_header("content-length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        received_at_ms = round(time.time() * 1000.0, 3)  # before the body, like the gateway
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        headers = {k.lower(): v for k, v in self.headers.items() if k.lower() in KEPT_HEADERS}
        self.exports.append(
            {"received_at_ms": received_at_ms, "headers": headers, "body": json.loads(body)}
        )
        self.send_response(200)
        self._cors()
        self.send_header("content-type", "application/json")
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve(handler: Any) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def build_page(root: Path) -> None:
    node = shutil.which("node")
    if node is None or not (REPO / "node_modules" / "esbuild").is_dir():
        raise CaptureError("node and the root node_modules are needed: run `make venv`")
    bundle = REPO / "build" / "browser" / "capture.js"
    subprocess.run(
        [node, str(HERE / "build.mjs"), "capture", str(bundle)],
        cwd=REPO, check=True, capture_output=True, timeout=120,
    )
    shutil.copy(bundle, root / "capture.js")
    (root / "index.html").write_text(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<link rel="icon" href="data:,"><title>skewgate fixture capture</title>'
        '<script src="capture.js"></script></head><body></body></html>\n'
    )


# --- the browser -----------------------------------------------------------------------------


def run_case(playwright: Any, case: Case, page_url: str, receiver: str, profile: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "FAKETIME")}
    if case.shift_ms:
        lib = faketime_lib()
        if lib is None:
            raise CaptureError("libfaketime not found (Debian package faketime)")
        env["LD_PRELOAD"] = lib
        env["FAKETIME"] = f"{case.shift_ms / 1000:+.3f}"
    context = playwright.chromium.launch_persistent_context(
        str(profile), executable_path=support.CHROMIUM, headless=True,
        args=support.CHROMIUM_FLAGS, env=env, timeout=60_000,
    )
    try:
        page = context.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"uncaught: {e}"))
        page.goto(page_url)
        page.wait_for_function("window.captureReady === true")
        before = time.time() * 1000.0
        clocks: dict[str, float] = page.evaluate("() => window.clocks()")
        after = time.time() * 1000.0
        for name, value in clocks.items():  # read between `before` and `after`, shifted
            if not before + case.shift_ms - 25 <= value <= after + case.shift_ms + 25:
                seen = value - (before + after) / 2
                raise CaptureError(f"{case.mode}: the browser's {name} is off by {seen:+.1f} ms, "
                                   f"not {case.shift_ms:+.1f}")
        page.evaluate(
            "args => window.capture(args)",
            {"receiver": receiver, "mode": case.mode, "sessionId": case.session_id,
             "units": UNITS},
        )
        if problems:
            raise CaptureError(f"{case.mode}: console errors: {problems}")
    finally:
        context.close()


def check(case: Case, exports: list[dict[str, Any]]) -> None:
    """The promises tests/fixtures/otel-js/README.md makes about each file."""
    if len(exports) != UNITS:
        raise CaptureError(f"{case.mode}: {len(exports)} exports, expected {UNITS}")
    for export in exports:
        headers, body = export["headers"], export["body"]
        spans = [s for rs in body["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
        if len(spans) != SPANS_PER_EXPORT or len({s["traceId"] for s in spans}) != 1:
            raise CaptureError(f"{case.mode}: expected one trace of {SPANS_PER_EXPORT} spans")
        if not headers.get("content-type", "").startswith("application/json"):
            raise CaptureError(f"{case.mode}: content-type {headers.get('content-type')!r}")
        if "origin" not in headers:
            raise CaptureError(f"{case.mode}: not a cross-origin export (no Origin)")
        if case.mode == "header":
            ahead = float(headers["x-sent-at"]) - export["received_at_ms"]
            if not case.shift_ms - 200 < ahead <= case.shift_ms + 5:
                raise CaptureError(f"header: X-Sent-At is {ahead:+.1f} ms from the receipt")
        elif "x-sent-at" in headers:
            raise CaptureError("plain: an X-Sent-At header")
        end = max(int(s["endTimeUnixNano"]) for s in spans) / 1e6
        if not 0 <= export["received_at_ms"] + case.shift_ms - end < 2_000:
            raise CaptureError(f"{case.mode}: spans did not end just before they were sent")


def capture(out: Path) -> list[Path]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise CaptureError("the Python package playwright is missing: run `make venv`") from None
    if not os.access(support.CHROMIUM, os.X_OK):
        raise CaptureError(f"{support.CHROMIUM} not found (Debian package chromium)")
    files: dict[Path, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="skewgate-capture-") as tmp:
        root = Path(tmp) / "page"
        root.mkdir()
        build_page(root)
        page_server = functools.partial(_Quiet, directory=str(root))
        with serve(page_server) as origin, sync_playwright() as playwright:
            for case in CASES:
                exports: list[dict[str, Any]] = []
                receiver = type("Receiver", (_Receiver,), {"exports": exports})
                with serve(receiver) as receiver_url:
                    run_case(playwright, case, f"{origin}/index.html", receiver_url,
                             Path(tmp) / f"profile-{case.mode}")
                check(case, exports)
                for i, export in enumerate(exports):
                    files[out / f"export-{case.first + i}.json"] = export
    out.mkdir(parents=True, exist_ok=True)
    for path, export in files.items():
        path.write_text(json.dumps(export, indent=1, ensure_ascii=False) + "\n")
    return list(files)


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else OUT
    try:
        written = capture(out)
    except CaptureError as exc:
        print(f"capture_fixtures: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
