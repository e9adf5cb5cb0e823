"""The whole loop over loopback HTTP: preset → submit → background poll → stored images."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from app.domain.parameters import NAMED_SIZE_PIXELS
from app.domain.presets import PRESETS
from tests.support.apps import RunningApp, make_settings, serve_app
from tests.support.databases import DatabaseChoice
from tests.support.emulators import TEST_KEY, RunningEmulator, serve_emulator
from tests.support.jobs import wait_for_job

pytestmark = pytest.mark.both_databases


@pytest.fixture(scope="module")
def shared_emulator(module_database: DatabaseChoice) -> Iterator[RunningEmulator]:
    # One per database: the tests count what each app sent upstream.
    with serve_emulator() as running:
        yield running


@pytest.fixture(scope="module")
def shared_app(
    tmp_path_factory: pytest.TempPathFactory,
    shared_emulator: RunningEmulator,
    module_database: DatabaseChoice,
) -> Iterator[RunningApp]:
    data_dir = tmp_path_factory.mktemp("flow") / "data"
    settings = make_settings(data_dir, shared_emulator, database=module_database)
    with serve_app(settings) as running:
        yield running


def test_the_presets_endpoint_lists_the_eight_presets(shared_app: RunningApp) -> None:
    presets = shared_app.client.get("/api/presets").json()
    assert [p["slug"] for p in presets] == [p.slug for p in PRESETS]
    assert len(presets) == 8
    food = next(p for p in presets if p["slug"] == "food-overhead")
    assert food["parameters"]["prompt"].startswith("overhead food photography")
    assert food["estimated_credits"] == 1


@pytest.mark.parametrize("preset", PRESETS, ids=[p.slug for p in PRESETS])
def test_each_preset_completes_and_stores_the_bytes_the_emulator_served(
    preset, shared_app: RunningApp, shared_emulator: RunningEmulator
) -> None:
    client = shared_app.client
    body = {**preset.params().upstream_body(), "preset": preset.slug}
    answer = client.post("/api/jobs", json=body)
    assert answer.status_code == 202, answer.text
    submitted = answer.json()
    assert submitted["status"] == "pending"
    assert submitted["upstream_job_id"].startswith("job_")

    job = wait_for_job(client, submitted["id"])
    assert job["status"] == "completed", job["error"]
    assert job["preset"] == preset.slug
    assert job["credit_cost"] == 1
    assert len(job["images"]) == 1

    # The upstream saw exactly the preset's parameters, with our key, once.
    runs = [
        r
        for r in shared_emulator.emulator.requests_to("run")
        if r.body and r.body.get("prompt") == preset.prompt
    ]
    assert len(runs) == 1
    assert runs[0].authorization == f"Bearer {TEST_KEY}"
    sent = dict(runs[0].body)
    seed = sent.pop("seed")  # left random: drawn by the app, and recorded
    assert sent == preset.params().upstream_body()
    assert job["parameters"]["seed"] == seed
    assert "aspect_ratio" not in runs[0].body

    image = job["images"][0]
    stored = client.get(image["url"])
    assert stored.status_code == 200
    assert stored.headers["content-type"] == "image/png"
    digest = hashlib.sha256(stored.content).hexdigest()
    served = shared_emulator.emulator.served_images
    assert digest in served.values(), "the stored bytes differ from what the emulator served"
    assert digest == image["sha256"]
    assert (image["width"], image["height"]) == NAMED_SIZE_PIXELS[preset.image_size]
    with Image.open(io.BytesIO(stored.content)) as png:
        assert png.size == NAMED_SIZE_PIXELS[preset.image_size]

    thumbnail = client.get(image["thumbnail_url"])
    assert thumbnail.headers["content-type"] == "image/webp"
    with Image.open(io.BytesIO(thumbnail.content)) as thumb:
        assert max(thumb.size) == 512


def test_the_form_sends_its_parameters_upstream(
    shared_app: RunningApp, shared_emulator: RunningEmulator
) -> None:
    form = {
        "prompt": "a lighthouse at dawn, watercolour",
        "image_size": "custom",
        "customWidth": "2560",
        "customHeight": "1600",
        "seed": "1234",
        "num_images": "2",
        "model": "seedream-4",
        "preset": "",
    }
    answer = shared_app.client.post("/jobs", data=form)
    assert answer.status_code == 303
    job_id = int(answer.headers["location"].rsplit("/", 1)[1])
    job = wait_for_job(shared_app.client, job_id)
    assert job["status"] == "completed"
    assert [(i["width"], i["height"]) for i in job["images"]] == [(2560, 1600)] * 2

    run = next(
        r for r in shared_emulator.emulator.requests_to("run") if r.body["prompt"] == form["prompt"]
    )
    assert run.authorization == f"Bearer {TEST_KEY}"
    assert run.body == {
        "prompt": "a lighthouse at dawn, watercolour",
        "image_size": "custom",
        "customWidth": 2560,
        "customHeight": 1600,
        "seed": 1234,
        "num_images": 2,
    }


def test_pages_show_the_job_and_the_gallery(shared_app: RunningApp) -> None:
    client = shared_app.client
    job = client.post("/api/jobs", json={"prompt": "a red bicycle against a blue wall"}).json()
    done = wait_for_job(client, job["id"])
    image_id = done["images"][0]["id"]

    page = client.get(f"/jobs/{job['id']}").text
    assert "a red bicycle against a blue wall" in page
    assert f"/api/images/{image_id}" in page
    assert done["upstream_job_id"] in page

    gallery = client.get("/gallery").text
    assert f"/api/images/{image_id}/thumbnail" in gallery
    assert f"/jobs/{job['id']}#image-{image_id}" in gallery


def test_images_are_served_with_long_lived_cache_headers(shared_app: RunningApp) -> None:
    client = shared_app.client
    job = wait_for_job(client, client.post("/api/jobs", json={"prompt": "cache me"}).json()["id"])
    image = job["images"][0]
    answer = client.get(image["url"])
    assert "immutable" in answer.headers["cache-control"]
    assert answer.headers["etag"] == f'"{image["sha256"]}"'
    assert int(answer.headers["content-length"]) == image["byte_size"] == len(answer.content)
    again = client.get(image["url"], headers={"If-None-Match": answer.headers["etag"]})
    assert again.status_code == 304


def test_job_listing_is_newest_first_with_a_cursor(
    tmp_path: Path, emulator: RunningEmulator, database: DatabaseChoice
) -> None:
    with serve_app(make_settings(tmp_path / "data", emulator, database=database)) as running:
        client = running.client
        ids = [client.post("/api/jobs", json={"prompt": f"job {n}"}).json()["id"] for n in range(5)]
        first = client.get("/api/jobs", params={"limit": 2}).json()
        assert [j["id"] for j in first["items"]] == ids[::-1][:2]
        second = client.get("/api/jobs", params={"limit": 2, "cursor": first["next_cursor"]}).json()
        assert [j["id"] for j in second["items"]] == ids[::-1][2:4]
        last = client.get("/api/jobs", params={"limit": 2, "cursor": second["next_cursor"]}).json()
        assert [j["id"] for j in last["items"]] == ids[:1]
        assert last["next_cursor"] is None
        for job_id in ids:
            wait_for_job(client, job_id)


def test_unknown_job_and_image_are_404(app: RunningApp) -> None:
    assert app.client.get("/api/jobs/999").status_code == 404
    assert app.client.get("/api/jobs/999").json()["error"]["code"] == "not_found"
    assert app.client.get("/api/images/999").status_code == 404
    assert app.client.get("/jobs/999").status_code == 404
    assert app.client.get("/healthz").json() == {"status": "ok"}
