"""The gallery's first screen in headless Chromium: tiles at once under a one-row header, each
image at its own shape, controls that appear when wanted, a selection that outlasts its
actions with toasts above its bar, and no layout shift while two hundred tiles scroll by,
nor while a slow machine paints the first of them.

One app for the module: five images made through the emulator (five shapes), and two hundred
more rows that show them again, written straight into its database (the bytes are the five's,
so every tile loads a real thumbnail)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import col

from app.storage.db.engine import Database
from app.storage.db.tables import Image, Job, JobStatus, utcnow
from tests.support.apps import RunningApp, make_settings, serve_app
from tests.support.browser import axe_violations, record_csp_violations, wait_for_htmx
from tests.support.emulators import serve_emulator
from tests.support.jobs import wait_for_job
from tests.support.screenshots import DESKTOP, PHONE

pytestmark = pytest.mark.browser

SHAPES = ("square_hd", "portrait_16_9", "landscape_16_9", "portrait_4_3", "landscape_4_3")
MORE = 200

# Every layout shift not caused by a click or a key, added up (the CLS of the whole visit).
MEASURE_SHIFTS = (
    "window.__cls = 0; new PerformanceObserver(list => { for (const e of list.getEntries())"
    " if (!e.hadRecentInput) window.__cls += e.value; })"
    ".observe({type: 'layout-shift', buffered: true});"
)


def show_again(db: Database, count: int) -> None:
    """`count` jobs of one image each, newer than the rest, showing the stored images again."""
    with db.read() as session:
        images = list(session.execute(sa.select(Image).order_by(col(Image.id))).scalars())
    now = utcnow()
    jobs, rows = [], []
    for number in range(count):
        source = images[number % len(images)]
        job_id = 1000 + number
        jobs.append(
            {
                "id": job_id,
                "created_at": now + timedelta(seconds=number),
                "updated_at": now,
                "model": "seedream-4",
                "prompt": f"tile {number}",
                "image_size": "auto_2K",
                "num_images": 1,
                "request_body": {"prompt": f"tile {number}"},
                "status": JobStatus.COMPLETED,
                "credit_cost": 1.0,
            }
        )
        rows.append(
            {
                "job_id": job_id,
                "index": 0,
                "content_type": source.content_type,
                "width": source.width,
                "height": source.height,
                "byte_size": source.byte_size,
                "sha256": source.sha256,
                "source_url": source.source_url,
                "created_at": now,
            }
        )
    with db.write() as session:
        connection = session.connection()
        connection.execute(sa.insert(Job.__table__), jobs)  # type: ignore[attr-defined]
        connection.execute(sa.insert(Image.__table__), rows)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    with serve_emulator(job_seconds=0.1) as emulator:
        settings = make_settings(tmp_path_factory.mktemp("gallery-layout") / "data", emulator)
        with serve_app(settings) as app:
            submitted = [
                app.client.post("/api/jobs", json={"prompt": size, "image_size": size}).json()["id"]
                for size in SHAPES
            ]
            for job_id in submitted:
                assert wait_for_job(app.client, job_id)["status"] == "completed"
            db = Database.for_settings(settings)
            try:
                show_again(db, MORE)
            finally:
                db.dispose()
            yield app


# The tiles on show at each frame the page paints, from the first.
COUNT_TILES_PER_FRAME = (
    "window.__tilesPerFrame = []; (function frame() {"
    " window.__tilesPerFrame.push(document.querySelectorAll('.gallery-item').length);"
    " if (document.readyState === 'loading') requestAnimationFrame(frame); })();"
)
# How much slower than this machine the page's CPU runs while it loads: a loaded CI machine.
SLOW_CPU = 8


def gallery(
    browser: Any, app: RunningApp, viewport: dict[str, int], slow: bool = False, **options: Any
) -> Any:
    context = browser.new_context(viewport=viewport, reduced_motion="reduce", **options)
    record_csp_violations(context)
    context.add_init_script(MEASURE_SHIFTS)
    context.add_init_script(COUNT_TILES_PER_FRAME)
    page = context.new_page()
    if slow:
        # Chromium paints between chunks of a long page it parses only when parsing is slow.
        cdp = context.new_cdp_session(page)
        cdp.send("Emulation.setCPUThrottlingRate", {"rate": SLOW_CPU})
    page.goto(app.url + "/gallery")
    wait_for_htmx(page)
    if slow:
        cdp.send("Emulation.setCPUThrottlingRate", {"rate": 1})
    return page


def test_the_first_tiles_are_on_the_first_screen_of_a_laptop_and_a_phone(
    browser: Any, site: RunningApp
) -> None:
    for viewport, highest in ((DESKTOP, 300), (PHONE, 450)):
        page = gallery(browser, site, viewport)
        first = page.locator("#gallery-grid .gallery-item img").first.bounding_box()
        assert first["y"] < highest, (viewport, first)
        # The search is in that header, not below it.
        assert page.locator("#q").bounding_box()["y"] < first["y"]
        page.context.close()


def test_each_tile_keeps_its_image_s_shape_in_rows_of_one_height(
    browser: Any, site: RunningApp
) -> None:
    page = gallery(browser, site, DESKTOP)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.gallery-item img')].slice(0, 12)"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    tiles = page.locator(".gallery-item img").evaluate_all(
        "imgs => imgs.slice(0, 40).map(i => ({r: i.getBoundingClientRect().toJSON(),"
        " w: +i.getAttribute('width'), h: +i.getAttribute('height')}))"
    )
    shapes = set()
    for tile in tiles:
        box = tile["r"]
        # No square crops: the box is the image's own shape.
        assert abs(box["width"] / box["height"] - tile["w"] / tile["h"]) < 0.03, tile
        shapes.add(round(tile["w"] / tile["h"], 2))
    assert len(shapes) >= 3, "portraits, squares and landscapes side by side"
    rows: dict[int, set[int]] = {}
    for tile in tiles:
        rows.setdefault(round(tile["r"]["y"]), set()).add(round(tile["r"]["height"]))
    full_rows = list(rows.values())[:-1]  # a page's last row may be short
    assert full_rows and all(max(h) - min(h) <= 1 for h in full_rows), rows
    page.context.close()


def test_tick_and_star_show_on_hover_focus_and_while_ticking_and_always_on_touch(
    browser: Any, site: RunningApp
) -> None:
    def opacity(page: Any, selector: str) -> float:
        return float(page.locator(selector).first.evaluate("e => getComputedStyle(e).opacity"))

    page = gallery(browser, site, DESKTOP)
    tile = page.locator(".gallery-item").first
    assert opacity(page, ".gallery-item .tile-select") == 0
    assert opacity(page, ".gallery-item .fav-form") == 0
    tile.hover()
    shown = "() => getComputedStyle(document.querySelector('.gallery-item .tile-select')).opacity"
    page.wait_for_function(f"{shown} === '1'")
    assert opacity(page, ".gallery-item .fav-form") == 1
    page.mouse.move(0, 0)
    # Ticking one: every tile shows its box, for the next to tick.
    tile.locator(".tile-select").check()
    assert opacity(page, ".gallery-item:nth-child(5) .tile-select") == 1
    tile.locator(".tile-select").uncheck()
    page.mouse.move(0, 0)
    page.evaluate("document.activeElement.blur()")
    page.wait_for_function(f"{shown} === '0'")
    # Reached from the keyboard: shown while the tile has focus.
    tile.locator(".tile-link").focus()
    page.wait_for_function(f"{shown} === '1'")
    page.context.close()

    phone = gallery(browser, site, PHONE, has_touch=True, is_mobile=True)
    assert opacity(phone, ".gallery-item .tile-select") == 1
    assert opacity(phone, ".gallery-item .fav-form") == 1
    phone.context.close()


BAR_BUTTONS_FREE = """() => [...document.querySelectorAll('#selection button:not([hidden])')]
  .filter(b => b.getBoundingClientRect().width > 0)
  .map(b => { const r = b.getBoundingClientRect();
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    return [b.textContent.trim(), !!hit && b.contains(hit)]; })"""


def test_the_selection_outlasts_its_actions_and_toasts_never_cover_its_bar(
    browser: Any, site: RunningApp
) -> None:
    from playwright.sync_api import expect

    for viewport in (DESKTOP, PHONE):
        page = gallery(browser, site, viewport)
        boxes = page.locator(".gallery-item .tile-select")
        boxes.nth(0).check(force=True)
        boxes.nth(1).check(force=True)
        bar = page.locator("#selection")
        bar.get_by_role("button", name="Star").click()
        toast = page.locator("#toasts .toast").last
        expect(toast).to_contain_text("Starred 2 images · Undo")
        # Still ticked, for the next action.
        expect(bar.locator("[data-selection-count]")).to_have_text("2 selected")
        free = page.evaluate(BAR_BUTTONS_FREE)
        assert len(free) >= 5 and all(ok for _, ok in free), (viewport, free)
        toast_box, bar_box = toast.bounding_box(), bar.bounding_box()
        assert toast_box["y"] + toast_box["height"] <= bar_box["y"], (toast_box, bar_box)
        toast.get_by_role("button", name="Undo").click()
        bar.get_by_role("button", name="Clear").click()
        expect(bar).to_be_hidden()
        assert boxes.nth(0).is_checked() is False
        for theme in ("light", "dark"):
            page.emulate_media(color_scheme=theme)
            assert axe_violations(page) == [], (viewport, theme)
        page.context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["laptop", "phone"])
def test_the_first_paint_shows_the_whole_first_page_even_on_a_slow_machine(
    browser: Any, site: RunningApp, viewport: dict[str, int]
) -> None:
    page = gallery(browser, site, viewport, slow=True)
    page.wait_for_function("document.readyState !== 'loading'")
    shown = [count for count in page.evaluate("window.__tilesPerFrame") if count]
    on_a_page = page.locator(".gallery-page").first.locator(".gallery-item").count()
    # Never a part of it: each tile parsed after a paint would reflow the row it joins.
    assert set(shown) <= {on_a_page}, shown
    assert page.evaluate("window.__cls") < 0.05
    page.context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["laptop", "phone"])
def test_no_layout_shift_while_two_hundred_tiles_scroll_by(
    browser: Any, site: RunningApp, viewport: dict[str, int]
) -> None:
    page = gallery(browser, site, viewport, slow=True)
    total = MORE + len(SHAPES)
    # Scrolled as a person scrolls, a wheel turn at a time, until every page has come.
    for _ in range(200):
        page.mouse.wheel(0, viewport["height"] * 0.8)
        page.wait_for_function(
            "() => [...document.querySelectorAll('.gallery-item img')]"
            ".filter(i => { const r = i.getBoundingClientRect();"
            " return r.bottom > 0 && r.top < innerHeight; })"
            ".every(i => i.complete)"
        )
        done = page.evaluate(
            "() => !document.querySelector('.gallery-more[hx-get]')"
            " && scrollY + innerHeight >= document.documentElement.scrollHeight - 2"
        )
        if done:
            break
    assert page.locator(".gallery-item").count() == total
    cls = page.evaluate("window.__cls")
    assert cls < 0.05, cls
    page.context.close()
