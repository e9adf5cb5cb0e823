"""The playground in headless Chromium: preset → submit → image → gallery."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.presets import PRESETS_BY_SLUG
from tests.conftest import RunningEmulator, make_settings, serve_app

pytestmark = pytest.mark.browser


def test_pick_a_preset_submit_and_find_the_image_in_the_gallery(
    browser: Any, tmp_path: Path, emulator: RunningEmulator
) -> None:
    from playwright.sync_api import expect

    preset = PRESETS_BY_SLUG["food-overhead"]
    with serve_app(make_settings(tmp_path / "data", emulator)) as app:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(app.url + "/")

        page.get_by_role("link", name=preset.name).click()
        expect(page.locator("#prompt")).to_have_value(preset.prompt)
        expect(page.locator("#image_size")).to_have_value(preset.image_size)

        page.get_by_role("button", name="Generate").click()
        card = page.locator(".job-card").first
        expect(card).to_have_attribute("data-status", "completed", timeout=20_000)
        thumbnail = card.locator("img").first
        expect(thumbnail).to_be_visible()
        assert thumbnail.evaluate("img => img.complete && img.naturalWidth > 0")
        source = thumbnail.get_attribute("src")
        assert source and source.endswith("/thumbnail")

        page.get_by_role("link", name="Gallery").click()
        expect(page).to_have_url(app.url + "/gallery")
        in_gallery = page.locator(f'.gallery-item img[src="{source}"]')
        expect(in_gallery).to_be_visible()
        assert in_gallery.evaluate("img => img.naturalWidth > 0")
        assert in_gallery.get_attribute("alt", timeout=1000).startswith("overhead food")
        assert errors == []
        page.close()
