"""A job's card on a laptop shows the image wider than its thumbnail: Chromium picks the
preview from the srcset, and never downloads the full image to show it (issue 31)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.apps import make_settings, serve_app
from tests.support.emulators import RunningEmulator
from tests.support.jobs import wait_for_job

pytestmark = pytest.mark.browser

LAPTOP = {"width": 1280, "height": 900}


def test_a_laptops_card_downloads_the_preview_not_the_full_image(
    tmp_path: Path, emulator: RunningEmulator, browser: Any
) -> None:
    with serve_app(make_settings(tmp_path / "data", emulator)) as app:
        job = wait_for_job(
            app.client, app.client.post("/api/jobs", json={"prompt": "a kite"}).json()["id"]
        )
        image = job["images"][0]
        assert image["width"] > 1024
        context = browser.new_context(viewport=LAPTOP)
        try:
            page = context.new_page()
            asked: list[str] = []
            page.on("request", lambda request: asked.append(request.url))
            page.goto(app.url + "/", wait_until="load")
            # Lazy images load after the load event: wait until nothing is in flight.
            page.wait_for_load_state("networkidle")
            card = page.locator(f"#job-image-{image['id']} img")
            shown = card.evaluate("img => [img.currentSrc, img.getBoundingClientRect().width]")
        finally:
            context.close()
    current, width = shown
    assert width > 512, "the card is shown wider than the thumbnail"
    assert current == f"{app.url}/api/images/{image['id']}/preview"
    images = [url.removeprefix(app.url) for url in asked if "/api/images/" in url]
    assert f"/api/images/{image['id']}" not in images, images
