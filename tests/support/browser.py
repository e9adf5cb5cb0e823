"""Headless Chromium for the UI tests: Debian's own `chromium`, driven by Playwright."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Without these, Chromium keeps trying to reach Google's services, which this
# closed network refuses; the tests talk only to 127.0.0.1.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    return (
        os.environ.get("PLAYGROUND_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )


def launch_browser() -> Iterator[object]:
    path = chromium_path()
    if path is None:
        if os.environ.get("PLAYGROUND_REQUIRE_BROWSER"):
            pytest.fail("PLAYGROUND_REQUIRE_BROWSER is set but no chromium was found")
        pytest.skip("browser tests need Debian's chromium (apt install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


# --- Every page, audited and photographed ----------------------------------------

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT_DIR = ROOT / "test-artifacts" / "screenshots"
# Where the run saved its screenshots, for the closing summary (tests/conftest.py).
SCREENSHOTS_KEY = pytest.StashKey[Path]()
AXE_SCRIPT = Path(__file__).resolve().parents[1] / "vendor" / "axe-4.14.1.min.js"

WIDTHS = {"wide": 1280, "phone": 390}
THEMES = ("light", "dark")


@dataclass(frozen=True)
class Page:
    """A page of the app: a name for its screenshots, and how to find its path in a site."""

    name: str
    path: Callable[[SampleSite], str]


@dataclass(frozen=True)
class SampleSite:
    """What the audited app holds, so every kind of page has something to show."""

    completed_job_id: int
    failed_job_id: int
    grid_id: int


# Every page of the app, in one place: a page added here is screenshotted at both
# widths in both themes, audited by axe, checked at 360 px and under the strict CSP.
PAGES: tuple[Page, ...] = (
    Page("playground", lambda site: "/"),
    # Another model's form, made from its schema, with its References row.
    Page("playground-edit-model", lambda site: "/?model=seedream-4-edit"),
    Page("gallery", lambda site: "/gallery"),
    Page("gallery-search", lambda site: "/gallery?q=landscape&image_size=landscape_16_9"),
    Page("gallery-failed", lambda site: "/gallery?status=failed"),
    Page("collections", lambda site: "/collections"),
    Page("trash", lambda site: "/trash"),
    Page("usage", lambda site: "/usage"),
    Page("grids", lambda site: "/grids"),
    Page("grid-new", lambda site: "/grids/new"),
    Page("grid", lambda site: f"/grids/{site.grid_id}"),
    Page("job", lambda site: f"/jobs/{site.completed_job_id}"),
    Page("job-failed", lambda site: f"/jobs/{site.failed_job_id}"),
    Page("error", lambda site: "/no-such-page"),
    Page("sign-in", lambda site: "/sign-in"),
    Page("account", lambda site: "/account"),
    Page("admin-people", lambda site: "/admin/people"),
    Page("admin-spend", lambda site: "/admin/spend"),
    Page("admin-audit", lambda site: "/admin/audit"),
)
# The audited site has sign-in on; its pages are visited signed in as this admin.
ADMIN_NAME = "Ada"
ADMIN_PASSWORD = "correct horse battery"


def record_csp_violations(context: Any) -> None:
    """Record in `window.__csp` whatever the app's own Content-Security-Policy blocks."""
    context.add_init_script(
        "window.__csp = [];"
        "document.addEventListener('securitypolicyviolation', e =>"
        " window.__csp.push(e.violatedDirective + ' ' + (e.blockedURI || e.sample)));"
    )


def sign_in(context: Any, url: str, name: str, password: str) -> None:
    """Sign a browser context in through the sign-in page, as a person would."""
    page = context.new_page()
    page.goto(url + "/sign-in")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(url + "/")
    page.close()


def csp_violations(page: Any) -> list[str]:
    return list(page.evaluate("window.__csp || []"))


def axe_violations(page: Any, *, impacts: tuple[str, ...] = ("serious", "critical")) -> list[str]:
    """Run axe-core on the page; one line per violation of the given impacts."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE_SCRIPT.read_text())
    results = page.evaluate(
        "axe.run(document, {resultTypes: ['violations']})"
        ".then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " targets: v.nodes.slice(0, 5).map(n => n.target.join(' '))})))"
    )
    return [
        f"{v['impact']}: {v['id']} ({v['help']}) at {', '.join(v['targets'])}"
        for v in results
        if v["impact"] in impacts
    ]


def horizontal_overflow(page: Any) -> int:
    """How many pixels the page is wider than its viewport (0 when it fits)."""
    return int(
        page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    )


def wait_for_htmx(page: Any) -> None:
    page.wait_for_function("() => window.htmx !== undefined && document.readyState === 'complete'")
