"""The playground as a canvas, in headless Chromium: what is on the first screen, how large
the output is, the try-all grid, every toast, and the gallery's selection bar on a phone.

One app and one browser for the module; its gallery is made as the README's screenshots
make theirs (tests/support/screenshots.py): a job per preset, then a finished four-image job.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from app.domain.presets import PRESETS, PRESETS_BY_SLUG
from tests.support.apps import RunningApp
from tests.support.browser import (
    axe_violations,
    csp_violations,
    record_csp_violations,
    wait_for_htmx,
)
from tests.support.jobs import wait_for_job
from tests.support.screenshots import DESKTOP, PHONE, run_try_all, sample_site, seed_gallery

pytestmark = pytest.mark.browser

DONE = 30_000


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningApp, dict[str, Any]]]:
    with sample_site(tmp_path_factory.mktemp("canvas") / "data", job_seconds=0.2) as app:
        four = seed_gallery(app.client)
        yield app, four


@pytest.fixture(scope="module")
def contexts(browser: Any) -> Iterator[dict[str, Any]]:
    """A desktop and a phone, each with one page that the tests reuse, and what they log."""
    made: dict[str, Any] = {}
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        context = browser.new_context(
            viewport=viewport, reduced_motion="reduce", permissions=["clipboard-write"]
        )
        record_csp_violations(context)
        page = context.new_page()
        logged: list[str] = []
        page.on("console", lambda m, logged=logged: m.type == "error" and logged.append(m.text))
        page.on("pageerror", lambda e, logged=logged: logged.append(str(e)))
        made[name] = page
        made[name + "-errors"] = logged
    yield made
    for name in ("desktop", "phone"):
        made[name].context.close()


@pytest.fixture
def desktop(contexts: dict[str, Any], site: tuple[RunningApp, Any]) -> Iterator[Any]:
    yield from _fresh(contexts, "desktop", site[0])


@pytest.fixture
def phone(contexts: dict[str, Any], site: tuple[RunningApp, Any]) -> Iterator[Any]:
    yield from _fresh(contexts, "phone", site[0])


def _fresh(contexts: dict[str, Any], name: str, app: RunningApp) -> Iterator[Any]:
    page = contexts[name]
    errors = contexts[name + "-errors"]
    errors.clear()
    page.goto(app.url + "/")
    wait_for_htmx(page)
    yield page
    assert errors == [], errors
    assert csp_violations(page) == []


def in_view(page: Any, selector: str) -> bool:
    """Whether the element lies wholly inside the viewport as the page stands."""
    return bool(
        page.evaluate(
            "s => { const r = document.querySelector(s).getBoundingClientRect();"
            " return r.width > 0 && r.top >= 0 && r.left >= 0"
            " && r.bottom <= innerHeight && r.right <= innerWidth; }",
            selector,
        )
    )


def toasts(page: Any) -> Any:
    return page.locator("#toasts .toast")


def test_prompt_and_generate_are_on_the_first_screen_of_a_laptop_and_a_phone(
    desktop: Any, phone: Any, site: tuple[RunningApp, Any]
) -> None:
    from playwright.sync_api import expect

    _, four = site
    for page in (desktop, phone):
        assert page.evaluate("scrollY") == 0
        assert in_view(page, "#prompt"), page.viewport_size
        assert in_view(page, ".generate-button"), page.viewport_size
    # A phone: the prompt, then the presets, then the output (the settings folded between).
    order = phone.evaluate(
        "['#prompt', '.preset-row', '#output'].map(s =>"
        " document.querySelector(s).getBoundingClientRect().top)"
    )
    assert order == sorted(order)
    assert phone.locator("[data-settings]").evaluate("d => d.open") is False
    assert desktop.locator("[data-settings]").evaluate("d => d.open") is True
    # A laptop: the output beside the form, and the larger half.
    form = desktop.locator(".canvas-form").bounding_box()
    output = desktop.locator(".canvas-output").bounding_box()
    assert output["x"] > form["x"] + form["width"] - 1
    assert output["width"] > form["width"]
    # The seeded four-image job is the newest: a 2×2 grid, its actions on each image.
    page = desktop
    output = page.locator("#output")
    expect(output.locator(f"#job-{four['id']}")).to_be_visible()
    boxes = [
        output.locator(f"#job-image-{image['id']} img").bounding_box() for image in four["images"]
    ]
    xs = sorted({round(box["x"]) for box in boxes})
    ys = sorted({round(box["y"]) for box in boxes})
    assert len(xs) == 2 and len(ys) == 2, boxes
    actions = output.locator(".image-actions").first
    for role, name in (
        ("link", "Download"),
        ("button", "Favourite"),
        ("link", "Remix"),
        ("button", "Same seed"),
        ("button", "New seed"),
        ("button", "Compare"),
    ):
        expect(actions.get_by_role(role, name=re.compile(f"^{name}"))).to_be_visible()


def test_a_preset_fills_the_form_in_view_with_its_latest_image_and_its_label_clears(
    desktop: Any, phone: Any, site: tuple[RunningApp, Any]
) -> None:
    from playwright.sync_api import expect

    app, _ = site
    preset = PRESETS_BY_SLUG["streetwear-lookbook"]
    latest = app.client.get("/api/gallery", params={"preset": preset.slug}).json()["items"][0]
    for page in (desktop, phone):
        chip = page.locator(f"#preset-{preset.slug}")
        assert chip.locator("img").get_attribute("src") == f"/api/images/{latest['id']}/thumbnail"
        chip.click()
        expect(page.locator("#prompt")).to_have_value(preset.prompt)
        expect(page.locator("[data-preset-label]")).to_contain_text(preset.name)
        assert in_view(page, "#prompt"), page.viewport_size
        expect(page.locator(f"#preset-{preset.slug}")).to_have_attribute("aria-current", "true")

    page = desktop
    page.locator("#prompt").press("Control+End")
    page.keyboard.type(" in the snow")
    expect(page.locator("[data-preset-label]")).to_be_hidden()
    expect(page.locator("[data-preset-input]")).to_have_value("")
    expect(page.locator(f"#preset-{preset.slug}")).not_to_have_attribute("aria-current", "true")
    page.keyboard.press("Control+Enter")
    card = page.locator("#output .job-card")
    expect(card).to_contain_text("in the snow")
    job_id = int(card.get_attribute("data-job-id"))
    assert wait_for_job(app.client, job_id)["preset"] is None, "your own prompt, not the preset's"
    # Back to the preset's own words: the label is back.
    page.locator("#prompt").fill(preset.prompt)
    expect(page.locator("[data-preset-label]")).to_be_visible()
    expect(page.locator("[data-preset-input]")).to_have_value(preset.slug)


def test_one_finished_image_shows_large_in_the_output(desktop: Any) -> None:
    from playwright.sync_api import expect

    page = desktop
    output = page.locator("#output")
    before = output.locator(".job-card").get_attribute("id")
    page.locator("#prompt").fill("one lighthouse, large")
    page.locator("input[name=image_size][value=portrait_16_9]").check(force=True)
    page.locator(".generate-button").click()
    card = output.locator(".job-card")
    expect(card).to_contain_text("one lighthouse, large")
    # Status, and time against the estimate, sit with the images while it runs.
    expect(card.locator(".status-badge")).to_be_visible()
    expect(card).to_have_attribute("data-status", "completed", timeout=DONE)
    image = card.locator("img")
    page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=image.element_handle())
    box = image.bounding_box()
    assert max(box["width"], box["height"]) >= 480, box
    assert in_view(page, "#output .job-card img")
    # The one it replaced is first in the recent strip.
    expect(page.locator("#jobs .job-card").first).to_have_attribute("id", before)


def test_the_actions_on_an_image(desktop: Any, site: tuple[RunningApp, Any]) -> None:
    from playwright.sync_api import expect

    app, _ = site
    page = desktop
    page.locator("#prompt").fill("a red kite, seeded")
    page.locator("#seed").evaluate("s => { s.disabled = false; s.value = '4242'; }")
    page.get_by_label("Keep this seed for every run").check()
    page.locator("#num_images").fill("2")
    page.locator(".generate-button").click()
    card = page.locator("#output .job-card")
    expect(card).to_contain_text("a red kite, seeded")
    expect(card).to_have_attribute("data-status", "completed", timeout=DONE)
    first, second = card.locator(".job-image").nth(0), card.locator(".job-image").nth(1)

    # Favourite, answered, and undone.
    first.locator(".fav-button").click()
    expect(toasts(page).last).to_contain_text("Added to favourites · Undo")
    image_id = int(first.get_attribute("id").removeprefix("job-image-"))
    assert app.client.get(f"/api/gallery/images/{image_id}").json()["favourite"] is True
    toasts(page).last.get_by_role("button", name="Undo").click()
    expect(first.locator(".fav-button")).to_have_attribute("aria-pressed", "false")
    assert app.client.get(f"/api/gallery/images/{image_id}").json()["favourite"] is False

    # Compare: two picked, one link.
    first.get_by_role("button", name=re.compile("^Compare")).click()
    expect(toasts(page).last).to_contain_text("Picked to compare (1)")
    second.get_by_role("button", name=re.compile("^Compare")).click()
    link = page.locator("[data-compare-link]")
    expect(link).to_have_text("Compare 2 images")
    other_id = second.get_attribute("id").removeprefix("job-image-")
    assert link.get_attribute("href") == f"/compare?ids={image_id}&ids={other_id}"

    # Same seed: into the form, kept.
    page.locator("#prompt").fill("something else entirely")
    page.locator("#settings").get_by_role("button", name="New seed").click()
    second.get_by_role("button", name="Same seed").click()
    expect(page.locator("#seed")).to_have_value("4242")
    expect(page.get_by_label("Keep this seed for every run")).to_be_checked()
    expect(toasts(page).last).to_contain_text("Seed 4242 is in the form")
    expect(page.locator("#prompt")).to_have_value("something else entirely")

    # Remix: the form filled in place from the image's job.
    second.get_by_role("link", name=re.compile("^Remix")).click()
    expect(page.locator("#prompt")).to_have_value("a red kite, seeded")
    expect(page.locator(".form-preset").first).to_contain_text("Remix of job #")
    assert in_view(page, "#prompt")

    # New seed: a new job in the output, the old one to the strip.
    old_id = card.get_attribute("data-job-id")
    second.locator("[hx-post$='/new-seed']").click()
    expect(page.locator("#output .job-card")).not_to_have_attribute("data-job-id", old_id)
    expect(page.locator("#jobs .job-card").first).to_have_attribute("data-job-id", old_id)
    new_id = int(page.locator("#output .job-card").get_attribute("data-job-id"))
    new_job = wait_for_job(app.client, new_id)
    assert new_job["parameters"]["seed"] not in (None, 4242)
    assert new_job["parameters"]["prompt"] == "a red kite, seeded"


def test_try_all_is_a_uniform_grid_after_a_dialog_that_starts_on_cancel(
    desktop: Any, phone: Any
) -> None:
    from playwright.sync_api import expect

    for page in (desktop, phone):
        page.get_by_role("button", name=re.compile("^Try all")).click()
        dialog = page.get_by_role("dialog", name=re.compile("^Try all"))
        expect(dialog).to_contain_text("Cost: 8 credits")
        expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()

    page = desktop
    run_try_all(page)
    cells = page.locator("#comparison .comparison-cell")
    expect(cells).to_have_count(len(PRESETS))
    sizes = {(round(box["width"]), round(box["height"])) for box in _boxes(cells)}
    assert len(sizes) == 1, f"cells of different sizes: {sizes}"
    for index, preset in enumerate(PRESETS):
        cell = cells.nth(index)
        image = cell.locator("img").bounding_box()
        caption = cell.locator(".job-card-preset")
        expect(caption).to_have_text(preset.name)
        assert image["y"] + image["height"] <= caption.bounding_box()["y"], "the image comes first"
    for theme in ("light", "dark"):
        page.emulate_media(color_scheme=theme)
        assert axe_violations(page) == [], theme
    page.emulate_media(color_scheme="light")


def _boxes(locator: Any) -> list[dict[str, float]]:
    return [locator.nth(i).bounding_box() for i in range(locator.count())]


def test_the_playground_passes_axe_light_and_dark_with_a_four_image_output(
    desktop: Any, phone: Any, site: tuple[RunningApp, Any]
) -> None:
    for page in (desktop, phone):
        for theme in ("light", "dark"):
            page.emulate_media(color_scheme=theme)
            assert axe_violations(page) == [], (page.viewport_size, theme)
        page.emulate_media(color_scheme="light")


# --- The gallery ----------------------------------------------------------------------------

COVERING = """() => {
  const covering = [...document.querySelectorAll('body *')].filter(el => {
    const style = getComputedStyle(el);
    if (style.position !== 'fixed' && style.position !== 'sticky') return false;
    const r = el.getBoundingClientRect();
    return style.display !== 'none' && style.visibility !== 'hidden' && r.width > 0 && r.height > 0;
  });
  const images = [...document.querySelectorAll('.gallery-item:not([hidden]) img')];
  const hits = [];
  for (const el of covering) {
    const a = el.getBoundingClientRect();
    for (const img of images) {
      const b = img.getBoundingClientRect();
      if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom)
        hits.push(el.className + ' over ' + img.closest('li').id);
    }
  }
  return hits;
}"""


def test_on_a_phone_nothing_covers_the_gallery_until_images_are_ticked(
    phone: Any, site: tuple[RunningApp, Any]
) -> None:
    from playwright.sync_api import expect

    app, _ = site
    page = phone
    page.goto(app.url + "/gallery")
    wait_for_htmx(page)
    bar = page.locator("#selection")
    expect(bar).to_be_hidden()
    for position in ("0", "document.body.scrollHeight / 2", "document.body.scrollHeight"):
        page.evaluate(f"scrollTo(0, {position})")
        assert page.evaluate(COVERING) == [], position

    page.evaluate("scrollTo(0, 0)")
    boxes = page.locator(".tile-select")
    boxes.nth(0).check()
    boxes.nth(1).check()
    expect(bar).to_be_visible()
    expect(bar.locator("[data-selection-count]")).to_have_text("2 selected")
    height = bar.bounding_box()["height"]
    assert height <= 0.3 * PHONE["height"], height
    # Room is kept below the grid: scrolled to the end, the last image sits above the bar.
    page.evaluate("scrollTo(0, document.body.scrollHeight)")
    last = page.locator(".gallery-item img").last.bounding_box()
    assert last["y"] + last["height"] <= bar.bounding_box()["y"] + 1
    boxes.nth(0).uncheck()
    boxes.nth(1).uncheck()
    expect(bar).to_be_hidden()


def test_every_change_in_the_gallery_is_answered_with_a_toast(
    desktop: Any, site: tuple[RunningApp, Any]
) -> None:
    from playwright.sync_api import expect

    app, _ = site
    page = desktop
    board = app.client.post("/api/collections", json={"name": "Kites"}).json()
    page.goto(app.url + "/gallery")
    wait_for_htmx(page)
    tiles = page.locator(".gallery-item:not([hidden])")
    ids = [tiles.nth(i).get_attribute("data-image-id") for i in range(2)]

    # Trash, with Undo.
    for image_id in ids:
        page.locator(f"#image-{image_id} .tile-select").check()
    page.locator("#selection").get_by_role("button", name="Delete").click()
    toast = toasts(page).last
    expect(toast).to_contain_text("Moved 2 images to the trash · Undo")
    for image_id in ids:
        expect(page.locator(f"#image-{image_id}")).to_be_hidden()
    expect(page.locator("#selection")).to_be_hidden()
    toast.get_by_role("button", name="Undo").click()
    expect(toasts(page).last).to_contain_text("Restored 2 images")
    for image_id in ids:
        expect(page.locator(f"#image-{image_id}")).to_be_visible()
    assert app.client.get("/api/trash").json()["items"] == []

    # Star from the bar; star from a tile.
    for image_id in ids:
        page.locator(f"#image-{image_id} .tile-select").check()
    page.locator("#selection").get_by_role("button", name="Star").click()
    expect(toasts(page).last).to_contain_text("Starred 2 images · Undo")
    expect(page.locator(f"#image-{ids[0]} .fav-button")).to_have_attribute("aria-pressed", "true")
    page.locator(f"#image-{ids[1]} .fav-button").click()
    expect(toasts(page).last).to_contain_text("Removed from favourites · Undo")

    # Add to a collection, with Undo (a change clears the selection: tick them again).
    for image_id in ids:
        page.locator(f"#image-{image_id} .tile-select").check()
    page.locator("#selection-board").select_option(str(board["id"]))
    page.locator("#selection").get_by_role("button", name="Add to collection").click()
    expect(toasts(page).last).to_contain_text("Added 2 images to “Kites” · Undo")
    assert app.client.get(f"/api/collections/{board['id']}").json()["image_count"] == 2
    toasts(page).last.get_by_role("button", name="Undo").click()
    expect(toasts(page).last).to_contain_text("Removed 2 images from “Kites”")
    assert app.client.get(f"/api/collections/{board['id']}").json()["image_count"] == 0

    # Copy, in the lightbox.
    page.locator(f"#image-{ids[0]} .tile-select").uncheck()
    page.locator(f"#image-{ids[1]} .tile-select").uncheck()
    page.locator(f"#image-{ids[0]} a[data-lightbox]").click()
    lightbox = page.locator("#lightbox")
    lightbox.locator(".reproduce summary").click()
    lightbox.locator("[data-copy]").first.click()
    expect(toasts(page).last).to_contain_text("Copied to the clipboard")

    # Move to trash from the lightbox; restore from the trash page, with Undo.
    lightbox.get_by_role("button", name="Move to trash").click()
    expect(toasts(page).last).to_contain_text("Moved 1 image to the trash · Undo")
    expect(lightbox).to_be_hidden()
    page.goto(app.url + "/trash")
    wait_for_htmx(page)
    tile = page.locator(f"#image-{ids[0]}")
    expect(tile).to_contain_text(re.compile(r"Deleted for good on \d{1,2} \w{3}"))
    tile.locator(".tile-select").check()
    page.locator("#selection").get_by_role("button", name="Restore").click()
    expect(toasts(page).last).to_contain_text("Restored 1 image · Undo")
    expect(tile).to_be_hidden()
    assert app.client.get("/api/trash").json()["items"] == []
