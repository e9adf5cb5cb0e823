"""Prompts are user text: in headless Chromium, hostile prompts show as text and run nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.features.models import team_presets
from app.storage.db.engine import Database
from tests.support.apps import RunningApp, make_settings, serve_app
from tests.support.browser import wait_for_htmx
from tests.support.emulators import serve_emulator
from tests.support.jobs import wait_for_job

pytestmark = pytest.mark.browser

HOSTILE_PROMPTS = (
    "<script>window.__pwned = 'script'</script> a fox",
    '" onmouseover="window.__pwned = \'attribute\'" x="',
    "<img src=x onerror=\"window.__pwned = 'image'\"> a cat",
    "{{ 7 * 7 }} </textarea><b>bold</b>",
)


@pytest.fixture(scope="module")
def hostile_site(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunningApp, list[int]]]:
    data_dir: Path = tmp_path_factory.mktemp("escaping") / "data"
    with serve_emulator() as emulator, serve_app(make_settings(data_dir, emulator)) as app:
        ids = [
            app.client.post("/api/jobs", json={"prompt": p}).json()["id"] for p in HOSTILE_PROMPTS
        ]
        for job_id in ids:
            wait_for_job(app.client, job_id)
        db = Database.at_path(app.settings.database_path)
        team_presets.create_preset(
            db,
            name="<script>window.__pwned='preset'</script>",
            description="\" onmouseover=\"window.__pwned='description'",
            parameters={"prompt": HOSTILE_PROMPTS[0]},
        )
        db.dispose()
        yield app, ids


def test_hostile_prompts_render_as_text_on_every_page_that_shows_them(
    browser: Any, hostile_site: tuple[RunningApp, list[int]]
) -> None:
    app, ids = hostile_site
    context = browser.new_context()
    page = context.new_page()
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    images = [app.client.get(f"/api/jobs/{job_id}").json()["images"][0]["id"] for job_id in ids]
    pages = [
        "/",
        "/gallery",
        "/gallery?q=fox",
        "/compare?" + "&".join(f"ids={image_id}" for image_id in images),
        "/usage",
        *[f"/jobs/{job_id}" for job_id in ids],
    ]
    for path in pages:
        page.goto(app.url + path)
        wait_for_htmx(page)
        # Hover over everything that could carry an injected handler.
        for element in page.locator(".job-card, .gallery-item, .team-preset, dd, p").all()[:60]:
            if element.is_visible():
                element.hover()
        assert page.evaluate("window.__pwned") is None, f"script ran on {path}"
        handlers = page.evaluate(
            "[...document.querySelectorAll('*')].flatMap(e => [...e.attributes]"
            ".filter(a => a.name.startsWith('on')).map(a => e.tagName + ' ' + a.name))"
        )
        assert handlers == [], f"{path}: injected attributes {handlers}"
        injected = page.evaluate(
            "[...document.querySelectorAll('script:not([src]), b, img[src=x]')].length"
        )
        assert injected == 0, f"{path}: prompt markup became elements"
    # The lightbox, opened from the gallery, shows each prompt as text too.
    page.goto(app.url + "/gallery")
    wait_for_htmx(page)
    page.locator(".gallery-item a").first.click()
    page.wait_for_selector("dialog[open]")
    assert page.evaluate("window.__pwned") is None
    assert page.locator("dialog[open] script:not([src]), dialog[open] b").count() == 0
    # And the text itself is there, as text.
    page.goto(app.url + f"/jobs/{ids[0]}")
    assert (
        "<script>window.__pwned = 'script'</script> a fox"
        in page.locator(".params-prompt").inner_text()
    )
    page.goto(app.url + "/")
    assert "<script>window.__pwned='preset'</script>" in page.locator("body").inner_text()
    assert dialogs == []
    context.close()
