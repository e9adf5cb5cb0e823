"""The playground in headless Chromium: presets, form, submit, errors, try-all, code, keyboard."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from app.domain.presets import PRESETS, PRESETS_BY_SLUG
from tests.support.apps import RunningApp, make_settings, serve_app
from tests.support.browser import wait_for_htmx
from tests.support.emulators import TEST_KEY, RunningEmulator, serve_emulator
from tests.support.waiting import wait_until

pytestmark = pytest.mark.browser

DONE_TIMEOUT = 20_000


@pytest.fixture(scope="module")
def emulator_m() -> Iterator[RunningEmulator]:
    with serve_emulator() as running:
        yield running


@pytest.fixture(scope="module")
def app_m(
    tmp_path_factory: pytest.TempPathFactory, emulator_m: RunningEmulator
) -> Iterator[RunningApp]:
    data_dir = tmp_path_factory.mktemp("flow") / "data"
    with serve_app(make_settings(data_dir, emulator_m)) as running:
        yield running


@pytest.fixture
def page(browser: Any, app_m: RunningApp) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(app_m.url + "/")
    wait_for_htmx(page)
    yield page
    context.close()
    assert errors == [], errors


def runs(emulator: RunningEmulator) -> int:
    return len(emulator.emulator.requests_to("run"))


def test_pick_a_preset_submit_and_watch_it_finish_live(
    page: Any, app_m: RunningApp, emulator_m: RunningEmulator
) -> None:
    from playwright.sync_api import expect

    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    preset = PRESETS_BY_SLUG["food-overhead"]
    page.get_by_role("link", name=preset.name).click()
    expect(page.locator("#prompt")).to_have_value(preset.prompt)
    expect(page.locator(f"input[name=image_size][value={preset.image_size}]")).to_be_checked()
    expect(page.locator(".form-preset")).to_contain_text(preset.name)

    page.get_by_role("button", name=re.compile("^Generate")).click()
    card = page.locator(".job-card").first
    # While it runs, the image's shape is reserved; when it lands, nothing moves.
    placeholder = card.locator(".image-placeholder")
    reserved = placeholder.bounding_box() if placeholder.count() else None
    expect(card).to_have_attribute("data-status", "completed", timeout=DONE_TIMEOUT)
    thumbnail = card.locator("img").first
    expect(thumbnail).to_be_visible()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=thumbnail.element_handle()
    )
    if reserved is not None:
        landed = card.locator(".job-images").bounding_box()
        assert abs(landed["height"] - reserved["height"]) <= 1
    assert thumbnail.get_attribute("alt").startswith("overhead food")
    expect(card).to_contain_text(preset.name)
    expect(page.locator("#announcer")).to_contain_text("is done")

    # Live by Server-Sent Events, not by polling.
    assert any("/events/jobs?ids=" in url for url in requests)
    assert not any("/jobs/cards" in url or url.endswith("/card") for url in requests)

    source = thumbnail.get_attribute("src")
    page.get_by_role("link", name="Gallery").click()
    expect(page).to_have_url(page.url.split("/gallery")[0] + "/gallery")
    in_gallery = page.locator(f'.gallery-item img[src="{source}"]')
    expect(in_gallery).to_be_visible()


def test_sizes_are_shapes_and_custom_sizes_are_checked_in_the_browser(
    page: Any, emulator_m: RunningEmulator
) -> None:
    from playwright.sync_api import expect

    before = runs(emulator_m)
    portrait = page.locator(".size-option", has_text="Portrait 9:16")
    expect(portrait).to_contain_text("1440×2560")
    view_box = portrait.locator("svg").get_attribute("viewBox")
    assert view_box == "0 0 1440 2560"

    page.locator("#prompt").fill("a tall lighthouse")
    page.locator(".size-option", has_text="Custom size").click()
    expect(page.locator("#customWidth")).to_be_visible()
    page.locator("#customWidth").fill("1000")
    page.locator("#customHeight").fill("1000")
    error = page.locator("#customHeight-error")
    expect(error).to_contain_text("1,000,000 pixels")
    page.get_by_role("button", name=re.compile("^Generate")).click()
    expect(page.locator("#customHeight")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#customHeight")).to_be_focused()
    # The shape follows what was typed.
    assert page.locator("[data-custom-shape]").get_attribute("viewBox") == "0 0 1000 1000"

    page.locator("#customWidth").fill("1000000")
    expect(page.locator("#customWidth-error")).to_be_visible()
    assert runs(emulator_m) == before, "nothing invalid reaches PixelDojo"

    # Past the browser (whitespace fills a required field), the server says the same, inline.
    page.locator(".size-option", has_text="Square HD").click()
    expect(page.locator("#customWidth")).to_be_hidden()
    page.locator("#prompt").fill("   ")
    page.get_by_role("button", name=re.compile("^Generate")).click()
    expect(page.locator("#prompt-error")).to_have_text("must not be empty")
    expect(page.locator(".form-error")).to_contain_text("nothing was sent to PixelDojo")
    assert runs(emulator_m) == before


def test_counter_cost_seed_lock_and_ctrl_enter(
    page: Any, app_m: RunningApp, emulator_m: RunningEmulator
) -> None:
    from playwright.sync_api import expect

    prompt = page.locator("#prompt")
    prompt.fill("a red kite over the dunes")
    expect(page.locator("[data-prompt-count]")).to_have_text("25 / 4000 characters")
    page.locator("#num_images").fill("3")
    expect(page.locator("[data-cost]")).to_have_text("· 3 credits")
    page.locator("#num_images").fill("1")

    page.locator("#settings").get_by_role("button", name="New seed").click()
    seed = page.locator("#seed").input_value()
    assert seed.isdigit()
    expect(page.get_by_label("Keep this seed for every run")).to_be_checked()

    before = runs(emulator_m)
    prompt.press("Control+Enter")
    wait_until(lambda: runs(emulator_m) == before + 1, what="the seeded run")
    assert emulator_m.emulator.requests_to("run")[-1].body["seed"] == int(seed)
    expect(page.locator("#seed")).to_have_value(seed)  # locked: kept for the next run

    page.get_by_label("Keep this seed for every run").uncheck()
    expect(page.locator("#seed")).to_be_disabled()
    prompt.press("Control+Enter")
    wait_until(lambda: runs(emulator_m) == before + 2, what="the random run")
    # Random: the app draws a new seed, sends it and records it.
    random_seed = emulator_m.emulator.requests_to("run")[-1].body["seed"]
    assert random_seed != int(seed)


def test_try_all_presets_confirms_the_cost_then_compares_the_eight(
    page: Any, emulator_m: RunningEmulator
) -> None:
    from playwright.sync_api import expect

    before = runs(emulator_m)
    page.get_by_role("button", name=re.compile("^Try all 8 presets")).click()
    dialog = page.get_by_role("dialog", name="Try all 8 presets?")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("8 credits")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert runs(emulator_m) == before

    page.get_by_role("button", name=re.compile("^Try all 8 presets")).click()
    dialog.get_by_role("button", name="Submit 8 jobs").click()
    comparison = page.locator("#comparison")
    expect(comparison.locator(".job-card")).to_have_count(8)
    expect(dialog).to_be_hidden()
    for preset in PRESETS:
        expect(comparison).to_contain_text(preset.name)
    expect(comparison.locator(".job-card[data-status=completed]")).to_have_count(
        8, timeout=DONE_TIMEOUT
    )
    expect(comparison.locator("img")).to_have_count(8)
    assert runs(emulator_m) == before + 8


def test_team_presets_are_saved_listed_loaded_and_deleted(page: Any, app_m: RunningApp) -> None:
    from playwright.sync_api import expect

    page.get_by_role("link", name="Cyberpunk street").click()
    expect(page.locator("#prompt")).to_have_value(re.compile("^neon-soaked"))
    page.locator("#prompt").fill("neon alley, but in the snow")
    page.locator(".size-option", has_text="Square HD").click()

    page.get_by_role("button", name="Save as team preset").click()
    dialog = page.get_by_role("dialog", name="Save as team preset")
    dialog.get_by_role("button", name="Save preset").click()
    expect(dialog.get_by_label("Name")).to_have_attribute("aria-invalid", "true")  # required

    dialog.get_by_label("Name").fill("Snowy neon")
    dialog.get_by_label("Description").fill("Cyberpunk, winter edition.")
    dialog.get_by_role("button", name="Save preset").click()
    expect(dialog).to_be_hidden()
    team = page.locator("#team-presets")
    expect(team.get_by_role("link", name=re.compile("Snowy neon"))).to_be_visible()
    expect(page.locator(".toast")).to_contain_text("Snowy neon")

    saved = app_m.client.get("/api/team-presets").json()
    assert [
        (p["name"], p["parameters"]["prompt"], p["parameters"]["image_size"]) for p in saved
    ] == [("Snowy neon", "neon alley, but in the snow", "square_hd")]

    # The same name again is refused, inline, and nothing is duplicated.
    page.get_by_role("button", name="Save as team preset").click()
    dialog.get_by_label("Name").fill("snowy NEON")
    dialog.get_by_role("button", name="Save preset").click()
    expect(dialog.locator("#preset-name-error")).to_contain_text("exists")
    dialog.get_by_role("button", name="Cancel").click()

    page.reload()
    wait_for_htmx(page)
    page.get_by_role("link", name=re.compile("Snowy neon")).click()
    expect(page.locator("#prompt")).to_have_value("neon alley, but in the snow")
    expect(page.locator("input[name=image_size][value=square_hd]")).to_be_checked()

    page.once("dialog", lambda prompt: prompt.accept())
    team.get_by_role("button", name="Delete Snowy neon").click()
    expect(team.get_by_role("link", name=re.compile("Snowy neon"))).to_have_count(0)
    assert app_m.client.get("/api/team-presets").json() == []


def test_the_code_examples_follow_the_form_and_never_show_the_key(
    page: Any, app_m: RunningApp
) -> None:
    from playwright.sync_api import expect

    page.get_by_role("link", name="Dramatic landscape").click()
    expect(page.locator("#prompt")).to_have_value(re.compile("^epic mountain"))
    page.locator("#code-panel summary").click()
    curl = page.locator("#code-curl")
    # The configured PixelDojo (here the emulator; https://pixeldojo.ai/api/v1 by default).
    expect(curl).to_contain_text(f"{app_m.settings.pixeldojo_base_url}/models/seedream-4/run")
    body = PRESETS_BY_SLUG["dramatic-landscape"].params().upstream_body()
    expect(curl).to_contain_text(json.dumps(body))
    expect(curl).to_contain_text("Bearer $PIXELDOJO_API_KEY")

    page.locator("#prompt").fill("a quiet fjord")
    expect(curl).to_contain_text('"prompt": "a quiet fjord"')
    tab = page.get_by_role("tab", name="curl")
    tab.focus()
    tab.press("ArrowRight")
    python = page.get_by_role("tabpanel", name="Python")
    expect(python).to_be_visible()
    expect(python).to_contain_text("httpx.post(")
    expect(python).to_contain_text("os.environ['PIXELDOJO_API_KEY']")
    page.get_by_role("tab", name="JavaScript").click()
    expect(page.get_by_role("tabpanel", name="JavaScript")).to_contain_text("await fetch(")
    assert TEST_KEY not in page.content()

    page.locator("#prompt").fill("")
    expect(page.locator(".code-errors")).to_contain_text("prompt")


def test_failures_are_toasts_and_announcements(page: Any, emulator_m: RunningEmulator) -> None:
    from playwright.sync_api import expect

    from app.emulator import Fault

    page.locator("#prompt").fill("a storm at sea [[fail]]")
    page.get_by_role("button", name=re.compile("^Generate")).click()
    card = page.locator(".job-card").first
    expect(card).to_have_attribute("data-status", "failed", timeout=DONE_TIMEOUT)
    expect(card.locator(".job-error")).to_contain_text("PixelDojo")
    expect(page.locator(".toast-error").last).to_contain_text("failed")
    expect(page.locator("#announcer")).to_contain_text("failed")

    # PixelDojo refusing the submission itself: the card comes back failed at once.
    emulator_m.emulator.faults.add(Fault(route="run", status=403))
    page.locator("#prompt").fill("refused at the door")
    page.get_by_role("button", name=re.compile("^Generate")).click()
    expect(page.locator(".job-card").first).to_contain_text("refused at the door")
    expect(page.locator(".job-card").first).to_have_attribute("data-status", "failed")
    expect(page.locator(".toast-error").last).to_contain_text("PixelDojo")

    # The server gone: the form is kept and the page says so.
    page.context.set_offline(True)
    page.get_by_role("button", name=re.compile("^Generate")).click()
    expect(page.locator("#connection")).to_contain_text("Offline")
    expect(page.locator(".toast-error").last).to_contain_text("cannot be reached")
    expect(page.locator("#prompt")).to_have_value("refused at the door")
    page.context.set_offline(False)


def test_everything_works_from_the_keyboard(page: Any, emulator_m: RunningEmulator) -> None:
    from playwright.sync_api import expect

    def tab_to(selector: str, limit: int = 60) -> None:
        for _ in range(limit):
            page.keyboard.press("Tab")
            if page.evaluate("s => document.activeElement.matches(s)", selector):
                return
        raise AssertionError(f"Tab never reached {selector}")

    page.keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()
    tab_to('[data-preset="wedding-portrait"]')
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "the focused control must show it"
    page.keyboard.press("Enter")
    expect(page.locator("#prompt")).to_have_value(re.compile("^wedding portrait"))

    tab_to("#prompt")
    page.keyboard.press("End")
    page.keyboard.type(", in the rain")
    tab_to("input[name=image_size]:checked")
    page.keyboard.press("ArrowRight")  # radio groups move with the arrow keys
    expect(page.locator("input[name=image_size][value=portrait_16_9]")).to_be_checked()

    # The try-all dialog opens and closes with the keyboard, and costs nothing.
    before = runs(emulator_m)
    page.keyboard.press("Shift+Tab")
    tab_to("[data-open-dialog=try-all-dialog]", limit=80)
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog", name="Try all 8 presets?")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog", name="Try all 8 presets?")).to_be_hidden()

    tab_to("#prompt", limit=80)
    page.keyboard.press("Control+Enter")
    card = page.locator(".job-card").first
    expect(card).to_contain_text("in the rain")
    expect(card).to_have_attribute("data-status", "completed", timeout=DONE_TIMEOUT)
    assert runs(emulator_m) == before + 1
    assert emulator_m.emulator.requests_to("run")[-1].body["image_size"] == "portrait_16_9"


def test_the_browser_checks_the_live_schema_s_limits(
    browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Narrowed upstream: the form offers no auto_4K, and the browser refuses a fifth image
    and a 2,001st character with the numbers the server rendered, before anything is sent."""
    from playwright.sync_api import expect

    narrow = {
        "num_images": {"maximum": 4},
        "image_size": {"enum": ["auto_2K", "square_hd", "custom"]},
        "prompt": {"maxLength": 2000},
    }
    data_dir = tmp_path_factory.mktemp("narrow") / "data"
    with (
        serve_emulator(schema_overrides=narrow) as upstream,
        serve_app(make_settings(data_dir, upstream)) as app,
    ):
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.goto(app.url + "/")
        wait_for_htmx(page)
        expect(page.locator("#rules-status")).to_contain_text("rules: live, fetched")
        offered = page.locator("input[name=image_size]")
        expect(offered).to_have_count(3)
        assert page.locator("input[name=image_size][value=auto_4K]").count() == 0
        page.locator("#prompt").fill("x" * 2100)
        expect(page.locator("[data-prompt-count]")).to_have_text("2000 / 2000 characters")
        page.locator("#prompt").fill("a red kite")
        page.locator("#num_images").fill("5")
        expect(page.locator("#num_images-error")).to_be_visible()
        expect(page.locator("#num_images")).to_have_attribute("aria-invalid", "true")
        upstream.emulator.reset_log()
        page.locator("#prompt").press("Control+Enter")
        expect(page.locator("#num_images-error")).to_be_visible()
        assert upstream.emulator.requests_to("run") == [], "the browser stopped it"
        page.locator("#num_images").fill("4")
        page.locator("#prompt").press("Control+Enter")
        wait_until(lambda: upstream.emulator.requests_to("run"), what="the 4-image run")
        assert upstream.emulator.requests_to("run")[0].body["num_images"] == 4
        context.close()
