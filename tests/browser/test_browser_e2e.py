"""Real-browser end to end: headless Chromium, the OpenTelemetry JS web SDK, the local runner.

- The page (tests/browser/e2e.html + e2e.mjs, bundled once per content hash by
  tests/browser/build.mjs with esbuild) runs the real ``WebTracerProvider`` /
  ``BatchSpanProcessor`` / ``OTLPTraceExporter`` (fetch transport) and the companion module.
- It is served from a second static server on another 127.0.0.1 port, so every export is a
  cross-origin request with a real CORS preflight; the runner's ``ALLOWED_ORIGINS`` lists that
  origin (and its own, for /demo), ``INGEST_KEYS`` is set.
- The browser's clock is shifted with libfaketime (Debian ``faketime``): Chromium runs with
  ``--no-sandbox`` and ``LD_PRELOAD=libfaketime.so.1 FAKETIME=+0.8`` (or ``-3d``), which moves
  ``Date.now()`` and ``performance.timeOrigin`` alike; each test checks both against the real
  clock of this (unshifted) process before it trusts the case.
- Results are read back through ``GET /v1/sessions/{id}/skew`` and ``GET /v1/traces/{id}``.

Requires /usr/bin/chromium, libfaketime, Node.js with the root node_modules, and the Python
``playwright`` package (driving the system Chromium; no ``playwright install``). Missing pieces
skip the module locally and fail it under CI (``CI`` set), where .ci/run installs them.
"""

from __future__ import annotations

import functools
import glob
import http.server
import os
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import support
from support import REPO, get_json, local_runner, runner_env

from skewgate_tools.local.dynamodb import free_port

BROWSER_SRC = REPO / "tests" / "browser"
STATIC = REPO / "tools" / "skewgate_tools" / "local" / "static"
CHROMIUM, LAUNCH_FLAGS = support.CHROMIUM, support.CHROMIUM_FLAGS
KEY = "pk_browser_e2e"
DAY_MS = 86_400_000
MIN_CORRECTION_MS = 25.0  # the default MIN_CORRECTION_MS
#: Date.now() is whole milliseconds; the gateway's receipt time too.
CLOCK_RESOLUTION_MS = 2.0


def _missing(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why} (.ci/run installs it)")
    pytest.skip(why)


def _faketime_lib() -> str | None:
    for pattern in ("/usr/lib/*/faketime/libfaketime.so.1", "/usr/lib/faketime/libfaketime.so.1"):
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


def now_ms() -> float:
    return time.time() * 1000.0


def build_bundle(target: str, outfile: Path) -> Path:
    """esbuild through tests/browser/build.mjs; a no-op when the content hash is unchanged."""
    node = shutil.which("node")
    if node is None:
        _missing("node is not installed")
    if not (REPO / "node_modules" / "esbuild").is_dir():
        _missing("root node_modules missing: run `make venv` (npm ci)")
    subprocess.run(
        [str(node), str(BROWSER_SRC / "build.mjs"), target, str(outfile)],
        cwd=REPO, check=True, capture_output=True, timeout=120,
    )
    return outfile


# --- servers -------------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def e2e_page_server(root: Path) -> Iterator[int]:
    """The e2e page (bundle and HTML copied into ``root``) on a static server; its port."""
    build_bundle("e2e", REPO / "build" / "browser" / "e2e.js")
    shutil.copy(REPO / "build" / "browser" / "e2e.js", root / "e2e.js")
    shutil.copy(BROWSER_SRC / "e2e.html", root / "index.html")
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root))
    )
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def page_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The e2e page on its own static server: another origin than the gateway."""
    with e2e_page_server(tmp_path_factory.mktemp("browser-page")) as port:
        yield f"http://127.0.0.1:{port}"


@dataclass
class Gateway:
    url: str
    log: Path

    def log_size(self) -> int:
        return self.log.stat().st_size

    def log_since(self, offset: int) -> str:
        with self.log.open("rb") as fh:
            fh.seek(offset)
            return fh.read().decode(errors="replace")


@pytest.fixture(scope="module")
def gateway(
    dynamodb_endpoint: str, page_origin: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """The local runner allowing the page's origin (and its own, for /demo)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("runner") / "runner.log"
    env = runner_env(dynamodb_endpoint, port, "browser-e2e",
                     ALLOWED_ORIGINS=f"{page_origin},{url}", INGEST_KEYS=KEY, LOG_LEVEL="INFO")
    for name in ("LD_PRELOAD", "FAKETIME"):
        env.pop(name, None)
    with local_runner(env, port, log):
        yield Gateway(url, log)


# --- the browser ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the Python package playwright is not installed")
    if not os.access(CHROMIUM, os.X_OK):
        _missing(f"{CHROMIUM} not found (Debian package chromium)")
    with sync_playwright() as p:
        yield p


def launch(playwright: Any, shift_ms: float, user_data_dir: Path) -> Any:
    """System Chromium in a fresh profile; its clock shifted by ``shift_ms`` via libfaketime.

    libfaketime shifts CLOCK_REALTIME (``Date.now()``) and, left at its default, the monotonic
    clock by the same amount, so ``performance.timeOrigin`` (wall time at the monotonic zero) and
    every timer stay consistent. (Faking the wall clock alone, FAKETIME_DONT_FAKE_MONOTONIC=1,
    makes Chromium's timed waits crawl: 20-50 s to start.)
    """
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "FAKETIME")}
    if shift_ms:
        lib = _faketime_lib()
        if lib is None:
            _missing("libfaketime not found (Debian package faketime)")
        env["LD_PRELOAD"] = lib
        env["FAKETIME"] = f"{shift_ms / 1000:+.3f}"  # relative offset in seconds
    return playwright.chromium.launch_persistent_context(
        str(user_data_dir), executable_path=CHROMIUM, headless=True, args=LAUNCH_FLAGS,
        env=env, timeout=60_000,
    )


SHIFTS = {"synced": 0.0, "ahead-800ms": 800.0, "behind-3d": -3.0 * DAY_MS}


@pytest.fixture(scope="module", params=list(SHIFTS), ids=list(SHIFTS))
def browser(
    request: pytest.FixtureRequest, playwright: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, float]]:
    """One Chromium per clock shift, shared by that shift's cases."""
    shift = SHIFTS[request.param]
    context = launch(playwright, shift, tmp_path_factory.mktemp(f"chromium-{request.param}"))
    yield context, shift
    context.close()


def watch(page: Any) -> list[str]:
    """Console errors and uncaught exceptions of ``page``."""
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"uncaught: {e}"))
    return problems


def check_clock(page: Any, shift_ms: float) -> dict[str, float]:
    """Date.now() and performance.timeOrigin + performance.now() both read real time + shift."""
    before = now_ms()
    clocks: dict[str, float] = page.evaluate("() => window.clocks()")
    after = now_ms()
    for name, value in clocks.items():
        assert before + shift_ms - 25 <= value <= after + shift_ms + 25, (
            f"{name} is off by {value - (before + after) / 2:.1f} ms, expected {shift_ms:.1f}"
        )
    return {name: value - (before + after) / 2 for name, value in clocks.items()}


def contains(lower: float | None, upper: float | None, value: float, slack: float) -> bool:
    return (lower is None or lower - slack <= value) and (upper is None or value <= upper + slack)


# --- the cases -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["companion", "sent_at", "plain"])
def test_otel_js_in_chromium(
    browser: tuple[Any, float], mode: str, gateway: Gateway, page_origin: str
) -> None:
    context, shift = browser
    truth = -shift  # θ = server − client
    session = f"br-{mode}-{secrets.token_hex(4)}"
    page = context.new_page()
    problems = watch(page)
    try:
        page.goto(f"{page_origin}/index.html")
        page.wait_for_function("window.e2eReady === true")
        seen = check_clock(page, shift)
        log_at = gateway.log_size()
        before = now_ms()
        result = page.evaluate(
            "args => window.runCase(args)",
            {"gateway": gateway.url, "mode": mode, "key": KEY, "sessionId": session},
        )
        after = now_ms()
    finally:
        page.close()
    assert problems == []

    # The export got through CORS (the preflight itself, cached per profile and URL, is checked
    # in test_preflight_and_origin_allow_list); the clock exchange is a simple GET, never
    # preflighted, with the ingest key in its query.
    log = gateway.log_since(log_at)
    assert '"POST /v1/traces' in log
    assert '"OPTIONS /v1/clock' not in log
    if mode == "companion":
        assert '"GET /v1/clock?key=' in log

    status, doc = get_json(f"{gateway.url}/v1/sessions/{session}/skew")
    assert status == 200, doc
    (sample,) = doc["samples"]
    assert sample["span_count"] == result["spanCount"]
    assert sample["trace_ids"] == [result["traceId"]]
    lower, upper, offset = sample["lower_ms"], sample["upper_ms"], sample["offset_ms"]
    width = None if lower is None or upper is None else upper - lower
    assert contains(lower, upper, truth, CLOCK_RESOLUTION_MS), (sample, truth)
    assert sample["jump"] is False
    assert not {"implausible_sync", "no_session", "bad_sent_at"} & set(sample["flags"])
    # The policy: shifted exactly when the whole interval lies beyond ±MIN_CORRECTION_MS.
    demonstrably_wrong = (lower is not None and lower > MIN_CORRECTION_MS) or (
        upper is not None and upper < -MIN_CORRECTION_MS
    )
    assert sample["applied"] is demonstrably_wrong

    expected_method = {"companion": "ntp", "sent_at": "send_time", "plain": "causality"}[mode]
    assert sample["method"] == expected_method
    rtt = None
    if mode == "companion":
        rtt = result["exchange"]["rtt"]
        assert width is not None and width <= rtt + 20, (sample, result["exchange"])
    if shift == 0:
        assert sample["applied"] is False  # a synced clock is left alone
    elif mode in ("companion", "sent_at") or abs(shift) >= DAY_MS:
        assert sample["applied"] is True

    # The spans: stamped with the shifted clock; corrected ones moved by θ̂ back to real time.
    status, trace = get_json(f"{gateway.url}/v1/traces/{result['traceId']}")
    assert status == 200, trace
    assert len(trace["spans"]) == result["spanCount"]
    tolerance = (width or 0) + 5 if mode == "companion" else 2_000
    for span in trace["spans"]:
        raw_start = int(span["raw_start_time_unix_nano"]) / 1e6
        assert before + shift - 5 <= raw_start <= after + shift + 5, span
        shift_ns = int(span["start_time_unix_nano"]) - int(span["raw_start_time_unix_nano"])
        assert int(span["end_time_unix_nano"]) - int(span["raw_end_time_unix_nano"]) == shift_ns
        if sample["applied"]:
            assert shift_ns == round(offset * 1e6)
            corrected = int(span["start_time_unix_nano"]) / 1e6
            assert before - tolerance <= corrected <= after + tolerance, (span, before, after)
        else:
            assert shift_ns == 0
    print(
        f"\n[{mode} shift={shift:+.0f}] clock seen {seen['dateNow']:+.1f} ms (Date.now),"
        f" {seen['perfNow']:+.1f} ms (timeOrigin);"
        f" method={sample['method']} applied={sample['applied']}"
        f" interval=[{lower}, {upper}] width={width} rtt={rtt}"
        f" offset-truth={offset - truth:+.1f} ms; case {after - before:.0f} ms"
    )


def test_preflight_and_origin_allow_list(
    playwright: Any, gateway: Gateway, page_origin: str, tmp_path: Path
) -> None:
    """A fresh profile preflights; a page on an origin not in ALLOWED_ORIGINS gets nowhere."""
    context = launch(playwright, 0, tmp_path / "profile")
    try:
        page = context.new_page()
        problems = watch(page)
        page.goto(f"{page_origin}/index.html")
        page.wait_for_function("window.e2eReady === true")
        log_at = gateway.log_size()
        session = f"br-cors-{secrets.token_hex(4)}"
        page.evaluate(
            "args => window.runCase(args)",
            {"gateway": gateway.url, "mode": "sent_at", "key": KEY, "sessionId": session},
        )
        log = gateway.log_since(log_at)
        assert '"OPTIONS /v1/traces HTTP/1.1" 204' in log
        assert log.index('"OPTIONS /v1/traces') < log.index('"POST /v1/traces HTTP/1.1" 200')
        assert problems == []
        assert get_json(f"{gateway.url}/v1/sessions/{session}/skew")[0] == 200

        # Same page, other origin (localhost is not 127.0.0.1 to CORS): the preflight is refused.
        other = page_origin.replace("127.0.0.1", "localhost")
        page.goto(f"{other}/index.html")
        page.wait_for_function("window.e2eReady === true")
        log_at = gateway.log_size()
        session = f"br-denied-{secrets.token_hex(4)}"
        outcome = page.evaluate(
            """args => window.runCase(args).then(() => 'exported', e => 'failed: ' + e)""",
            {"gateway": gateway.url, "mode": "sent_at", "key": KEY, "sessionId": session},
        )
        assert outcome.startswith("failed"), outcome
        log = gateway.log_since(log_at)
        assert '"OPTIONS /v1/traces HTTP/1.1" 403' in log
        assert '"POST /v1/traces' not in log
        assert get_json(f"{gateway.url}/v1/sessions/{session}/skew")[0] == 404
    finally:
        context.close()


# --- the demo page -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_bundle() -> Path:
    return build_bundle("demo", STATIC / "demo.js")


def test_demo_page(
    playwright: Any, gateway: Gateway, demo_bundle: Path, tmp_path: Path
) -> None:
    """/demo: make spans, see the estimate; shift the page clock by −3 days, see it corrected."""
    context = launch(playwright, 0, tmp_path / "profile")
    try:
        page = context.new_page()
        page.set_viewport_size({"width": 1280, "height": 900})
        problems = watch(page)
        page.goto(f"{gateway.url}/demo?key={KEY}")
        page.wait_for_selector("body[data-ready=true]")

        page.click("#make-spans")
        first = page.locator("#samples tbody tr").first
        first.locator("td.method").wait_for(timeout=15_000)
        assert first.locator("td.method").inner_text() == "ntp"
        assert first.locator("td.applied").inner_text() == "no"
        assert page.locator("#exchange").inner_text().startswith("round trip")

        # −3 days in the same session: a clock step (a new segment). Whether this batch's spans
        # predate the step is unknowable, so the gateway may leave them alone (straddles_step).
        page.click("button[data-offset='-259200000']")
        shifted = page.evaluate("() => [Date.now(), performance.timeOrigin + performance.now()]")
        real = now_ms()
        for value in shifted:
            assert abs(value - (real - 3 * DAY_MS)) < 1_000
        page.click("#make-spans")
        rows = page.locator("#samples tbody tr")
        rows.nth(1).locator("td.method").wait_for(timeout=15_000)
        assert rows.nth(1).locator("td.jump-cell").inner_text() == "yes"
        assert "3.00 d" in rows.nth(1).locator("td.offset").inner_text()
        shots = Path(os.environ.get("SKEWGATE_SCREENSHOTS", tmp_path))
        page.screenshot(path=str(shots / "demo-step.png"), full_page=True)

        # A new session on the shifted clock: measured by round trip and corrected.
        page.click("#new-session")
        page.click("#make-spans")
        row = page.locator("#samples tbody tr").first
        row.locator("td.method").wait_for(timeout=15_000)
        page.screenshot(path=str(shots / "demo.png"), full_page=True)
        assert (shots / "demo.png").stat().st_size > 10_000
        assert page.locator("#samples tbody tr").count() == 1
        assert row.locator("td.method").inner_text() == "ntp"
        assert row.locator("td.applied").inner_text() == "yes"
        assert row.locator("td.jump-cell").inner_text() == "no"
        assert "3.00 d" in row.locator("td.offset").inner_text()
        assert page.locator("#status").get_attribute("class") != "bad"
        assert problems == []
    finally:
        context.close()
