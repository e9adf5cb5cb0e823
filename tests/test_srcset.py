"""The renditions a page offers for an image (app/web/srcset.py): the thumbnail, the
preview for an image larger than one, and the image itself, each at its width; the job
card and compare offer them all."""

from __future__ import annotations

from pathlib import Path

from app.web.srcset import image_srcset
from tests.support.apps import in_process, make_settings
from tests.support.emulators import RunningEmulator
from tests.support.jobs import wait_for_job
from tests.support.markup import one


def test_each_rendition_is_offered_at_its_width() -> None:
    assert image_srcset(7, 2560, 1440) == (
        "/api/images/7/thumbnail 512w, /api/images/7/preview 1024w, /api/images/7 2560w"
    )
    assert image_srcset(7, 1440, 2560) == (
        "/api/images/7/thumbnail 288w, /api/images/7/preview 576w, /api/images/7 1440w"
    )


def test_an_image_no_larger_than_a_preview_is_its_own() -> None:
    assert image_srcset(7, 1024, 768) == "/api/images/7/thumbnail 512w, /api/images/7 1024w"
    assert image_srcset(7, 512, 512) == "", "the thumbnail is the image's size: no choice"


def test_the_job_card_and_compare_offer_the_preview(
    tmp_path: Path, emulator: RunningEmulator
) -> None:
    with in_process(make_settings(tmp_path / "data", emulator)) as client:
        body = {"prompt": "a wide shore", "image_size": "landscape_16_9", "num_images": 2}
        job = wait_for_job(client, client.post("/api/jobs", json=body).json()["id"])
        first, second = (image["id"] for image in job["images"])
        expected = image_srcset(first, 2560, 1440)
        assert "/preview 1024w" in expected

        card = one(client.get("/").text, f"#job-image-{first} img")
        assert card.get("srcset") == expected
        compared = client.get(f"/compare?ids={first}&ids={second}").text
        assert one(compared, f'figure[data-image-id="{first}"] img').get("srcset") == expected
