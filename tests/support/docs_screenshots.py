"""The README's pictures, made from a real run.

    python -m tests.support.docs_screenshots [grid] [references]
        # writes docs/screenshots/grid-*.png, models-*.png and reference-dialog-*.png
        # (all of them, or those named)

It starts the emulator and the app on loopback with a throwaway data dir, then:
- makes a grid of two presets by three seeds, photographs the grid page in Chromium
  and downloads the contact sheet the server draws;
- picks the edit model in the playground and a gallery image in the reference dialog,
  and photographs the dialog and the form, at 1280 and 390 px, light and dark.
The browser tests (tests/test_grid_browser.py, tests/test_browser_references.py) run
the same steps into test-artifacts/.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from app.emulator.catalogue import SEEDREAM_EDIT
from tests.support.apps import RunningApp, make_settings, serve_app
from tests.support.browser import CHROMIUM_ARGS, ROOT, chromium_path, wait_for_htmx
from tests.support.emulators import serve_emulator
from tests.support.jobs import wait_for_job
from tests.support.waiting import wait_until

DOCS_DIR = ROOT / "docs" / "screenshots"
GRID = {
    "parameters": {"prompt": "a lighthouse at dawn", "num_images": 1},
    "axes": [
        {"param": "preset", "values": ["cyberpunk-street", "dramatic-landscape"]},
        {"param": "seed", "values": [101, 202, 303]},
    ],
}


def make_grid(app: RunningApp) -> int:
    made = app.client.post("/api/grids", json=GRID)
    assert made.status_code == 202, made.text
    grid_id: int = made.json()["id"]
    wait_until(
        lambda: app.client.get(f"/api/grids/{grid_id}").json()["finished"],
        timeout=60,
        what=f"grid {grid_id} to fill in",
    )
    return grid_id


def photograph(browser: Any, app: RunningApp, grid_id: int, folder: Path) -> list[Path]:
    """The grid page (1280 px, light) and its contact sheet, saved into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    page_shot = folder / "grid-light-1280.png"
    sheet = folder / "grid-contact-sheet.png"
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, color_scheme="light", reduced_motion="reduce"
    )
    page = context.new_page()
    page.goto(f"{app.url}/grids/{grid_id}")
    wait_for_htmx(page)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.grid-cell img')]"
        ".every(img => img.complete && img.naturalWidth > 0)"
    )
    page.screenshot(path=str(page_shot), full_page=True)
    context.close()
    sheet.write_bytes(app.client.get(f"/api/grids/{grid_id}/contact-sheet.png").content)
    return [page_shot, sheet]


# --- Models and reference images ---------------------------------------------------------

REFERENCE_GALLERY = (
    ("a lighthouse at dawn, watercolour", "landscape_4_3"),
    ("a green glass bottle on a white table, product shot", "portrait_4_3"),
    ("a bottle of olive oil in morning light, still life", "square"),
)
EDIT_PROMPT = "the same bottle on a marble counter, soft window light"
SIZES = {1280: 900, 390: 844}


def make_reference_gallery(app: RunningApp) -> dict[str, int]:
    """A few images to pick references from: prompt -> image id."""
    made = {}
    for prompt, size in REFERENCE_GALLERY:
        answer = app.client.post("/api/jobs", json={"prompt": prompt, "image_size": size})
        made[prompt] = wait_for_job(app.client, answer.json()["id"])["images"][0]["id"]
    return made


def pick_edit_model(page: Any) -> None:
    page.locator("#model").select_option(SEEDREAM_EDIT)
    page.locator("#references").wait_for()
    wait_for_htmx(page)


def open_reference_dialog(page: Any, words: str) -> Any:
    """Open the dialog and search it; returns the dialog once only matches are offered."""
    page.get_by_role("button", name="Pick from gallery…").click()
    dialog = page.locator("#reference-dialog")
    dialog.wait_for(state="visible")
    dialog.locator("[data-reference-choice]").first.wait_for()
    dialog.get_by_label("Search the gallery by prompt").fill(words)
    page.wait_for_function(
        "words => { const imgs = [...document.querySelectorAll("
        "'#reference-dialog [data-reference-choice] img')];"
        " return imgs.length > 0 && imgs.every(img => img.alt.includes(words)"
        " && img.complete && img.naturalWidth > 0); }",
        arg=words,
    )
    return dialog


def photograph_references(browser: Any, app: RunningApp, folder: Path) -> list[Path]:
    """The reference dialog with a picture picked, and the form with the edit model and its
    reference: 1280 and 390 px wide, light and dark."""
    folder.mkdir(parents=True, exist_ok=True)
    bottle = next(
        image_id for prompt, image_id in make_reference_gallery(app).items() if "green" in prompt
    )
    saved: list[Path] = []
    for width, height in SIZES.items():
        for theme in ("light", "dark"):
            context = browser.new_context(
                viewport={"width": width, "height": height},
                color_scheme=theme,
                reduced_motion="reduce",
            )
            page = context.new_page()
            page.goto(app.url + "/")
            wait_for_htmx(page)
            pick_edit_model(page)
            page.locator("#prompt").fill(EDIT_PROMPT)
            dialog = open_reference_dialog(page, "bottle")
            dialog.locator(f'[data-reference-choice="{bottle}"]').click()
            shot = folder / f"reference-dialog-{theme}-{width}.png"
            page.screenshot(path=str(shot))
            saved.append(shot)
            dialog.get_by_role("button", name="Use selected").click()
            dialog.wait_for(state="hidden")
            page.wait_for_function(
                "() => [...document.querySelectorAll('#references img')]"
                ".every(img => img.complete && img.naturalWidth > 0)"
            )
            shot = folder / f"models-{theme}-{width}.png"
            page.locator("#generate-form").screenshot(path=str(shot))
            saved.append(shot)
            context.close()
    return saved


def main(argv: list[str] | None = None) -> int:
    wanted = set(sys.argv[1:] if argv is None else argv) or {"grid", "references"}
    if wanted - {"grid", "references"}:
        print("Name grid, references, or nothing for both.", file=sys.stderr)
        return 2
    path = chromium_path()
    if path is None:
        print("Needs Debian's chromium (apt install chromium).", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    with (
        tempfile.TemporaryDirectory() as scratch,
        serve_emulator(job_seconds=0.3) as emulator,
        serve_app(make_settings(Path(scratch) / "data", emulator)) as app,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            if "grid" in wanted:
                for saved in photograph(browser, app, make_grid(app), DOCS_DIR):
                    print(saved)
            if "references" in wanted:
                for saved in photograph_references(browser, app, DOCS_DIR):
                    print(saved)
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
