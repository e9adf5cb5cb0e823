"""The README's screenshots, made again from scratch: `python -m tests.support.screenshots`.

Starts the PixelDojo emulator and the app on loopback ports with a fresh data dir,
makes a small gallery through the app (one job per preset, so each preset shows its
latest image, then a finished four-image job), and photographs in Debian's Chromium:

- the playground with the four-image job in its output,
- the try-all grid, after confirming the dialog,
- the gallery,

each at 1280×800 and 390×844, light and dark, into docs/screenshots/ (or `--out DIR`);
then a phone right after Generate, the new job's progress in view.
The browser tests use the same seeding (tests/test_browser_canvas.py).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from app.domain.presets import PRESETS
from app.emulator import API_PREFIX
from tests.support.apps import RunningApp, make_settings, serve_app
from tests.support.browser import CHROMIUM_ARGS, chromium_path
from tests.support.emulators import serve_emulator
from tests.support.jobs import wait_for_job

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
VIEWPORTS = {"1280": DESKTOP, "390": PHONE}
THEMES = ("light", "dark")
DONE_MS = 30_000

FOUR_IMAGES = {
    "prompt": "a paper lantern festival over a river at dusk, long exposure, warm reflections",
    "image_size": "square_hd",
    "num_images": 4,
    "seed": 20240,
}


def seed_gallery(client: httpx.Client) -> dict[str, Any]:
    """One finished job per preset (so every preset has a thumbnail), then a four-image
    job: the newest, so the playground shows it in its output. Returns that job."""
    for preset in PRESETS:
        body = {**preset.params().upstream_body(), "preset": preset.slug}
        job = client.post("/api/jobs", json=body).json()
        assert wait_for_job(client, job["id"], timeout=60)["status"] == "completed"
    job = client.post("/api/jobs", json=FOUR_IMAGES).json()
    done = wait_for_job(client, job["id"], timeout=60)
    assert done["status"] == "completed", done
    return done


@contextmanager
def sample_site(data_dir: Path, *, job_seconds: float = 0.3) -> Iterator[RunningApp]:
    with (
        serve_emulator(job_seconds=job_seconds) as emulator,
        serve_app(make_settings(data_dir, emulator)) as app,
    ):
        yield app


def wait_for_images(page: Any) -> None:
    """Every image on the page decoded (lazy ones included, once in view), the full-size
    ones the output switches to included."""
    page.wait_for_load_state("networkidle")
    page.wait_for_function(
        "() => [...document.images]"
        ".filter(i => i.loading !== 'lazy' || i.getBoundingClientRect().top < innerHeight)"
        ".every(i => i.complete && i.naturalWidth > 0)",
        timeout=DONE_MS,
    )


def run_try_all(page: Any) -> None:
    page.get_by_role("button", name=re.compile("^Try all")).click()
    page.get_by_role("button", name=re.compile("^Submit")).click()
    page.locator("#comparison .job-card").first.wait_for()
    page.wait_for_function(
        "() => document.querySelectorAll('#comparison .job-card[data-status=completed]').length"
        " === document.querySelectorAll('#comparison .job-card').length",
        timeout=DONE_MS,
    )


def shoot(app: RunningApp, out: Path, browser: Any) -> list[Path]:
    written = []
    # The playground first, everywhere: each try-all run adds newer jobs to the output.
    for phase in ("playground", "try-all", "gallery"):
        for theme in THEMES:
            for width, viewport in VIEWPORTS.items():
                context = browser.new_context(
                    viewport=viewport, color_scheme=theme, reduced_motion="reduce"
                )
                page = context.new_page()
                page.goto(app.url + ("/gallery" if phase == "gallery" else "/"))
                page.wait_for_function("() => window.htmx !== undefined")
                wait_for_images(page)
                path = out / f"{phase}-{theme}-{width}.png"
                if phase == "try-all":
                    run_try_all(page)
                    page.locator("#comparison").scroll_into_view_if_needed()
                    wait_for_images(page)
                    page.locator("#comparison").screenshot(path=str(path))
                else:
                    page.screenshot(path=str(path))
                written.append(path)
                context.close()
    written += shoot_generating(app, out, browser)
    return written


def shoot_generating(app: RunningApp, out: Path, browser: Any) -> list[Path]:
    """A phone the moment after Generate: the new job's progress in view, where it lands."""
    emulator_url = app.settings.pixeldojo_base_url.removesuffix(API_PREFIX)
    written = []
    # Slow enough to be photographed while it runs.
    httpx.post(emulator_url + "/_emulator/config", json={"job_seconds": 6}).raise_for_status()
    try:
        for theme in THEMES:
            context = browser.new_context(
                viewport=PHONE, color_scheme=theme, reduced_motion="reduce"
            )
            page = context.new_page()
            page.goto(app.url + "/")
            page.wait_for_function("() => window.htmx !== undefined")
            wait_for_images(page)
            page.locator("#prompt").fill("a red kite over the dunes at noon, wide shot")
            page.locator(".generate-button").click()
            page.wait_for_function(
                "() => { const p = document.querySelector("
                "'#output .job-card[data-running] [data-progress]');"
                " if (!p) return false; const r = p.getBoundingClientRect();"
                " return r.top >= 0 && r.bottom <= innerHeight; }",
                timeout=DONE_MS,
            )
            path = out / f"playground-generating-{theme}-390.png"
            page.screenshot(path=str(path))
            written.append(path)
            context.close()
    finally:
        httpx.post(emulator_url + "/_emulator/config", json={"job_seconds": 0.3}).raise_for_status()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the PNGs")
    args = parser.parse_args(argv)
    path = chromium_path()
    if path is None:
        raise SystemExit("Needs Debian's chromium (apt install chromium).")
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch, sample_site(Path(scratch) / "data") as app:
        seed_gallery(app.client)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
            try:
                written = shoot(app, args.out, browser)
            finally:
                browser.close()
    for written_path in written:
        print(written_path.relative_to(ROOT) if written_path.is_relative_to(ROOT) else written_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
