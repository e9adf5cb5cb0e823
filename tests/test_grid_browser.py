"""A grid built in headless Chromium, as a person builds one, filling in live."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.browser import SCREENSHOT_DIR, csp_violations, record_csp_violations, wait_for_htmx
from tests.conftest import make_settings, serve_app, serve_emulator
from tests.docs_screenshots import make_grid, photograph

pytestmark = pytest.mark.browser


def test_a_two_by_three_grid_of_presets_by_seeds_fills_in_live(
    browser: Any, tmp_path: Path
) -> None:
    with (
        serve_emulator(job_seconds=1.5) as emulator,
        serve_app(make_settings(tmp_path / "data", emulator)) as app,
    ):
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        record_csp_violations(context)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(app.url + "/grids/new")
        wait_for_htmx(page)

        page.get_by_label("Prompt").fill("a lighthouse at dawn")
        columns = page.get_by_role("group", name=re.compile("^Columns"))
        columns.get_by_label("Columns vary").select_option("preset")
        for box in columns.get_by_role("checkbox").all():
            box.uncheck()
        columns.get_by_label("Cyberpunk street").check()
        columns.get_by_label("Food overhead").check()
        rows = page.get_by_role("group", name=re.compile("^Rows"))
        rows.get_by_label("Rows vary").select_option("seed")
        rows.get_by_label(re.compile("^Values")).fill("1, 2, 3")
        rows.get_by_label(re.compile("^Values")).press("Tab")
        # The count and the cost, before anything is sent.
        plan = page.locator(".grid-plan")
        plan.filter(has_text="6 jobs").wait_for()
        assert "6 credits" in plan.inner_text()
        assert emulator.emulator.requests_to("run") == []

        page.get_by_role("button", name="Make the grid").click()
        page.wait_for_url(re.compile(r"/grids/\d+$"))
        wait_for_htmx(page)
        # The page came up before the jobs finished: what follows arrives live.
        assert page.locator(".grid-cell[data-running]").count() > 0
        headers = page.locator(".grid-table thead th").all_inner_texts()
        assert headers[1:] == ["Cyberpunk street", "Food overhead"]
        assert page.locator(".grid-table tbody th").all_inner_texts() == ["1", "2", "3"]
        page.wait_for_function(
            "() => document.querySelectorAll('.grid-cell[data-status=completed] img').length === 6"
            " && [...document.querySelectorAll('.grid-cell img')]"
            ".every(img => img.complete && img.naturalWidth > 0)",
            timeout=30_000,
        )
        assert "6 of 6 cells done" in page.locator(".grid-progress").inner_text()
        assert len(emulator.emulator.requests_to("run")) == 6
        assert errors == [] and csp_violations(page) == []
        context.close()


def test_the_readme_pictures_of_a_grid_are_made_by_a_script(browser: Any, tmp_path: Path) -> None:
    with (
        serve_emulator(job_seconds=0.3) as emulator,
        serve_app(make_settings(tmp_path / "data", emulator)) as app,
    ):
        saved = photograph(browser, app, make_grid(app), SCREENSHOT_DIR)
    for path in saved:
        assert path.stat().st_size > 20_000, path
