"""The gallery in headless Chromium: search, endless scrolling, the lightbox's keys, remix,
compare and a zip download, against a gallery made through the emulator."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.apps import RunningApp, make_settings, serve_app
from tests.support.emulators import serve_emulator
from tests.support.jobs import wait_for_job

pytestmark = pytest.mark.browser

BODIES = [
    {
        "prompt": "a lighthouse at dawn, watercolour",
        "num_images": 2,
        "image_size": "landscape_16_9",
    },
    {"prompt": "a lighthouse at night, oil painting", "image_size": "square_hd", "seed": 3},
    {"prompt": "red bicycle against a blue wall", "num_images": 2, "seed": 9},
    {"prompt": "overhead food photography of ramen", "image_size": "portrait_4_3", "seed": 4},
]


@pytest.fixture(scope="module")
def gallery_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    with serve_emulator(job_seconds=0.1) as emulator:
        settings = make_settings(tmp_path_factory.mktemp("browser") / "data", emulator)
        with serve_app(settings) as app:
            for body in BODIES:  # one after the other: job ids follow this order
                job_id = app.client.post("/api/jobs", json=body).json()["id"]
                assert wait_for_job(app.client, job_id)["status"] == "completed"
            yield app


def gallery_ids(app: RunningApp, **params: Any) -> list[int]:
    items = app.client.get("/api/gallery", params={"limit": 100, **params}).json()["items"]
    return [item["id"] for item in items]


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 800}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    context.on("weberror", lambda error: errors.append(str(error.error)))
    yield page
    context.close()
    assert errors == [], errors


def tile_ids(page: Any) -> list[int]:
    return [
        int(v)
        for v in page.locator("#gallery-grid .gallery-item").evaluate_all(
            "items => items.map(li => li.dataset.imageId)"
        )
    ]


def test_search_narrows_the_grid_and_lives_in_the_url(page: Any, gallery_app: RunningApp) -> None:
    from playwright.sync_api import expect

    page.goto(gallery_app.url + "/gallery")
    expect(page.locator("#gallery-grid .gallery-item")).to_have_count(len(gallery_ids(gallery_app)))
    page.locator("#q").fill("lighthouse")
    expect(page).to_have_url(gallery_app.url + "/gallery?q=lighthouse")
    expect(page.locator("#gallery-grid .gallery-item")).to_have_count(3)
    assert tile_ids(page) == gallery_ids(gallery_app, q="lighthouse")

    # The URL is the search: opening it elsewhere shows the same images.
    page.locator("summary", has_text="Filters").click()
    page.locator("select[name=image_size]").select_option("square_hd")
    expect(page.locator("#gallery-grid .gallery-item")).to_have_count(1)
    assert "image_size=square_hd" in page.url and "q=lighthouse" in page.url
    shared = page.context.new_page()
    shared.goto(page.url)
    assert tile_ids(shared) == gallery_ids(gallery_app, q="lighthouse", image_size="square_hd")
    expect(shared.locator("#q")).to_have_value("lighthouse")
    shared.close()
    page.go_back()
    expect(page.locator("#gallery-grid .gallery-item")).to_have_count(3)


def test_scrolling_down_loads_older_images(page: Any, gallery_app: RunningApp) -> None:
    from playwright.sync_api import expect

    everything = gallery_ids(gallery_app)
    # A short phone screen: one row of two tiles fills it, so paging has to wait for a scroll.
    page.set_viewport_size({"width": 360, "height": 420})
    fetched: list[str] = []
    page.on("request", lambda r: fetched.append(r.url) if "/gallery/page?" in r.url else None)
    page.goto(gallery_app.url + "/gallery?limit=2")
    tiles = page.locator("#gallery-grid .gallery-item")
    expect(tiles).to_have_count(2)
    assert page.locator("#gallery-grid .gallery-more").count() == 1
    seen = [2]
    assert fetched == []
    while seen[-1] < len(everything):
        page.mouse.wheel(0, 300)
        expect(tiles).not_to_have_count(seen[-1])
        seen.append(tiles.count())
    # One request a page (two more pages of two), each with the cursor of the one before.
    assert len(fetched) == 2 and len(set(fetched)) == 2, fetched
    assert all("limit=2" in url and "cursor=" in url for url in fetched)
    expect(page.locator("#gallery-grid .gallery-more")).to_have_count(0)
    assert tile_ids(page) == everything, "every image once, newest first"
    assert page.locator("#gallery-grid img").evaluate_all(
        "imgs => imgs.every(img => img.complete && img.naturalWidth > 0)"
    )


def test_the_lightbox_moves_with_arrow_keys_and_closes_with_escape(
    page: Any, gallery_app: RunningApp
) -> None:
    from playwright.sync_api import expect

    ids = gallery_ids(gallery_app)
    page.goto(gallery_app.url + "/gallery?limit=2")
    page.locator(f"#image-{ids[0]} a.tile-link").click()
    dialog = page.locator("#lightbox")
    content = page.locator("#lightbox .lightbox-content")
    expect(dialog).to_have_attribute("open", "")
    expect(content).to_have_attribute("data-image-id", str(ids[0]))
    full = content.locator("figure img")
    expect(full).to_have_attribute("src", f"/api/images/{ids[0]}")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=full.element_handle())
    expect(content).to_contain_text("Upstream job")

    page.keyboard.press("ArrowRight")
    expect(content).to_have_attribute("data-image-id", str(ids[1]))
    # Past the last loaded tile, the next page is fetched and the lightbox moves on.
    page.keyboard.press("ArrowRight")
    expect(content).to_have_attribute("data-image-id", str(ids[2]))
    page.keyboard.press("ArrowLeft")
    expect(content).to_have_attribute("data-image-id", str(ids[1]))
    page.keyboard.press("Escape")
    expect(dialog).not_to_have_attribute("open", "")
    # Focus returns to the image last shown, not the one first clicked (the dialog's own
    # restoring happens first; the close event, a task later, moves it on).
    page.wait_for_function(
        "id => document.activeElement.closest('.gallery-item')?.dataset.imageId === id",
        arg=str(ids[1]),
    )


def test_remix_opens_the_playground_with_the_parameters(page: Any, gallery_app: RunningApp) -> None:
    from playwright.sync_api import expect

    night = gallery_ids(gallery_app, q="night")[0]
    page.goto(gallery_app.url + "/gallery")
    page.locator(f"#image-{night} a.tile-link").click()
    page.locator("#lightbox").get_by_role("link", name="Remix").click()
    job_id = gallery_app.client.get(f"/api/gallery/images/{night}").json()["job_id"]
    expect(page).to_have_url(f"{gallery_app.url}/?remix={job_id}&image=0#generate-form")
    expect(page.locator("#generate-form")).to_contain_text(f"Remix of job #{job_id}, image 1")
    expect(page.locator("#prompt")).to_have_value(BODIES[1]["prompt"])
    expect(page.locator('input[name="image_size"][value="square_hd"]')).to_be_checked()
    expect(page.locator("#seed")).to_have_value("3")
    expect(page.locator("#num_images")).to_have_value("1")


def test_compare_shows_the_differences(page: Any, gallery_app: RunningApp) -> None:
    from playwright.sync_api import expect

    bicycle = gallery_ids(gallery_app, q="bicycle")
    ramen = gallery_ids(gallery_app, q="ramen")
    page.goto(gallery_app.url + "/gallery")
    compare = page.get_by_role("button", name="Compare")
    # Nothing ticked: no selection bar at all; one ticked: compare needs a second.
    expect(page.locator("#selection")).to_be_hidden()
    page.locator(f"#image-{ramen[0]} input.tile-select").check()
    expect(page.locator("[data-selection-count]")).to_have_text("1 selected")
    expect(compare).to_be_disabled()
    page.locator(f"#image-{bicycle[0]} input.tile-select").check()
    expect(page.locator("[data-selection-count]")).to_have_text("2 selected")
    compare.click()
    # Ticked ids in grid order: the newest (ramen) first.
    expect(page).to_have_url(f"{gallery_app.url}/compare?ids={ramen[0]}&ids={bicycle[0]}")
    expect(page.locator(".compare-figure")).to_have_count(2)
    for name in ("prompt", "seed", "image_size", "pixels"):
        expect(page.locator(f'tr[data-param="{name}"]')).to_have_class("differs")
    expect(page.locator('tr[data-param="model"]')).to_have_class("same")
    expect(page.locator('tr[data-param="prompt"] mark').first).to_be_visible()


def test_a_selection_downloads_as_a_zip(page: Any, gallery_app: RunningApp, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    lighthouses = gallery_ids(gallery_app, q="lighthouse")
    page.goto(gallery_app.url + "/gallery")
    for image_id in lighthouses[:2]:
        page.locator(f"#image-{image_id} input.tile-select").check()
    button = page.get_by_role("button", name="Download zip")
    expect(button).to_be_enabled()
    with page.expect_download() as info:
        button.click()
    download = info.value
    assert download.suggested_filename == "seedream-selection.zip"
    target = tmp_path / "selection.zip"
    download.save_as(target)
    with zipfile.ZipFile(target) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        assert [entry["image"]["id"] for entry in manifest["images"]] == lighthouses[:2]
        for entry in manifest["images"]:
            assert archive.getinfo(entry["file"]).file_size > entry["image"]["byte_size"]
            assert json.loads(archive.read(entry["sidecar"]))["image"]["id"] == entry["image"]["id"]


def test_a_star_sticks_and_favourites_list_it(page: Any, gallery_app: RunningApp) -> None:
    from playwright.sync_api import expect

    ramen = gallery_ids(gallery_app, q="ramen")[0]
    page.goto(gallery_app.url + "/gallery")
    star = page.locator(f"#image-{ramen} .fav-button")
    expect(star).to_have_attribute("aria-pressed", "false")
    star.click()
    expect(page.locator(f"#image-{ramen} .fav-button")).to_have_attribute("aria-pressed", "true")
    page.get_by_role("link", name="Favourites").click()
    expect(page.locator("#gallery-grid .gallery-item")).to_have_count(1)
    assert tile_ids(page) == [ramen]
    page.locator(f"#image-{ramen} .fav-button").click()
    expect(page.locator(f"#image-{ramen} .fav-button")).to_have_attribute("aria-pressed", "false")


def test_same_prompt_new_seed_goes_to_the_new_job(page: Any, gallery_app: RunningApp) -> None:
    from playwright.sync_api import expect

    night = gallery_ids(gallery_app, q="night")[0]
    page.goto(gallery_app.url + "/gallery")
    page.locator(f"#image-{night} a.tile-link").click()
    newest = max(item["id"] for item in gallery_app.client.get("/api/jobs").json()["items"])
    page.locator("#lightbox").get_by_role("button", name="Same prompt, new seed").click()
    expect(page.locator("h1")).to_have_text(f"Job #{newest + 1}")
    expect(page.locator(".status-badge")).to_have_text("Done", timeout=20_000)
    expect(page.locator(".params-prompt")).to_have_text(BODIES[1]["prompt"])
    seed = page.locator(".params dt", has_text="seed").locator("xpath=following-sibling::dd[1]")
    assert seed.inner_text() not in ("3", "random")


def test_compare_and_the_open_lightbox_pass_axe_under_the_strict_csp(
    browser: Any, gallery_app: RunningApp
) -> None:
    """The pages the audit in test_browser_pages cannot reach without a selection."""
    from playwright.sync_api import expect

    from tests.support.browser import (
        axe_violations,
        csp_violations,
        horizontal_overflow,
        record_csp_violations,
        wait_for_htmx,
    )

    ids = gallery_ids(gallery_app)
    problems: list[str] = []
    for width in (1280, 360):
        context = browser.new_context(viewport={"width": width, "height": 800})
        record_csp_violations(context)
        page = context.new_page()
        page.goto(f"{gallery_app.url}/compare?ids={ids[0]}&ids={ids[3]}&ids={ids[4]}")
        wait_for_htmx(page)
        if horizontal_overflow(page) > 0:
            problems.append(f"compare at {width} px is wider than the screen")
        problems += [f"compare, {width} px: {line}" for line in axe_violations(page)]
        page.goto(f"{gallery_app.url}/gallery")
        wait_for_htmx(page)
        page.locator(f"#image-{ids[1]} a.tile-link").click()
        expect(page.locator("#lightbox .lightbox-content")).to_have_attribute(
            "data-image-id", str(ids[1])
        )
        problems += [f"lightbox, {width} px: {line}" for line in axe_violations(page)]
        problems += [f"{width} px: CSP blocked {line}" for line in csp_violations(page)]
        context.close()
    assert problems == [], "\n".join(problems)
