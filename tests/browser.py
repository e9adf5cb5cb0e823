"""Headless Chromium for the UI tests: Debian's own `chromium`, driven by Playwright."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.conftest import chromium_path

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
