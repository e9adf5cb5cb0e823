"""Images served by redirect to an S3 store show in a real browser, under the pages' CSP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.apps import make_settings, serve_app
from tests.support.browser import csp_violations, record_csp_violations
from tests.support.emulators import RunningEmulator
from tests.support.jobs import wait_for_job
from tests.support.stores import S3Bucket

pytestmark = pytest.mark.browser


def test_pages_show_images_and_thumbnails_from_the_bucket_under_the_strict_csp(
    browser: Any, s3_bucket: S3Bucket, tmp_path: Path, emulator: RunningEmulator
) -> None:
    settings = make_settings(
        tmp_path / "data", emulator, s3_redirect_seconds=300, **s3_bucket.settings()
    )
    with serve_app(settings) as app:
        answer = app.client.post("/api/jobs", json={"prompt": "a wren on a gate"})
        job = wait_for_job(app.client, answer.json()["id"])
        image_id = job["images"][0]["id"]
        context = browser.new_context()
        record_csp_violations(context)
        page = context.new_page()
        from_bucket: list[str] = []
        page.on(
            "response",
            lambda response: (
                from_bucket.append(response.url)
                if response.url.startswith(s3_bucket.endpoint_url) and response.status == 200
                else None
            ),
        )
        try:
            sha = job["images"][0]["sha256"]
            for path, src, key in (
                ("/gallery", f"/api/images/{image_id}/thumbnail", f"/thumbnails/{sha}"),
                (f"/jobs/{job['id']}", f"/api/images/{image_id}", f"/images/{sha}"),
            ):
                page.goto(app.url + path)
                image = page.locator(f"img[src='{src}']").first
                image.scroll_into_view_if_needed()
                page.wait_for_function(
                    "img => img.complete && img.naturalWidth > 0", arg=image.element_handle()
                )
                assert csp_violations(page) == []
                assert any(key in url for url in from_bucket), (key, from_bucket)
        finally:
            context.close()
