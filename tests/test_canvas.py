"""The playground as a canvas, without a browser: presets' latest images, the preset label's
rule, toasts and Undo for changes to images, wording, navigation and demo-mode credits."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.clock import calendar_at
from app.domain.presets import PRESETS, PRESETS_BY_SLUG
from app.features.gallery.lookups import latest_preset_images
from app.storage.db.engine import Database
from tests.support.apps import RunningApp, make_settings, serve_app
from tests.support.emulators import RunningEmulator
from tests.support.jobs import wait_for_job
from tests.support.markup import one, select

HTMX = {"HX-Request": "true"}


def _token(client: httpx.Client) -> str:
    found = re.search(r'name="submission_token" value="([^"]+)"', client.get("/").text)
    assert found
    return found.group(1)


def _form_post(client: httpx.Client, **fields: str) -> httpx.Response:
    body = {"submission_token": _token(client), "image_size": "square_hd", "num_images": "1"}
    body.update(fields)
    return client.post("/jobs", data=body, headers=HTMX)


def _finished_job(client: httpx.Client, **body: Any) -> dict[str, Any]:
    job = client.post("/api/jobs", json={"prompt": "a test image", **body}).json()
    done = wait_for_job(client, job["id"])
    assert done["status"] == "completed", done
    return done


def _trigger(response: httpx.Response) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(response.headers["HX-Trigger"])
    return parsed


def test_a_job_is_filed_under_a_preset_only_while_its_prompt_is_the_presets_own(
    app: RunningApp,
) -> None:
    preset = PRESETS_BY_SLUG["food-overhead"]
    # Whitespace alone does not make a prompt one's own.
    kept = _form_post(app.client, prompt=f"  {preset.prompt}\n", preset=preset.slug)
    own = _form_post(app.client, prompt=preset.prompt + ", but blue", preset=preset.slug)
    assert kept.status_code == own.status_code == 200
    jobs = {job["parameters"]["prompt"].strip(): job for job in _jobs(app)}
    assert jobs[preset.prompt]["preset"] == preset.slug
    assert jobs[preset.prompt + ", but blue"]["preset"] is None
    # The form says whose prompt it is, for the page to clear the label as it is edited.
    form = app.client.get(f"/playground/form?preset={preset.slug}", headers=HTMX).text
    assert f'data-preset-prompt="{preset.prompt}"' in form
    assert "data-preset-label" in form and "Preset: <strong>Food overhead</strong>" in form


def _jobs(app: RunningApp) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = app.client.get("/api/jobs").json()["items"]
    return items


def test_each_preset_shows_the_teams_latest_image_made_from_it(app: RunningApp) -> None:
    slug = "cyberpunk-street"
    older = _finished_job(app.client, preset=slug)
    newer = _finished_job(app.client, preset=slug, num_images=2)
    _finished_job(app.client)  # no preset: changes nothing
    db = Database.at_path(app.settings.database_path)
    try:
        slugs = [preset.slug for preset in PRESETS]
        assert latest_preset_images(db, slugs=slugs) == {slug: newer["images"][0]["id"]}
        # Its first image in the trash: the job's next one.
        app.client.post("/api/trash", json={"image_ids": [newer["images"][0]["id"]]})
        assert latest_preset_images(db, slugs=slugs) == {slug: newer["images"][1]["id"]}
        app.client.post("/api/trash", json={"image_ids": [newer["images"][1]["id"]]})
        assert latest_preset_images(db, slugs=slugs) == {slug: older["images"][0]["id"]}
    finally:
        db.dispose()
    page = app.client.get("/").text
    thumb = one(page, "a.preset-chip#preset-cyberpunk-street .preset-thumb")
    assert thumb.get("src") == f"/api/images/{older['images'][0]['id']}/thumbnail"
    assert select(page, "a.preset-chip#preset-food-overhead .preset-thumb.preset-thumb-empty")


def test_the_newest_job_is_the_output_and_the_others_the_strip(app: RunningApp) -> None:
    first = _finished_job(app.client)
    second = _finished_job(app.client, num_images=4, seed=7)
    page = app.client.get("/").text
    output, strip = one(page, "#output"), one(page, "#jobs")
    assert select(output, f"#job-{second['id']}") and not select(output, f"#job-{first['id']}")
    assert select(strip, f"#job-{first['id']}") and not select(strip, f"#job-{second['id']}")
    assert len(select(output, ".job-image")) == 4
    assert one(output, ".job-images").get("data-count") == "4"
    for image in second["images"]:
        # Each image carries its actions; the full image is offered for the large view.
        figure = one(output, f"figure.job-image#job-image-{image['id']}")
        assert select(figure, f'a[download][href="/api/images/{image["id"]}/download"]')
        assert select(figure, f'button[data-compare="{image["id"]}"]')
        srcset = one(figure, "img").get("srcset", "").split(", ")
        assert f"/api/images/{image['id']} {image['width']}w" in srcset
        # A card wider than the thumbnail (a laptop's) takes the preview, not the full image.
        assert f"/api/images/{image['id']}/preview 1024w" in srcset
    assert len(select(output, 'button[data-same-seed="7"]')) == 4


def test_new_seed_from_the_output_answers_with_the_new_card(app: RunningApp) -> None:
    source = _finished_job(app.client, seed=5)
    answer = app.client.post(
        f"/jobs/{source['id']}/new-seed",
        data={"token": "t-1"},
        headers={**HTMX, "HX-Target": "output"},
    )
    assert answer.status_code == 200
    new_id = int(re.search(r'data-job-id="(\d+)"', answer.text).group(1))  # type: ignore[union-attr]
    assert new_id != source["id"] and select(answer.text, f"#job-{new_id}")
    again = app.client.post(
        f"/jobs/{source['id']}/new-seed",
        data={"token": "t-1"},
        headers={**HTMX, "HX-Target": "output"},
    )
    assert again.headers.get("HX-Reswap") == "none", "the same token is the same job"


def test_changes_to_images_answer_with_a_toast_and_undo(app: RunningApp) -> None:
    job = _finished_job(app.client, num_images=2)
    ids = [image["id"] for image in job["images"]]
    client = app.client

    def act(action: str, image_ids: list[int], **extra: str) -> dict[str, Any]:
        response = client.post(
            "/gallery/selection",
            data={"action": action, "ids": [str(i) for i in image_ids], **extra},
            headers=HTMX,
        )
        assert response.status_code == 204, response.text
        return _trigger(response)

    trashed = act("trash", ids)
    assert trashed["toast"]["message"] == "Moved 2 images to the trash"
    assert trashed["toast"]["undo"] == {"action": "restore", "ids": ids, "board": ""}
    assert trashed["images-changed"] == {"action": "trash", "ids": ids, "favourite": None}
    undone = act("restore", ids)
    assert undone["toast"]["message"] == "Restored 2 images"
    assert client.get("/api/trash").json()["items"] == []

    # Undo puts back only what was changed: an image starred before stays starred.
    client.put(f"/api/gallery/images/{ids[0]}/favourite")
    starred = act("favourite", ids)
    assert starred["toast"]["message"] == "Starred 2 images"
    assert starred["toast"]["undo"]["ids"] == [ids[1]]

    board = client.post("/api/collections", json={"name": "Lanterns"}).json()
    collected = act("collect", [ids[0]], board=str(board["id"]))
    assert collected["toast"]["message"] == "Added 1 image to “Lanterns”"
    assert collected["toast"]["undo"] == {
        "action": "uncollect",
        "ids": [ids[0]],
        "board": str(board["id"]),
    }
    again = act("collect", ids, board=str(board["id"]))
    assert again["toast"]["undo"]["ids"] == [ids[1]], "already there: not undone"
    removed = act("uncollect", [ids[1]], board=str(board["id"]))
    assert removed["toast"]["message"] == "Removed 1 image from “Lanterns”"
    assert client.get(f"/api/collections/{board['id']}").json()["image_count"] == 1

    # The star button answers too.
    toggled = client.post(
        f"/gallery/images/{ids[1]}/favourite", data={"favourite": "false"}, headers=HTMX
    )
    assert _trigger(toggled)["toast"] == {
        "message": "Removed from favourites",
        "undo": {"action": "favourite", "ids": [ids[1]], "board": ""},
    }
    # Without htmx, the same forms still go back where they came from.
    plain = client.post(
        "/gallery/selection",
        data={"action": "trash", "ids": [str(ids[1])], "next": "/gallery"},
        follow_redirects=False,
    )
    assert plain.status_code == 303 and plain.headers["location"] == "/gallery"


@pytest.mark.usefixtures("fixed_calendar")
def test_wording_fields_as_the_form_names_them_and_trash_dates(app: RunningApp) -> None:
    answer = _form_post(
        app.client, prompt="too small", image_size="custom", customWidth="1000", customHeight="1000"
    )
    assert answer.status_code == 422
    assert "Width × height is 1,000,000 pixels" in answer.text
    assert "customWidth ×" not in answer.text

    app.client.post("/api/collections", json={"name": "Boats"})
    taken = app.client.post("/collections", data={"name": "Boats"})
    assert taken.status_code == 422
    error = re.search(r'<p class="field-error" id="collection-name-error">([^<]*)</p>', taken.text)
    assert error and error.group(1) == "A collection with this name exists already."
    assert select(taken.text, '[aria-describedby="collection-name-error"]')

    job = _finished_job(app.client)
    app.client.post("/api/trash", json={"image_ids": [job["images"][0]["id"]]})
    trash = app.client.get("/trash").text
    # Trashed on FIXED_DAY, 16 June 2025: purged 30 days on, in the same year.
    assert "Deleted for good on 16 Jul<" in trash, trash
    assert "Purged" not in trash


def test_a_purge_date_in_the_next_year_says_the_year(
    tmp_path: Path, emulator: RunningEmulator
) -> None:
    with (
        calendar_at(datetime(2025, 12, 7, 12, 0, tzinfo=UTC)),
        serve_app(make_settings(tmp_path / "data", emulator)) as app,
    ):
        job = _finished_job(app.client)
        app.client.post("/api/trash", json={"image_ids": [job["images"][0]["id"]]})
        trash = app.client.get("/trash").text
    assert "Deleted for good on 6 Jan 2026<" in trash, trash


def test_every_page_has_the_same_tabs_and_one_name_for_the_team_area(app: RunningApp) -> None:
    job = _finished_job(app.client)
    nav = re.compile(r'<nav aria-label="Main">(.*?)</nav>', re.S)
    main_navs = set()
    for path in (
        "/",
        "/gallery",
        "/collections",
        "/trash",
        "/usage",
        f"/jobs/{job['id']}",
        "/admin/people",
        "/admin/spend",
        "/admin/audit",
    ):
        page = app.client.get(path).text
        found = nav.search(page)
        assert found, path
        main_navs.add(re.sub(r' aria-current="page"', "", found.group(1)))
        assert "Admin<" not in found.group(1)
        tabs = re.search(
            r'<main id="main" tabindex="-1">\s*<nav class="section-tabs" aria-label="(\w+) sec',
            page,
        )
        if path.startswith(("/gallery", "/collections", "/trash", "/usage", "/jobs")):
            assert tabs and tabs.group(1) == "Gallery", path
        elif path.startswith("/admin"):
            assert tabs and tabs.group(1) == "Team", path
            assert "· Team · Seedream Playground</title>" in page
        else:
            assert tabs is None, path
    assert len(main_navs) == 1, "the same main tabs on every page"
    assert ">Team</a>" in main_navs.pop()


def test_demo_mode_says_0_credits_the_same_way_everywhere(tmp_path: Path) -> None:
    with serve_app(make_settings(tmp_path / "data", None)) as app:
        job = _finished_job(app.client)
        pages = {
            "playground": app.client.get("/").text,
            "job": app.client.get(f"/jobs/{job['id']}").text,
            "usage": app.client.get("/usage").text,
            "lightbox": app.client.get(
                f"/gallery/images/{job['images'][0]['id']}/lightbox", headers=HTMX
            ).text,
        }
    for name, page in pages.items():
        assert "0 credits (demo)" in page, name
        assert not re.search(r"\b[1-9]\d* credits?\b(?! per image)", _visible(page)), name


def _visible(page: str) -> str:
    """The page's text, roughly: tags, and the cost note's wording about the real service, out."""
    text = re.sub(r"<[^>]+>", " ", page)
    return text.replace("The cost is PixelDojo's: 1 credit per image", "")
