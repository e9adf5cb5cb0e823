"""The playground's first minute in headless Chromium, as a new person meets it: a result of
any shape fills its pane with a file fit for it, a phone shows the new job at once, the
settings are on the first screen beside the prompt, and the last model, size and count come
back. One app for the module; each test a browser context of its own (its own storage)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.domain.presets import PRESETS_BY_SLUG
from tests.support.apps import RunningApp, make_settings, serve_app
from tests.support.browser import (
    axe_violations,
    csp_violations,
    record_csp_violations,
    wait_for_htmx,
)
from tests.support.emulators import serve_emulator
from tests.support.jobs import wait_for_job
from tests.support.screenshots import DESKTOP, PHONE

pytestmark = pytest.mark.browser

DONE = 30_000

# Whether an element's box meets the viewport as the page stands (the test never scrolls).
INTERSECTS = """el => { const r = el.getBoundingClientRect();
  return r.width > 0 && r.height > 0 && r.bottom > 0 && r.top < innerHeight
    && r.right > 0 && r.left < innerWidth; }"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    # Jobs take long enough for their progress to be seen, short enough for a quick test.
    with serve_emulator(job_seconds=1.5) as emulator:
        data_dir: Path = tmp_path_factory.mktemp("first-minute") / "data"
        with serve_app(make_settings(data_dir, emulator)) as app:
            yield app


def open_page(browser: Any, app: RunningApp, viewport: dict[str, int], path: str = "/") -> Any:
    context = browser.new_context(viewport=viewport, reduced_motion="reduce")
    record_csp_violations(context)
    page = context.new_page()
    errors: list[str] = []

    def console(message: Any) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", console)
    page.goto(app.url + path)
    wait_for_htmx(page)
    page.errors = errors  # checked by `close`
    return page


def close(page: Any) -> None:
    assert page.errors == [], page.errors
    assert csp_violations(page) == []
    page.context.close()


def generate(page: Any, prompt: str, size: str | None = None) -> Any:
    """Fill the form, press Generate; the new job's card in the output."""
    page.locator("#prompt").fill(prompt)
    if size is not None:
        page.locator(f"input[name=image_size][value={size}]").check(force=True)
    page.locator(".generate-button").click()
    card = page.locator("#output .job-card").filter(has_text=prompt)
    card.wait_for()
    return card


@pytest.mark.parametrize(
    ("size", "shape"),
    [("square_hd", "square"), ("portrait_16_9", "portrait"), ("landscape_16_9", "landscape")],
)
def test_one_result_of_any_shape_fills_the_pane_with_a_file_fit_for_it(
    browser: Any, site: RunningApp, size: str, shape: str
) -> None:
    from playwright.sync_api import expect

    page = open_page(browser, site, DESKTOP)
    card = generate(page, f"a {shape} lighthouse", size)
    expect(card).to_have_attribute("data-status", "completed", timeout=DONE)
    image = card.locator(".job-image img")
    page.wait_for_function(
        "i => i.complete && i.naturalWidth > 0 && i.currentSrc", arg=image.element_handle()
    )
    box = image.bounding_box()
    assert max(box["width"], box["height"]) >= 480, (size, box)
    # The box is the image's own shape: nothing letterboxed inside it.
    width, height = int(image.get_attribute("width")), int(image.get_attribute("height"))
    assert abs(box["width"] / box["height"] - width / height) < 0.02, (size, box)
    assert page.evaluate(INTERSECTS, image.element_handle())
    # The browser chose a file at least as wide as the box: the 1,024 px preview or the
    # full image for a box this large, never the 512 px thumbnail.
    image_id = card.locator(".job-image").get_attribute("id").removeprefix("job-image-")
    current = image.evaluate("i => i.currentSrc")
    assert current.endswith((f"/api/images/{image_id}", f"/api/images/{image_id}/preview"))
    natural = image.evaluate("i => Math.max(i.naturalWidth, i.naturalHeight)")
    assert natural >= max(box["width"], box["height"]), (current, natural, box)
    close(page)


def test_a_result_clicked_opens_the_lightbox_with_the_job_page_one_link_away(
    browser: Any, site: RunningApp
) -> None:
    from playwright.sync_api import expect

    page = open_page(browser, site, DESKTOP)
    card = generate(page, "a harbour at night, to look at closely")
    expect(card).to_have_attribute("data-status", "completed", timeout=DONE)
    job_id = card.get_attribute("data-job-id")
    card.locator(".job-image-link").first.click()
    lightbox = page.get_by_role("dialog", name="Image details")
    expect(lightbox).to_be_visible()
    expect(lightbox).to_contain_text("a harbour at night, to look at closely")
    assert page.url == site.url + "/", "the playground stays where it is"
    link = lightbox.get_by_role("link", name="Job page")
    assert link.get_attribute("href").startswith(f"/jobs/{job_id}#image-")
    page.keyboard.press("Escape")
    expect(lightbox).to_be_hidden()
    close(page)


def test_on_a_phone_the_new_job_and_then_its_image_are_in_view_without_scrolling(
    browser: Any, site: RunningApp
) -> None:
    page = open_page(browser, site, PHONE)
    assert page.evaluate("scrollY") == 0
    page.locator("#prompt").fill("a red kite on a phone")
    # Below the fold before Generate: the form and the presets fill the screen.
    assert not page.evaluate(INTERSECTS, page.locator("#output").element_handle())
    page.locator(".generate-button").click()
    progress = "#output .job-card[data-running] [data-progress]"
    page.wait_for_function(
        f"() => {{ const p = document.querySelector('{progress}');"
        f" return p && ({INTERSECTS})(p); }}",
        timeout=DONE,
    )
    image = "#output .job-card[data-status=completed] img"
    page.wait_for_function(
        f"""() => {{ const i = document.querySelector('{image}');
          return i && i.complete && i.naturalWidth > 0 && ({INTERSECTS})(i); }}""",
        timeout=DONE,
    )
    close(page)


def test_size_images_and_seed_are_on_the_first_screen_and_a_preset_s_change_shows_there(
    browser: Any, site: RunningApp
) -> None:
    from playwright.sync_api import expect

    page = open_page(browser, site, DESKTOP)
    for selector in (".size-options", "#num_images", "#seed", ".generate-button"):
        box = page.locator(selector).bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= DESKTOP["height"], (selector, box)
    preset = PRESETS_BY_SLUG["cyberpunk-street"]
    assert preset.image_size == "portrait_16_9"
    page.locator(f"#preset-{preset.slug}").click()
    expect(page.locator("#prompt")).to_have_value(preset.prompt)
    chosen = page.locator("input[name=image_size][value=portrait_16_9]")
    expect(chosen).to_be_checked()
    expect(page.locator("[data-size-detail]")).to_have_text("Portrait 9:16 · 1440×2560")
    option = page.locator(".size-option", has=chosen)
    assert page.evaluate(INTERSECTS, option.element_handle())
    assert page.evaluate("scrollY") == 0
    close(page)


def test_a_preset_not_yet_used_shows_its_name_and_shape_never_a_blank(
    browser: Any, site: RunningApp
) -> None:
    # This site has made nothing from any preset.
    assert site.client.get("/api/gallery", params={"preset": "cyberpunk-street"}).json() == {
        "items": [],
        "next_cursor": None,
    }
    page = open_page(browser, site, DESKTOP)
    for slug in PRESETS_BY_SLUG:
        chip = page.locator(f"#preset-{slug}")
        sample = chip.locator(".preset-thumb-empty")
        width, height = (int(n) for n in sample.locator("svg").get_attribute("viewBox").split()[2:])
        assert (width > height) == (PRESETS_BY_SLUG[slug].image_size.startswith("landscape")), slug
        # A gradient of its own, not the page's background.
        assert "gradient" in sample.evaluate("e => getComputedStyle(e).backgroundImage"), slug
        assert chip.locator(".preset-name").inner_text() == PRESETS_BY_SLUG[slug].name
    close(page)


def test_the_last_model_size_and_count_come_back_in_a_fresh_form(
    browser: Any, site: RunningApp
) -> None:
    from playwright.sync_api import expect

    page = open_page(browser, site, DESKTOP)
    page.locator("input[name=image_size][value=landscape_4_3]").check(force=True)
    page.locator("#num_images").fill("2")
    generate(page, "remember me, landscape")
    page.reload()
    wait_for_htmx(page)
    expect(page.locator("input[name=image_size][value=landscape_4_3]")).to_be_checked()
    expect(page.locator("#num_images")).to_have_value("2")
    expect(page.locator("[data-size-detail]")).to_have_text("Landscape 4:3 · 2304×1728")

    # Another model: picked, used, and picked again on the next visit with its count.
    page.locator("#model").select_option("flux-dev")
    expect(page.locator("[data-cost]")).not_to_have_attribute("data-count-input", "num_images")
    count_id = page.locator("[data-cost]").get_attribute("data-count-input")
    expect(page.locator(f"#{count_id}")).to_be_visible()
    page.locator(f"#{count_id}").fill("3")
    page.locator("[name='param.prompt'], #prompt").first.fill("remember the other model")
    page.locator(".generate-button").click()
    page.locator("#output .job-card", has_text="remember the other model").wait_for()
    page.reload()
    wait_for_htmx(page)
    expect(page.locator("#model")).to_have_value("flux-dev")
    expect(page.locator("[data-cost]")).not_to_have_attribute("data-count-input", "num_images")
    count_id = page.locator("[data-cost]").get_attribute("data-count-input")
    expect(page.locator(f"#{count_id}")).to_have_value("3")

    # A preset's own size wins: it was asked for.
    page.goto(site.url + "/?preset=cyberpunk-street")
    wait_for_htmx(page)
    expect(page.locator("#model")).to_have_value(re.compile("^seedream"))
    expect(page.locator("input[name=image_size][value=portrait_16_9]")).to_be_checked()
    close(page)


def test_stopping_a_job_answers_at_once_and_undo_waits_for_it_again(
    browser: Any, site: RunningApp
) -> None:
    from playwright.sync_api import expect

    page = open_page(browser, site, DESKTOP)
    card = generate(page, "[[never]] a job to stop")
    card.get_by_role("button", name=re.compile("^Stop")).click()
    expect(card.locator(".status-badge")).to_have_text("Stopped by you")
    expect(card.locator(".spinner")).to_have_count(0)
    toast = page.locator("#toasts .toast").last
    expect(toast).to_contain_text("Stopped job #")
    toast.get_by_role("button", name="Undo").click()
    expect(card.locator(".spinner")).to_have_count(1)
    expect(page.locator("#toasts .toast").last).to_contain_text("again")
    for theme in ("light", "dark"):
        page.emulate_media(color_scheme=theme)
        assert axe_violations(page) == [], theme
    close(page)


def test_the_job_page_shows_the_output_large_beside_what_made_it(
    browser: Any, site: RunningApp
) -> None:
    job = site.client.post("/api/jobs", json={"prompt": "a job page", "image_size": "square_hd"})
    done = wait_for_job(site.client, job.json()["id"])
    page = open_page(browser, site, DESKTOP, f"/jobs/{done['id']}")
    image = page.locator(".job-page-images img")
    page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=image.element_handle())
    box = image.bounding_box()
    assert max(box["width"], box["height"]) >= 480, box
    assert box["y"] + box["height"] <= DESKTOP["height"], "the whole image on the first screen"
    # Parameters and the run record in the column beside it, not below it.
    for heading in ("#params-heading", "#run-heading"):
        beside = page.locator(heading).bounding_box()
        assert beside["x"] >= box["x"] + box["width"], (heading, beside, box)
    close(page)


def test_a_try_all_is_stopped_with_one_button_and_undone_from_its_toast(
    browser: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    # Jobs that outlast the test: all eight are still waited for when Stop all is pressed.
    with (
        serve_emulator(job_seconds=60) as emulator,
        serve_app(make_settings(tmp_path / "data", emulator)) as app,
    ):
        page = open_page(browser, app, DESKTOP)
        page.get_by_role("button", name=re.compile("^Try all")).click()
        page.get_by_role("button", name=re.compile("^Submit")).click()
        comparison = page.locator("#comparison")
        expect(comparison.locator(".job-card")).to_have_count(len(PRESETS_BY_SLUG))
        stop_all = comparison.get_by_role("button", name=re.compile("^Stop all"))
        stop_all.click()
        # Nothing is waited for any more, and the button goes with what it stopped.
        expect(comparison.locator(".spinner")).to_have_count(0)
        expect(stop_all).to_be_hidden()
        toast = page.locator("#toasts .toast").last
        expect(toast).to_contain_text("Stopped")
        for theme in ("light", "dark"):
            page.emulate_media(color_scheme=theme)
            assert axe_violations(page) == [], theme
        toast.get_by_role("button", name="Undo").click()
        expect(stop_all).to_be_visible()
        expect(comparison.locator(".job-card .spinner").first).to_be_visible()
        close(page)
