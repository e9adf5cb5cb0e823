"""The README's pictures of a grid and its contact sheet, made from a real run.

    python -m tests.docs_screenshots      # writes docs/screenshots/grid-*.png

It starts the emulator and the app on loopback with a throwaway data dir, makes a
grid of two presets by three seeds, and photographs the grid page in Chromium and
downloads the contact sheet the server draws. The browser test of grids
(tests/test_grid_browser.py) runs the same steps into test-artifacts/.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.browser import CHROMIUM_ARGS, ROOT, wait_for_htmx
from tests.conftest import (
    RunningApp,
    chromium_path,
    make_settings,
    serve_app,
    serve_emulator,
    wait_until,
)

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


def main() -> int:
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
            for saved in photograph(browser, app, make_grid(app), DOCS_DIR):
                print(saved)
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
