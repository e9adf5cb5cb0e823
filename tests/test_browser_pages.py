"""Every page in headless Chromium: light and dark, wide and phone-sized, audited by axe-core.

Screenshots of each page at 1280 px and 390 px in both themes are saved under
test-artifacts/screenshots (printed at the end of the run).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.domain.presets import PRESETS_BY_SLUG
from app.emulator.catalogue import SEEDREAM_EDIT
from app.features.models import team_presets
from app.storage.db.engine import Database
from tests.support.apps import RunningApp, make_settings, serve_app
from tests.support.browser import (
    ADMIN_NAME,
    ADMIN_PASSWORD,
    PAGES,
    SCREENSHOT_DIR,
    SCREENSHOTS_KEY,
    THEMES,
    WIDTHS,
    SampleSite,
    axe_violations,
    csp_violations,
    horizontal_overflow,
    record_csp_violations,
    sign_in,
    wait_for_htmx,
)
from tests.support.emulators import serve_emulator
from tests.support.jobs import wait_for_job
from tests.support.waiting import wait_until

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningApp, SampleSite]]:
    """An app with a finished job, a failed one and a team preset: every page has content."""
    data_dir = tmp_path_factory.mktemp("pages") / "data"
    with serve_emulator() as emulator, serve_app(make_settings(data_dir, emulator)) as app:
        preset = PRESETS_BY_SLUG["dramatic-landscape"]
        done = app.client.post(
            "/api/jobs", json={**preset.params().upstream_body(), "preset": preset.slug}
        ).json()
        failed = app.client.post(
            "/api/jobs", json={"prompt": "a storm over the harbour [[fail]]", "num_images": 2}
        ).json()
        grid = app.client.post(
            "/api/grids",
            json={
                "parameters": {"prompt": "a harbour at night"},
                # One cell done, one failed: the page shows both.
                "axes": [{"param": "prompt", "values": ["night", "night [[fail]]"]}],
            },
        ).json()
        wait_for_job(app.client, done["id"])
        wait_for_job(app.client, failed["id"])
        wait_until(lambda: app.client.get(f"/api/grids/{grid['id']}").json()["finished"])
        db = Database.at_path(app.settings.database_path)
        team_presets.create_preset(
            db,
            name="Moody harbour",
            description="Night-time harbour scenes in deep blues.",
            parameters={"prompt": "a harbour at night, deep blue", "image_size": "landscape_16_9"},
        )
        db.dispose()
        # The edit model picked once (its schema read, by POST, as its form asks): its page
        # shows its own form from the start.
        read = app.client.post("/upstream/rules/refresh", data={"model": SEEDREAM_EDIT})
        assert read.status_code == 303, read.text
        # Sign-in on: every page, the account and admin ones too, has something to show.
        added = app.client.post(
            "/api/users", json={"name": ADMIN_NAME, "password": ADMIN_PASSWORD, "is_admin": True}
        )
        assert added.status_code == 201, added.text
        yield (
            app,
            SampleSite(completed_job_id=done["id"], failed_job_id=failed["id"], grid_id=grid["id"]),
        )


@pytest.fixture(scope="module")
def screenshot_dir(request: pytest.FixtureRequest) -> Path:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    request.config.stash[SCREENSHOTS_KEY] = SCREENSHOT_DIR
    return SCREENSHOT_DIR


@pytest.mark.parametrize("theme", THEMES)
def test_every_page_passes_axe_fits_a_phone_and_runs_under_a_strict_csp(
    browser: Any, site: tuple[RunningApp, SampleSite], screenshot_dir: Path, theme: str
) -> None:
    app, sample = site
    problems: list[str] = []
    for width in WIDTHS.values():
        context = browser.new_context(
            viewport={"width": width, "height": 900}, color_scheme=theme, reduced_motion="reduce"
        )
        record_csp_violations(context)
        sign_in(context, app.url, ADMIN_NAME, ADMIN_PASSWORD)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error, errors=errors: errors.append(str(error)))
        # No page logs an error to the console either (a refused style, a missing file...),
        # save the error page's own 404, which Chromium reports as a failed load.
        page.on("console", lambda message, errors=errors: _console_error(message, errors))
        for entry in PAGES:
            where = f"{entry.name} ({theme}, {width} px)"
            page.goto(app.url + entry.path(sample))
            wait_for_htmx(page)
            page.evaluate("document.fonts.ready")
            # Before the screenshot and axe: both leave empty style attributes behind.
            inline = page.evaluate(
                "[...document.querySelectorAll('[style], script:not([src])')]"
                ".map(e => e.outerHTML.slice(0, 80))"
            )
            problems += [f"{where}: inline style or script {html}" for html in inline]
            problems += [f"{where}: CSP blocked {line}" for line in csp_violations(page)]
            if horizontal_overflow(page) > 0:
                problems.append(f"{where}: wider than the screen")
            page.screenshot(
                path=str(screenshot_dir / f"{entry.name}-{theme}-{width}.png"), full_page=True
            )
            problems += [f"{where}: {line}" for line in axe_violations(page)]
        problems += [f"{theme}, {width} px: script error {error}" for error in errors]
        context.close()
    assert problems == [], "\n".join(problems)
    for entry in PAGES:
        for width in WIDTHS.values():
            assert (screenshot_dir / f"{entry.name}-{theme}-{width}.png").stat().st_size > 5_000


def _console_error(message: Any, errors: list[str]) -> None:
    where = message.location.get("url", "")
    if message.type != "error" or where.endswith("/no-such-page"):
        return
    errors.append(f"console: {message.text} at {where}")


def test_every_page_fits_a_360_pixel_phone(
    browser: Any, site: tuple[RunningApp, SampleSite]
) -> None:
    app, sample = site
    context = browser.new_context(viewport={"width": 360, "height": 740})
    sign_in(context, app.url, ADMIN_NAME, ADMIN_PASSWORD)
    page = context.new_page()
    too_wide = []
    for entry in PAGES:
        page.goto(app.url + entry.path(sample))
        wait_for_htmx(page)
        if horizontal_overflow(page) > 0:
            too_wide.append(entry.name)
    context.close()
    assert too_wide == []


def test_the_themes_follow_the_system_setting(
    browser: Any, site: tuple[RunningApp, SampleSite]
) -> None:
    app, _ = site
    colours = {}
    for theme in THEMES:
        context = browser.new_context(color_scheme=theme)
        sign_in(context, app.url, ADMIN_NAME, ADMIN_PASSWORD)
        page = context.new_page()
        page.goto(app.url + "/")
        colours[theme] = page.evaluate(
            "() => { const s = getComputedStyle(document.body);"
            " return [s.backgroundColor, s.color]; }"
        )
        context.close()
    light_bg, light_text = colours["light"]
    dark_bg, dark_text = colours["dark"]
    assert light_bg != dark_bg and light_text != dark_text
    # Light is dark text on a light page; dark is the other way round.
    assert _luminance(light_bg) > _luminance(light_text)
    assert _luminance(dark_bg) < _luminance(dark_text)


def _luminance(css_colour: str) -> float:
    red, green, blue = (
        int(part) for part in css_colour[css_colour.index("(") + 1 : -1].split(",")[:3]
    )
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue
