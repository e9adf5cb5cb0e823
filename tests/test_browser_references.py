"""In Chromium: pick an edit model, pick a gallery image in the reference dialog, submit, and
see the reference on the job page; the picker and the dialog pass axe under the strict CSP
and fit a phone. The README's pictures are made by the same steps
(tests/support/docs_screenshots.py)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.apps import RunningApp, make_settings, serve_app
from tests.support.browser import (
    ROOT,
    axe_violations,
    csp_violations,
    horizontal_overflow,
    record_csp_violations,
    wait_for_htmx,
)
from tests.support.docs_screenshots import (
    make_reference_gallery,
    open_reference_dialog,
    photograph_references,
    pick_edit_model,
)
from tests.support.emulators import RunningEmulator, serve_emulator

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts" / "screenshots" / "references"


@pytest.fixture(scope="module")
def upstream() -> Iterator[RunningEmulator]:
    with serve_emulator() as running:
        yield running


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, upstream: RunningEmulator
) -> Iterator[RunningApp]:
    data = tmp_path_factory.mktemp("browser-references") / "data"
    with serve_app(make_settings(data, upstream)) as running:
        make_reference_gallery(running)
        yield running


def bottle_image_id(app: RunningApp) -> int:
    found = app.client.get("/api/gallery", params={"q": "green glass bottle"}).json()["items"]
    return int(found[0]["id"])


def test_pick_a_reference_in_the_dialog_submit_and_see_it_on_the_job_page(
    browser: Any, site: RunningApp, upstream: RunningEmulator
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, reduced_motion="reduce")
    record_csp_violations(context)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(site.url + "/")
    wait_for_htmx(page)
    pick_edit_model(page)
    page.locator("#prompt").fill("the same bottle on a marble counter")
    dialog = open_reference_dialog(page, "bottle")
    assert axe_violations(page) == [], "the dialog passes axe"
    bottle = bottle_image_id(site)
    choice = dialog.locator(f'[data-reference-choice="{bottle}"]')
    choice.click()
    assert choice.get_attribute("aria-pressed") == "true"
    dialog.get_by_role("button", name="Use selected").click()
    dialog.wait_for(state="hidden")
    row = page.locator("#references [data-reference-list] li")
    assert row.count() == 1
    assert row.locator("input").get_attribute("value") == str(bottle)

    upstream.emulator.received_references.clear()
    page.get_by_role("button", name=re.compile("^Generate")).click()
    card = page.locator(".job-card", has_text="the same bottle on a marble counter")
    card.wait_for()
    card.locator("a").first.click()
    page.wait_for_url(re.compile(r"/jobs/\d+$"))
    references = page.get_by_role("region", name="References")
    link = references.locator(f'a[href="/api/images/{bottle}"]')
    link.wait_for()
    assert link.locator("img").get_attribute("alt") == f"Reference 1: gallery image {bottle}"
    page.wait_for_function(
        "() => [...document.querySelectorAll('.reference-thumbs img')]"
        ".every(img => img.complete && img.naturalWidth > 0)"
    )
    (received,) = upstream.emulator.received_references
    stored = site.client.get(f"/api/images/{bottle}").content
    assert received.sent_as == "data" and received.sha256 == hashlib.sha256(stored).hexdigest()
    assert csp_violations(page) == []
    assert errors == []
    context.close()


def test_the_picker_and_the_dialog_fit_a_phone_and_are_photographed(
    browser: Any, site: RunningApp
) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, color_scheme="dark")
    record_csp_violations(context)
    page = context.new_page()
    page.goto(site.url + "/")
    wait_for_htmx(page)
    pick_edit_model(page)
    assert horizontal_overflow(page) == 0
    open_reference_dialog(page, "bottle")
    assert horizontal_overflow(page) == 0
    assert axe_violations(page) == []
    assert csp_violations(page) == []
    context.close()
    # The README's pictures, by the same steps, into test-artifacts/.
    saved = photograph_references(browser, site, ARTIFACTS)
    assert sorted(path.name for path in saved) == sorted(
        f"{kind}-{theme}-{width}.png"
        for kind in ("models", "reference-dialog")
        for theme in ("light", "dark")
        for width in (1280, 390)
    )
    assert all(path.stat().st_size > 10_000 for path in saved)
