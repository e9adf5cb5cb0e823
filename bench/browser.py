"""What the browser pays: bytes over the wire, LCP, and click to image, in Chromium.

The app runs in demo mode (the built-in emulator, each job `job_seconds` upstream) in a
process of its own; Debian's Chromium, driven by Playwright, visits it from a fresh
profile. Bytes are what the network carried (Chrome's `encodedDataLength`: compressed
where the answer was, headers included), summed over every request until the network is
idle after the page's load event (the lazy images in view included), on a first visit and
again on a repeat visit in the same profile (what the cache spares). LCP is the browser's
own largest-contentful-paint entry. Click to image is from the Generate click to the
job's first image decoded on the page, less the job's own time upstream: what the app
adds to the wait.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.report import Report
from bench.server import serve_app_process
from tests.support.browser import CHROMIUM_ARGS, chromium_path

SECTION = "browser"
FIRST_VISIT_MAX_KB = 80.0
REPEAT_VISIT_MAX_KB = 30.0
LCP_MAX_SECONDS = 1.0
CLICK_TO_IMAGE_MAX_SECONDS = 0.5  # beyond the job's own time upstream, p50
LCP_SCRIPT = """() => new Promise(resolve => new PerformanceObserver(list => {
    const entries = list.getEntries();
    resolve(entries[entries.length - 1].startTime / 1000);
}).observe({type: "largest-contentful-paint", buffered: true}))"""


@dataclass(frozen=True)
class Visit:
    first_bytes: int
    repeat_bytes: int
    lcp_seconds: float


@dataclass(frozen=True)
class BrowserRun:
    visits: dict[str, Visit]
    job_seconds: float
    # Click to the first image decoded, each round, in seconds (the upstream's time included).
    click_to_image: list[float]

    @property
    def overhead_p50(self) -> float:
        return statistics.median(self.click_to_image) - self.job_seconds


def measure(work_dir: Path, *, job_seconds: float = 3.0, rounds: int = 3) -> BrowserRun:
    path = chromium_path()
    if path is None:
        raise RuntimeError("the browser benchmark needs Chromium (apt install chromium)")
    from playwright.sync_api import sync_playwright

    with (
        serve_app_process(
            work_dir,
            "app-browser",
            data_dir=work_dir / "data",
            api_key="",
            base_url="http://127.0.0.1:9/api/v1",
            settings={"pixeldojo_api_key": None, "demo_job_seconds": job_seconds},
        ) as app,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            clicks = _click_to_image(browser, app.url, rounds=rounds)
            # After the jobs: the gallery has their images to show.
            visits = {name: _visits(browser, app.url + page) for name, page in PAGES.items()}
        finally:
            browser.close()
    return BrowserRun(visits, job_seconds, clicks)


PAGES = {"playground": "/", "gallery": "/gallery"}


def _visits(browser: Any, url: str) -> Visit:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        session = context.new_cdp_session(page)
        session.send("Network.enable")
        carried = [0]
        session.on(
            "Network.loadingFinished",
            lambda event: carried.__setitem__(0, carried[0] + int(event["encodedDataLength"])),
        )

        def visit() -> int:
            carried[0] = 0
            page.goto(url, wait_until="load")
            # Lazy images in view load after the load event, or before it, as the machine's
            # timing falls: counted at the load event, a card's image was in one run's
            # figure and not in the next. Until the network is idle, it always is.
            page.wait_for_load_state("networkidle")
            return carried[0]

        first = visit()
        lcp = float(page.evaluate(LCP_SCRIPT))
        repeat = visit()
        return Visit(first, repeat, lcp)
    finally:
        context.close()


def _click_to_image(browser: Any, url: str, *, rounds: int) -> list[float]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    seconds: list[float] = []
    try:
        page = context.new_page()
        for number in range(rounds):
            page.goto(url + "/", wait_until="load")
            page.wait_for_function("() => window.htmx !== undefined")
            page.locator("#prompt").fill(f"a lighthouse at dusk, take {number + 1}")
            cards = page.locator(".job-card").count()
            started = time.perf_counter()
            page.get_by_role("button", name="Generate").first.click()
            page.wait_for_function(
                """count => {
                    const cards = document.querySelectorAll('.job-card');
                    if (cards.length <= count) return false;
                    const img = cards[0].querySelector('.job-images img');
                    return img !== null && img.complete && img.naturalWidth > 0;
                }""",
                arg=cards,
                timeout=60_000,
            )
            seconds.append(time.perf_counter() - started)
    finally:
        context.close()
    return seconds


def report(report: Report, run: BrowserRun) -> None:
    for name, visit in run.visits.items():
        first_kb, repeat_kb = visit.first_bytes / 1024, visit.repeat_bytes / 1024
        if name == "playground":
            report.at_most(
                SECTION, f"{name}: first visit, over the wire", first_kb, FIRST_VISIT_MAX_KB, "KB"
            )
            report.at_most(
                SECTION,
                f"{name}: repeat visit, over the wire",
                repeat_kb,
                REPEAT_VISIT_MAX_KB,
                "KB",
            )
            report.at_most(SECTION, f"{name}: LCP", visit.lcp_seconds, LCP_MAX_SECONDS, "s")
        else:
            report.info(SECTION, f"{name}: first visit, over the wire", first_kb, "KB")
            report.info(SECTION, f"{name}: repeat visit, over the wire", repeat_kb, "KB")
            report.info(SECTION, f"{name}: LCP", visit.lcp_seconds, "s")
    report.at_most(
        SECTION,
        "click to image less the job's upstream time: p50",
        run.overhead_p50,
        CLICK_TO_IMAGE_MAX_SECONDS,
        "s",
        f"{len(run.click_to_image)} jobs of {run.job_seconds:g} s upstream in demo mode; "
        f"click to image {', '.join(f'{s:.2f}' for s in run.click_to_image)} s",
    )
