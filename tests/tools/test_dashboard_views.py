"""The dashboard's views in headless Chromium at 1280×800, over the seeded DynamoDB Local table.

Debian's /usr/bin/chromium driven by Python playwright (no ``playwright install``). Every view
is measured in the DOM — no table wider than its panel, every column's cells inside it and
showing all their text, nothing wider than the window, the waterfall's bars, labels and ticks
inside their lanes, the timeline's labels inside the picture — and photographed (full page)
into the test's tmp dir, and into $SKEWGATE_SCREENSHOT_DIR when set. A console error fails
the test. Missing Chromium or playwright skips locally and fails under CI (``CI`` set).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import support
from scenarios import ACROSS, D1, D2, EMPTY_DAY, PER_SESSION
from views_data import (
    DEEP_NAMES,
    LATE_NAME,
    LONG_SESSION,
    MANY_TRACES,
    STRESS_DAY,
    UUID_SESSION,
    deep_trace_id,
)

from skewgate.aws.ingest import IngestApp
from skewgate.aws.settings import IngestSettings
from skewgate.aws.store import Store
from skewgate_tools.demo import Scenario, scenario_events

WIDTH, HEIGHT = 1280, 800
REFRESH_DAY = "2026-01-07"
REFRESH_START = 1_767_780_000_000  # 2026-01-07T10:00:00Z

# Everything that would be cut off or hidden, as sentences (empty: the view fits).
FIT_PROBLEMS = r"""
() => {
  const problems = [];
  const inside = (r, box, slack = 1) => r.left >= box.left - slack && r.right <= box.right + slack;
  const visible = (node) => node.getClientRects().length > 0;
  const clips = (node) => getComputedStyle(node).overflowX !== "visible";
  if (document.documentElement.scrollWidth > window.innerWidth) {
    problems.push(`page scrolls sideways: ${document.documentElement.scrollWidth}`);
  }
  for (const table of document.querySelectorAll("main table")) {
    if (!visible(table)) continue;
    const wrap = table.closest(".table-wrap");
    const panel = table.closest(".panel").getBoundingClientRect();
    const box = wrap.getBoundingClientRect();
    if (wrap.scrollWidth > wrap.clientWidth) {
      problems.push(`#${table.id} scrolls: ${wrap.scrollWidth} > ${wrap.clientWidth}`);
    }
    if (!inside(table.getBoundingClientRect(), panel)) {
      problems.push(`#${table.id} leaves its panel`);
    }
    const columns = table.tHead.rows[0].cells.length;
    for (const row of table.rows) {
      const cells = [...row.cells].filter(visible);
      if (cells.length !== columns) {
        problems.push(`#${table.id} row ${row.rowIndex}: ${cells.length} of ${columns} columns`);
      }
      for (const cell of cells) {
        const r = cell.getBoundingClientRect();
        const text = cell.textContent.slice(0, 40);
        const what = `#${table.id} row ${row.rowIndex} col ${cell.cellIndex} "${text}"`;
        if (r.width < 4 || !inside(r, box)) problems.push(`${what}: outside the table's box`);
        if (cell.scrollWidth > cell.clientWidth + 1) problems.push(`${what}: text overflows`);
        for (const part of cell.querySelectorAll("*")) {
          if (!visible(part)) continue;
          if (!inside(part.getBoundingClientRect(), r)) {
            problems.push(`${what}: "${part.textContent.slice(0, 30)}" sticks out`);
          }
          if (part.scrollWidth > part.clientWidth + 1 && clips(part)) {
            problems.push(`${what}: "${part.textContent.slice(0, 30)}" cut off`);
          }
        }
      }
    }
  }
  const waterfall = document.querySelector("#waterfall");
  if (waterfall && visible(waterfall)) {
    const box = waterfall.getBoundingClientRect();
    if (waterfall.scrollWidth > waterfall.clientWidth) problems.push("waterfall scrolls");
    for (const lane of waterfall.querySelectorAll(".wf-lane, .wf-axis")) {
      const r = lane.getBoundingClientRect();
      if (!inside(r, box)) problems.push("a waterfall lane leaves the waterfall");
      for (const part of lane.querySelectorAll(".wf-bar, .wf-dur, .wf-tick")) {
        if (!inside(part.getBoundingClientRect(), r, 2)) {
          problems.push(`waterfall ${part.className} "${part.textContent}" leaves its lane`);
        }
      }
    }
    for (const name of waterfall.querySelectorAll(".wf-name")) {
      if (name.scrollWidth > name.clientWidth + 1) {
        problems.push(`span name "${name.textContent}" clipped`);
      }
    }
  }
  const svg = document.querySelector("#timeline svg");
  if (svg && visible(svg)) {
    const box = svg.getBoundingClientRect();
    for (const text of svg.querySelectorAll("text")) {
      if (!inside(text.getBoundingClientRect(), box)) {
        problems.push(`timeline label "${text.textContent}" clipped`);
      }
    }
  }
  return problems;
}
"""


def _playwright_or_skip() -> Any:
    reason = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "python playwright is not installed"
    if reason is None and not (os.path.exists(support.CHROMIUM) or shutil.which(support.CHROMIUM)):
        reason = f"no Chromium at {support.CHROMIUM}"
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (.ci/run installs it)")
        pytest.skip(reason)
    return sync_playwright


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    sync_playwright = _playwright_or_skip()
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tempfile.mkdtemp(prefix="skewgate-chromium-", dir=tmp_path_factory.mktemp("chromium")),
            executable_path=support.CHROMIUM,
            headless=True,
            args=support.CHROMIUM_FLAGS,
            viewport={"width": WIDTH, "height": HEIGHT},
        )
        try:
            yield context
        finally:
            context.close()


class View:
    """One page of the dashboard: console errors collected, fit checks, screenshots."""

    def __init__(self, page: Any, base: str, shots: Path) -> None:
        self.page, self.base, self.shots = page, base, shots
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self, hash_: str) -> None:
        """Load the page afresh at ``#hash_`` (a hash change alone would keep the old view up
        while the new one loads, and a wait for it would return at once)."""
        self.page.goto("about:blank")
        self.page.goto(f"{self.base}/#{hash_}")

    def fits(self, name: str) -> None:
        """Screenshot ``name``.png, then fail on anything clipped."""
        self.page.wait_for_timeout(100)  # let the layout settle after the last render
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        keep = os.environ.get("SKEWGATE_SCREENSHOT_DIR")
        if keep:
            shutil.copy(path, Path(keep) / path.name)
        assert path.stat().st_size > 20_000
        problems = self.page.evaluate(FIT_PROBLEMS)
        assert problems == [], f"{name}: {problems}"

    def texts(self, selector: str) -> list[str]:
        return [t.strip() for t in self.page.locator(selector).all_text_contents()]


@pytest.fixture
def view(browser: Any, dashboard: str, tmp_path: Path) -> Iterator[View]:
    page = browser.new_page()
    v = View(page, dashboard, tmp_path)
    try:
        yield v
    finally:
        page.close()
    assert v.errors == [], v.errors


def test_day_list_and_session_fit_1280(view: View) -> None:
    page = view.page
    view.open(f"day={D1}")
    page.wait_for_selector("#sessions tbody tr")
    rows = page.locator("#sessions tbody tr")
    assert rows.count() == 6
    assert rows.first.get_attribute("data-session") == "demo-behind-2d"
    assert "6 sessions" in page.inner_text("#stats")
    headers = view.texts("#sessions thead th")
    assert headers[-2:] == ["first batch", "last batch"]  # the columns 1400 px used to cut
    assert rows.first.locator("td").last.inner_text() == "09:03:30.000"
    assert page.locator("#detail").is_hidden() and page.locator("#trace").is_hidden()
    view.fits("day")

    page.click("#sessions tbody tr[data-session='demo-jump-3h']")
    page.wait_for_selector("#timeline svg circle.point")
    assert page.inner_text("#detail-title") == "Clock offset of session demo-jump-3h"
    timeline = page.locator("#timeline svg")
    assert timeline.locator("circle.point").count() == PER_SESSION
    assert timeline.locator("circle.point.corrected").count() >= PER_SESSION - 1
    assert timeline.locator("line.jump-line").count() == 1
    assert timeline.locator("polygon.band").count() == 2  # one band per clock segment
    assert timeline.locator("line.interval").count() == 0  # no per-sample strokes: no seams
    assert timeline.locator("polyline.edge.hard").count() == 2  # the upper sides
    assert timeline.locator("polyline.edge.assumed").count() == 2  # MAX_UPLOAD_DELAY_MS below
    labels = view.texts("#timeline .axis text")
    assert "+1 h" in labels and "-1 s" in labels and "0" in labels  # symlog, human ticks
    assert "#day=2026-01-01&session=demo-jump-3h" in page.url
    samples = page.locator("#samples tbody tr")
    assert samples.count() == PER_SESSION
    assert view.texts("#samples thead th")[-2:] == ["flags", "traces"]
    assert samples.nth(6).locator("td").nth(9).inner_text() == "jump"
    assert page.locator("#samples a.trace-link").count() == PER_SESSION
    assert page.locator("#samples tbody tr").first.locator(".bound.assumed").count() == 1
    assert not page.locator("#legend li[data-kind='assumed']").is_hidden()
    view.fits("session-jump")


def test_a_two_day_offset_reads_as_two_days(view: View) -> None:
    page = view.page
    view.open(f"day={D1}&session=demo-behind-2d")
    page.wait_for_selector("#timeline svg circle.point")
    labels = view.texts("#timeline .axis text.ytick")
    assert "+2 d" in labels and "0" in labels, labels
    assert not any("θ −" in t or "θ -" in t for t in view.texts("#timeline .axis text"))
    zero = float(page.locator("#timeline line.zero").get_attribute("y1") or "nan")
    for point in page.locator("#timeline circle.point").all():
        assert zero - float(point.get_attribute("cy") or "nan") > 150  # far above "in sync"
    view.fits("session-behind-2d")


def test_sample_to_trace_drill_down_raw_and_corrected(view: View) -> None:
    page = view.page
    view.open(f"day={D1}&session=demo-jump-3h")
    page.wait_for_selector("#samples a.trace-link")
    link = page.locator("#samples tbody tr").last.locator("a.trace-link")
    trace = link.get_attribute("data-trace")
    assert trace and link.inner_text() == f"{trace[:8]}…"
    assert link.get_attribute("title") == f"trace {trace}: open its waterfall"
    link.click()
    page.wait_for_selector("#waterfall .wf-bar")
    assert page.inner_text("#trace-title") == f"Trace {trace}"
    assert f"trace={trace}" in page.url
    assert "corrected = raw +3.00 h" in page.inner_text("#trace-summary")
    assert "spans shifted by +3.00 h" in page.inner_text("#trace-batches")
    assert page.locator("#samples tbody tr.selected").count() == 1
    assert page.locator("#timeline circle.point.selected").count() == 1

    # Side by side: the same bars on two absolute axes three hours apart.
    pressed = page.locator("#trace-view button[aria-pressed='true']")
    assert pressed.get_attribute("data-view") == "both"
    raw = page.locator("#waterfall .wf-bar.raw")
    fixed = page.locator("#waterfall .wf-bar.corrected")
    assert raw.count() == fixed.count() == 3
    raw_ticks = view.texts("#waterfall .wf-axis.raw .wf-tick")
    fixed_ticks = view.texts("#waterfall .wf-axis.corrected .wf-tick")
    assert raw_ticks and all(t.startswith("06:03:") for t in raw_ticks), raw_ticks
    assert fixed_ticks and all(t.startswith("09:03:") for t in fixed_ticks), fixed_ticks
    for r, c in zip(raw.all(), fixed.all(), strict=True):
        rb, cb = r.bounding_box(), c.bounding_box()
        assert rb and cb and abs(rb["width"] - cb["width"]) < 1.5  # one constant shift
    names = view.texts("#waterfall .wf-name")
    assert names == ["page-load", "fetch /api/1", "fetch /api/2"]
    indents = [page.locator("#waterfall .wf-name").nth(i).evaluate(
        "e => parseFloat(getComputedStyle(e).paddingLeft)") for i in range(3)]
    assert indents[0] < indents[1] == indents[2]  # children nested under the root
    assert page.locator("#waterfall .wf-receipt").count() == 1
    spans = page.locator("#spans tbody tr")
    assert spans.count() == 3
    first = [t.strip() for t in spans.first.locator("td").all_text_contents()]
    assert first[2].startswith("06:03:29.") and first[4].startswith("09:03:29.")
    assert first[6] == "+3.00 h"
    view.fits("trace-both")

    page.click("#trace-view button[data-view='raw']")
    page.wait_for_selector("#waterfall .wf-raw")
    assert page.locator("#waterfall .wf-bar.corrected").count() == 0
    assert page.locator("#waterfall .wf-bar.raw").count() == 3
    assert "view=raw" in page.url
    view.fits("trace-raw")
    page.click("#trace-view button[data-view='corrected']")
    page.wait_for_selector("#waterfall .wf-corrected")
    assert page.locator("#waterfall .wf-bar.raw").count() == 0
    assert all(t.startswith("09:03:") for t in view.texts("#waterfall .wf-tick"))
    view.fits("trace-corrected")
    page.go_back()  # the toggle is history too
    page.wait_for_selector("#waterfall .wf-raw")


def test_timeline_point_opens_its_trace(view: View) -> None:
    page = view.page
    view.open(f"day={D2}&session={ACROSS.session_id}")
    page.wait_for_selector("#timeline circle.point.pickable")
    page.locator("#timeline circle.point").nth(4).click()
    page.wait_for_selector("#waterfall .wf-bar")
    trace = page.locator("#samples tbody tr").nth(4).locator("a.trace-link").get_attribute(
        "data-trace")
    assert page.inner_text("#trace-title") == f"Trace {trace}"
    assert "01-02" in view.texts("#timeline .axis text.xdate")  # the day it crosses into
    received = page.locator("#samples tbody tr").first.locator("td").nth(1).inner_text()
    assert received == "2026-01-01 23:58:30.000"
    view.fits("across-midnight")


def test_hard_cases_fit(view: View) -> None:
    """A UUID and a 150-character session id, long flags, five traces in a batch, a trace six
    deep with URL-long span names."""
    page = view.page
    view.open(f"day={STRESS_DAY}")
    page.wait_for_selector("#sessions tbody tr")
    long_row = page.locator(f"#sessions tbody tr[data-session='{LONG_SESSION}']")
    sid = long_row.locator("a.sid")
    assert sid.get_attribute("title") == LONG_SESSION and "…" in sid.inner_text()
    view.fits("hard-day")

    view.open(f"day={STRESS_DAY}&session={UUID_SESSION}&trace={deep_trace_id()}")
    page.wait_for_selector("#waterfall .wf-bar")
    flags = view.texts("#samples .chip")
    assert "inconsistent_send_time" in flags and "implausible_sync" in flags
    assert page.locator("#samples tbody tr").last.locator("a.trace-link").count() == MANY_TRACES
    names = view.texts("#waterfall .wf-name")
    assert names == [*DEEP_NAMES, LATE_NAME]  # whole, wrapped; the beacon after the subtree
    indents = [page.locator("#waterfall .wf-name").nth(i).evaluate(
        "e => parseFloat(getComputedStyle(e).paddingLeft)") for i in range(len(names))]
    deep = indents[:len(DEEP_NAMES)]
    assert deep == sorted(deep) and len(set(deep)) == len(DEEP_NAMES)
    assert indents[-1] == indents[1]  # a child of the root, like the first fetch
    # Two batches: one shifted, one left alone (causality cannot prove 800 ms).
    assert "shifted per batch: -760 ms, 0 ms" in page.inner_text("#trace-summary")
    batches = view.texts("#trace-batches li")
    assert len(batches) == 2
    assert batches[0].endswith("spans shifted by -760 ms")
    assert batches[1].endswith("spans left alone")
    assert page.locator("#waterfall .wf-bar.corrected:not(.shifted)").count() == 1
    assert page.locator("#waterfall .wf-receipt").count() == 2
    view.fits("hard-trace")

    view.open(f"day={STRESS_DAY}&session={LONG_SESSION}")
    page.wait_for_selector("#timeline svg circle.point")
    assert page.locator("#timeline line.bar.assumed").count() == 1  # one sample, causality
    assert page.locator("#timeline line.cap.hard").count() == 1
    view.fits("hard-long-session")


def test_day_picker_and_refresh(view: View, ddb_client: Any, seeded_table: str) -> None:
    from playwright.sync_api import expect

    page = view.page
    view.open(f"day={D1}&session=demo-jump-3h")
    page.wait_for_selector("#sessions tbody tr")
    page.click("#next-day")
    page.wait_for_selector(f"#sessions tbody tr[data-session='{ACROSS.session_id}']")
    assert page.input_value("#day") == D2 and f"day={D2}" in page.url
    assert page.locator("#detail").is_visible()  # a session's history is not one day's
    page.click("#prev-day")
    expect(page.locator("#day")).to_have_value(D1)
    page.wait_for_selector("#sessions tbody tr[data-session='demo-behind-2d']")
    page.click("#prev-day")
    expect(page.locator("#empty")).to_have_text(f"No sessions on {EMPTY_DAY}.")
    page.fill("#day", REFRESH_DAY)
    page.dispatch_event("#day", "change")
    expect(page.locator("#empty")).to_have_text(f"No sessions on {REFRESH_DAY}.")

    # A browser reports while the page is open: Refresh shows it, then the auto refresh does.
    ingest = IngestApp(IngestSettings.from_env({"TABLE_NAME": seeded_table}),
                       Store(ddb_client, seeded_table))
    events = scenario_events(Scenario("demo-late-800ms", lambda i: 800.0),
                             start_ms=REFRESH_START, count=2)
    assert ingest.handle(events[0])["statusCode"] == 200
    time.sleep(1.5)  # the ByDay index is eventually consistent
    page.click("#refresh")
    page.wait_for_selector("#sessions tbody tr[data-session='demo-late-800ms']")
    assert re.fullmatch(r"updated \d{2}:\d{2}:\d{2} UTC", page.inner_text("#updated"))
    assert f"day={REFRESH_DAY}" in page.url  # the day stays picked
    page.click("#sessions tbody tr[data-session='demo-late-800ms']")
    expect(page.locator("#detail-title")).to_have_text("Clock offset of session demo-late-800ms")
    expect(page.locator("#samples tbody tr")).to_have_count(1)
    page.select_option("#auto-refresh", "10")
    assert ingest.handle(events[1])["statusCode"] == 200
    expect(page.locator("#samples tbody tr")).to_have_count(2, timeout=20_000)
    assert "1 session" in page.inner_text("#list-title")
    page.select_option("#auto-refresh", "0")
    view.fits("refreshed")


def test_open_a_trace_by_id(view: View) -> None:
    page = view.page
    view.open(f"day={STRESS_DAY}")
    page.wait_for_selector("#sessions tbody tr")
    page.fill("#trace-input", deep_trace_id().upper())
    page.click("#open-trace button")
    page.wait_for_selector("#waterfall .wf-bar")
    assert page.locator("#detail").is_hidden()
    page.click("#trace-summary a")  # its session
    page.wait_for_selector("#timeline svg circle.point")
    assert UUID_SESSION in page.inner_text("#detail-title")
    page.fill("#trace-input", "nope")
    page.click("#open-trace button")
    page.wait_for_selector("#error:not([hidden])")
    assert "32 hex digits" in page.inner_text("#error")


def test_the_fit_check_catches_clipping(view: View) -> None:
    """The measurements above have teeth: the old page's faults, put back by hand, fail them."""
    page = view.page
    view.open(f"day={D1}&session=demo-jump-3h")
    page.wait_for_selector("#samples tbody tr")
    assert page.evaluate(FIT_PROBLEMS) == []
    # A table wider than its panel (the old 1400 px layout: no wrapping, nowhere to go).
    page.evaluate("() => { document.querySelector('#samples').style.minWidth = '1400px'; }")
    assert any("#samples scrolls" in p for p in page.evaluate(FIT_PROBLEMS))
    page.evaluate("() => { document.querySelector('#samples').style.minWidth = ''; }")
    # A cell cut with an ellipsis.
    page.evaluate("""() => {
      const id = document.querySelector('#sessions tbody td.sid a');
      Object.assign(id.style, { display: 'inline-block', width: '40px', overflow: 'hidden',
                                textOverflow: 'ellipsis', whiteSpace: 'nowrap' });
    }""")
    assert any("cut off" in p for p in page.evaluate(FIT_PROBLEMS))
    page.evaluate("""() => {
      const table = document.querySelector('#samples');
      table.style.tableLayout = 'fixed';  // the header's widths, whatever the cells hold
      table.tHead.rows[0].cells[1].style.width = '40px';
      const cell = table.tBodies[0].rows[0].cells[1];
      Object.assign(cell.style, { whiteSpace: 'nowrap', overflow: 'hidden' });
    }""")
    assert any("text overflows" in p for p in page.evaluate(FIT_PROBLEMS))
    page.reload()
    page.wait_for_selector("#samples tbody tr")
    # A hidden column.
    page.evaluate("""() => {
      const rows = document.querySelector('#samples').rows;
      for (const row of rows) row.lastElementChild.style.display = 'none';
    }""")
    assert any("columns" in p for p in page.evaluate(FIT_PROBLEMS))
