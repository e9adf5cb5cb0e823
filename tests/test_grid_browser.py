"""A grid built in headless Chromium, as a person builds one, filling in live."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from app.emulator.faults import Fault
from tests.support.apps import make_settings, serve_app
from tests.support.browser import (
    SCREENSHOT_DIR,
    THEMES,
    axe_violations,
    csp_violations,
    horizontal_overflow,
    record_csp_violations,
    wait_for_htmx,
)
from tests.support.docs_screenshots import make_grid, photograph
from tests.support.emulators import serve_emulator
from tests.support.waiting import wait_until

pytestmark = pytest.mark.browser


def test_a_two_by_three_grid_of_presets_by_seeds_fills_in_live(
    browser: Any, tmp_path: Path
) -> None:
    with (
        serve_emulator(job_seconds=1.5) as emulator,
        serve_app(make_settings(tmp_path / "data", emulator)) as app,
    ):
        from playwright.sync_api import expect

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
        # Asked first, as try-all asks: the jobs and the cost, focus on Cancel.
        dialog = page.get_by_role("dialog", name="Make this grid?")
        expect(dialog).to_contain_text("This sends 6 jobs")
        expect(dialog).to_contain_text("Cost: 6 credits")
        expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
        assert emulator.emulator.requests_to("run") == []
        dialog.get_by_role("button", name="Make 6 jobs").click()
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


def test_the_plan_follows_every_input_and_make_waits_for_it(browser: Any, tmp_path: Path) -> None:
    """A value pasted (an input event, no key pressed) is planned again at once, and Make is
    disabled from the first change until the new plan is back."""
    from playwright.sync_api import expect

    with (
        serve_emulator(job_seconds=0.3) as emulator,
        serve_app(make_settings(tmp_path / "data", emulator)) as app,
    ):
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.goto(app.url + "/grids/new")
        wait_for_htmx(page)
        page.get_by_label("Prompt").fill("a lighthouse")
        rows = page.get_by_role("group", name=re.compile("^Rows"))
        rows.get_by_label("Rows vary").select_option("seed")
        values = rows.get_by_label(re.compile("^Values"))
        values.fill("1, 2, 3")
        plan = page.locator(".grid-plan")
        expect(plan).to_contain_text("6 jobs")
        make = page.get_by_role("button", name="Make the grid")
        expect(make).to_be_enabled()
        # A paste: the value changes with an input event and nothing else.
        disabled_at_once = values.evaluate(
            "input => { input.value = 'random 4';"
            " input.dispatchEvent(new InputEvent('input',"
            " {bubbles: true, inputType: 'insertFromPaste'}));"
            " return document.querySelector('[data-grid-make]').disabled; }"
        )
        assert disabled_at_once, "Make waits for the plan of what the form now says"
        expect(plan).to_contain_text("8 jobs")
        expect(plan).to_contain_text("8 credits")
        expect(make).to_be_enabled()
        make.click()
        dialog = page.get_by_role("dialog", name="Make this grid?")
        expect(dialog).to_contain_text("This sends 8 jobs")
        dialog.get_by_role("button", name="Cancel").click()
        expect(dialog).to_be_hidden()
        assert emulator.emulator.requests_to("run") == []
        context.close()


FIVE_BY_THREE = {
    "parameters": {"prompt": "a lighthouse at dawn"},
    "axes": [
        {"param": "seed", "values": [1, 2, 3, 4, 5]},
        {"param": "num_images", "values": [1, 2, 3]},
    ],
}


def test_a_five_column_sheet_starts_on_the_first_screen_and_fits_the_page(
    browser: Any, tmp_path: Path
) -> None:
    with (
        serve_emulator(job_seconds=0.2) as emulator,
        serve_app(make_settings(tmp_path / "data", emulator)) as app,
    ):
        grid = app.client.post("/api/grids", json=FIVE_BY_THREE).json()
        wait_until(
            lambda: app.client.get(f"/api/grids/{grid['id']}").json()["finished"], timeout=60
        )
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.goto(f"{app.url}/grids/{grid['id']}")
        wait_for_htmx(page)
        page.wait_for_function(
            "() => [...document.querySelectorAll('.grid-cell img')]"
            ".every(img => img.complete && img.naturalWidth > 0)"
        )
        first_row = page.locator(".grid-table tbody tr").first.locator(".grid-cell")
        assert first_row.count() == 5
        boxes = [first_row.nth(i).bounding_box() for i in range(5)]
        for box in boxes:
            assert box["y"] >= 0 and box["y"] + box["height"] <= 800, box
        width = page.evaluate("document.documentElement.clientWidth")
        cells = page.locator(".grid-cell")
        for i in range(cells.count()):
            box = cells.nth(i).bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= width, box
        assert horizontal_overflow(page) == 0
        # One shape for every cell of a sheet, whatever each holds; 265 px at most.
        shapes = {
            (round(b["width"]), round(b["height"]))
            for b in page.locator(".grid-cell-images").evaluate_all(
                "els => els.map(e => e.getBoundingClientRect().toJSON())"
            )
        }
        assert len(shapes) == 1 and next(iter(shapes))[0] <= 265, shapes
        # The axes' names on one line above the sheet, not stacked in its corner.
        caption = page.locator(".grid-caption")
        assert caption.inner_text() == "Rows: Images · Columns: Seed"
        line = float(caption.evaluate("c => parseFloat(getComputedStyle(c).lineHeight)"))
        assert caption.bounding_box()["height"] < 2 * line
        # The column headings stay in view as the sheet scrolls.
        page.evaluate("scrollTo(0, 300)")
        assert page.evaluate("scrollY") > 250
        heading = page.locator(".grid-table thead th").nth(1).bounding_box()
        assert 0 <= heading["y"] < 40, heading
        context.close()


def test_stopping_a_twenty_cell_grid_after_three_sends_no_cell_more(
    browser: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    with serve_emulator(job_seconds=0.3) as emulator:
        # Each submission answered after half a second: the grid is sent slowly.
        emulator.emulator.faults.add(Fault("run", kind="delay", delay_seconds=0.5, times=100))
        with serve_app(make_settings(tmp_path / "data", emulator)) as app:
            grid = app.client.post(
                "/api/grids",
                json={
                    "parameters": {"prompt": "twenty lanterns"},
                    "axes": [
                        {"param": "seed", "values": [1, 2, 3, 4, 5]},
                        {"param": "num_images", "values": [1, 2, 3, 4]},
                    ],
                },
            ).json()
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            page = context.new_page()
            page.goto(f"{app.url}/grids/{grid['id']}")
            wait_for_htmx(page)
            wait_until(lambda: len(emulator.emulator.requests_to("run")) >= 3, what="3 cells")
            page.get_by_role("button", name=re.compile("^Stop")).click()
            toast = page.locator("#toasts .toast").last
            expect(toast).to_contain_text("Stopped:")
            counted = re.search(r"\((\d+) sent before\)", toast.inner_text())
            assert counted, toast.inner_text()
            sent = int(counted.group(1))
            assert 3 <= sent <= 4, toast.inner_text()
            expect(page.locator(".grid-cell.status-stopped")).to_have_count(20 - sent)
            wait_until(
                lambda: app.client.get(f"/api/grids/{grid['id']}").json()["finished"],
                what="the cells sent to finish",
            )
            # The emulator's log: the cells sent before the stop, and not one more.
            assert len(emulator.emulator.requests_to("run")) == sent
            time.sleep(1.0)
            assert len(emulator.emulator.requests_to("run")) == sent
            expect(page.locator(".grid-progress")).to_contain_text(f"{20 - sent} stopped")

            # Undone from the toast: the stopped cells are sent after all, each once.
            toast.get_by_role("button", name="Undo").click()
            expect(page.locator(".grid-cell.status-stopped")).to_have_count(0)
            expect(page.locator(".grid-progress")).to_contain_text(
                "20 of 20 cells done", timeout=60_000
            )
            assert len(emulator.emulator.requests_to("run")) == 20
            context.close()


@pytest.mark.parametrize("theme", THEMES)
def test_the_grid_s_question_its_running_sheet_and_its_stop_pass_axe(
    browser: Any, tmp_path: Path, theme: str
) -> None:
    """The states the finished pages' audit never sees: the confirmation, cells still being
    sent with Stop offered, and the sheet stopped with its toast."""
    from playwright.sync_api import expect

    with serve_emulator(job_seconds=0.3) as emulator:
        # Each submission answered after half a second: cells are still queued when stopped.
        emulator.emulator.faults.add(Fault("run", kind="delay", delay_seconds=0.5, times=100))
        with serve_app(make_settings(tmp_path / "data", emulator)) as app:
            context = browser.new_context(
                viewport={"width": 1280, "height": 800}, color_scheme=theme
            )
            page = context.new_page()
            page.goto(app.url + "/grids/new")
            wait_for_htmx(page)
            page.get_by_label("Prompt").fill("a lighthouse")
            rows = page.get_by_role("group", name=re.compile("^Rows"))
            rows.get_by_label("Rows vary").select_option("seed")
            rows.get_by_label(re.compile("^Values")).fill("1, 2, 3, 4, 5, 6")
            expect(page.locator(".grid-plan")).to_contain_text("12 jobs")
            page.get_by_role("button", name="Make the grid").click()
            dialog = page.get_by_role("dialog", name="Make this grid?")
            expect(dialog).to_be_visible()
            assert axe_violations(page) == [], "the question"

            dialog.get_by_role("button", name="Make 12 jobs").click()
            page.wait_for_url(re.compile(r"/grids/\d+$"))
            wait_for_htmx(page)
            stop = page.get_by_role("button", name=re.compile("^Stop"))
            expect(stop).to_be_visible()
            assert axe_violations(page) == [], "the running sheet"

            stop.click()
            expect(page.locator("#toasts .toast").last).to_contain_text("Stopped:")
            expect(page.locator(".grid-cell.status-stopped").first).to_be_visible()
            assert axe_violations(page) == [], "the stopped sheet"
            context.close()
