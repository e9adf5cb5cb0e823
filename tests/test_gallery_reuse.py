"""Taking images out of the gallery through its JSON API: compare, remix, the same prompt with a
new seed, the request as curl and Python (never with the key), downloads that carry their
parameters, and zips of a selection, a search and a collection."""

from __future__ import annotations

import ast
import hashlib
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

from app.core.clock import calendar_at
from tests.support.apps import RunningApp
from tests.support.clock import FIXED_DAY
from tests.support.emulators import TEST_KEY, RunningEmulator
from tests.support.gallery_made import BODIES, Made, ids_of
from tests.support.jobs import wait_for_job
from tests.support.markup import one, select, text, texts

pytestmark = pytest.mark.both_databases


@pytest.fixture(scope="module", autouse=True)
def _fixed_calendar() -> Iterator[None]:
    """The module's gallery is made, searched by today and counted by day on FIXED_DAY: a run
    that crossed midnight once found today's jobs on yesterday."""
    with calendar_at(FIXED_DAY):
        yield


# --- Compare and reuse -------------------------------------------------------------------


def test_compare_marks_the_parameters_that_differ(shared_app: RunningApp, made: Made) -> None:
    ids = [made.image("dawn"), made.image("dawn", 1), made.image("night")]
    answer = shared_app.client.get("/api/compare", params={"ids": ids}).json()
    assert ids_of(answer["images"]) == ids
    rows = {row["name"]: row for row in answer["rows"]}
    assert rows["prompt"]["differs"] and rows["seed"]["differs"] and rows["image_size"]["differs"]
    assert rows["model"]["differs"] is False
    same_job = shared_app.client.get("/api/compare", params={"ids": ids[:2]}).json()
    assert not any(row["differs"] for row in same_job["rows"])
    page = shared_app.client.get("/compare", params={"ids": ids}).text
    assert one(page, 'tr[data-param="seed"]').get("class") == "differs"
    assert "night," in texts(page, ".compare-prompt mark")
    refused = shared_app.client.get("/api/compare", params={"ids": [ids[0]]})
    assert refused.status_code == 422 and "ids" in refused.json()["error"]["fields"]


def test_remix_fills_the_playground_with_the_parameters(shared_app: RunningApp, made: Made) -> None:
    job = made.jobs["bicycle"]
    page = shared_app.client.get("/", params={"remix": job["id"]}).text
    assert text(one(page, "textarea#prompt")) == BODIES["bicycle"]["prompt"]
    for field, value in (("customWidth", "2560"), ("customHeight", "1600"), ("seed", "5")):
        assert one(page, f"input#{field}").get("value") == value, field
    assert [r.get("value") for r in select(page, "input[name=image_size][checked]")] == ["custom"]
    assert shared_app.client.get("/", params={"remix": 999999}).status_code == 404
    food = shared_app.client.get("/", params={"remix": made.jobs["food"]["id"]}).text
    assert one(food, "#generate-form input[name=preset]").get("value") == "food-overhead"


def test_same_prompt_new_seed_submits_at_once(
    shared_app: RunningApp, shared_emulator: RunningEmulator, made: Made
) -> None:
    old = made.jobs["night"]
    answer = shared_app.client.post(f"/api/jobs/{old['id']}/new-seed")
    assert answer.status_code == 202, answer.text
    new = wait_for_job(shared_app.client, answer.json()["id"])
    assert new["status"] == "completed"
    assert new["parameters"]["prompt"] == old["parameters"]["prompt"]
    assert new["parameters"]["image_size"] == old["parameters"]["image_size"]
    assert new["parameters"]["seed"] not in (None, old["parameters"]["seed"])
    sent = [
        r.body
        for r in shared_emulator.emulator.requests_to("run")
        if r.body["prompt"] == old["parameters"]["prompt"]
    ]
    assert sent[-1]["seed"] == new["parameters"]["seed"], "the seed sent is the seed recorded"
    # A repeated request (a double click, a retry) is one job, paid once.
    runs = len(shared_emulator.emulator.requests_to("run"))
    first = shared_app.client.post(
        f"/api/jobs/{old['id']}/new-seed", headers={"Idempotency-Key": "k1"}
    )
    again = shared_app.client.post(
        f"/api/jobs/{old['id']}/new-seed", headers={"Idempotency-Key": "k1"}
    )
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    form = {"token": "tok-1"}
    pages = [
        shared_app.client.post(f"/jobs/{old['id']}/new-seed", data=form, follow_redirects=False)
        for _ in range(2)
    ]
    assert [p.status_code for p in pages] == [303, 303]
    assert (
        pages[0].headers["location"]
        == pages[1].headers["location"]
        != f"/jobs/{first.json()['id']}"
    )
    wait_for_job(shared_app.client, first.json()["id"])
    wait_for_job(shared_app.client, int(pages[0].headers["location"].rsplit("/", 1)[1]))
    assert len(shared_emulator.emulator.requests_to("run")) == runs + 2


def test_the_request_is_given_as_curl_and_python_without_the_key(
    shared_app: RunningApp, shared_emulator: RunningEmulator, made: Made
) -> None:
    job = made.jobs["dawn"]
    answer = shared_app.client.get(f"/api/jobs/{job['id']}/request").json()
    assert TEST_KEY not in json.dumps(answer)
    assert answer["url"] == f"{shared_emulator.base_url}/models/seedream-4/run"
    assert answer["body"] == BODIES["dawn"]
    words = shlex.split(answer["curl"].replace("\\\n", " "))
    assert json.loads(words[words.index("-d") + 1]) == BODIES["dawn"]
    assert "Authorization: Bearer $PIXELDOJO_API_KEY" in words
    assert "os.environ['PIXELDOJO_API_KEY']" in answer["python"]
    assert "process.env.PIXELDOJO_API_KEY" in answer["javascript"]
    page = shared_app.client.get(f"/jobs/{job['id']}").text
    assert "Copy as curl" in page and "$PIXELDOJO_API_KEY" in page and TEST_KEY not in page

    # Both snippets really work: run them against the emulator with the key in the environment.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.lower().endswith("_proxy") and key != "PIXELDOJO_API_KEY"
    }
    env["PIXELDOJO_API_KEY"] = TEST_KEY
    before = len(shared_emulator.emulator.requests_to("run"))
    script = subprocess.run(
        [sys.executable, "-c", answer["python"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert script.returncode == 0, script.stderr
    assert ast.literal_eval(script.stdout.strip())["jobId"].startswith("job_")
    if shutil.which("curl"):
        curl = subprocess.run(
            ["sh", "-c", answer["curl"]], env=env, capture_output=True, text=True, timeout=30
        )
        assert curl.returncode == 0, curl.stderr
        assert json.loads(curl.stdout)["status"] == "pending"
    runs = shared_emulator.emulator.requests_to("run")[before:]
    assert runs and all(r.body == BODIES["dawn"] for r in runs)
    assert all(r.authorization == f"Bearer {TEST_KEY}" for r in runs)


# --- Taking images away ------------------------------------------------------------------


def test_a_downloaded_png_carries_its_parameters(shared_app: RunningApp, made: Made) -> None:
    client = shared_app.client
    image = made.jobs["dawn"]["images"][1]
    download = client.get(f"/api/images/{image['id']}/download")
    assert download.status_code == 200
    assert download.headers["content-type"] == "image/png"
    name = f"seedream-{made.jobs['dawn']['id']}-2.png"
    assert download.headers["content-disposition"] == f'attachment; filename="{name}"'
    assert int(download.headers["content-length"]) == len(download.content)
    with Image.open(io.BytesIO(download.content)) as png:
        png.load()
        text = dict(png.text)  # type: ignore[attr-defined]
        pixels = png.tobytes()
    assert text["parameters"].startswith(
        "a lighthouse at dawn, watercolour\n"
        "Steps: 1, Sampler: Seedream, CFG scale: 1, Seed: 11, Size: 2560x1440"
    )
    assert "Model: seedream-4" in text["parameters"] and "Image: 2 of 2" in text["parameters"]
    record = json.loads(text["seedream"])
    assert record["parameters"]["seed"] == 11
    assert record["job"]["upstream_job_id"] == made.jobs["dawn"]["upstream_job_id"]
    assert record["request"]["body"] == BODIES["dawn"]
    assert record["image"]["sha256"] == image["sha256"]
    # The pixels are exactly the stored image's.
    stored = client.get(image["url"]).content
    assert hashlib.sha256(stored).hexdigest() == image["sha256"]
    with Image.open(io.BytesIO(stored)) as original:
        assert original.tobytes() == pixels
    sidecar = client.get(f"/api/images/{image['id']}/sidecar")
    assert sidecar.headers["content-disposition"].endswith('.json"')
    assert sidecar.json() == record
    # A prompt beyond Latin-1 travels as UTF-8 (iTXt).
    job = wait_for_job(
        client, client.post("/api/jobs", json={"prompt": "灯台 at dawn ✓"}).json()["id"]
    )
    unicode_png = client.get(f"/api/images/{job['images'][0]['id']}/download").content
    with Image.open(io.BytesIO(unicode_png)) as png:
        assert png.text["parameters"].startswith("灯台 at dawn ✓\n")  # type: ignore[attr-defined]


def read_zip(content: bytes) -> tuple[zipfile.ZipFile, dict[str, Any]]:
    archive = zipfile.ZipFile(io.BytesIO(content))
    assert archive.testzip() is None
    return archive, json.loads(archive.read("manifest.json"))


def test_a_selection_downloads_as_a_zip_with_a_manifest(shared_app: RunningApp, made: Made) -> None:
    ids = [made.image("night"), made.image("bicycle")]
    answer = shared_app.client.get("/api/zip", params={"ids": ids})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/zip"
    assert 'filename="seedream-selection.zip"' in answer.headers["content-disposition"]
    archive, manifest = read_zip(answer.content)
    files = [entry["file"] for entry in manifest["images"]]
    night, bicycle = made.jobs["night"]["id"], made.jobs["bicycle"]["id"]
    assert files == [f"seedream-{night}-1.png", f"seedream-{bicycle}-1.png"]
    assert sorted(archive.namelist()) == sorted(
        [*files, f"seedream-{night}-1.json", f"seedream-{bicycle}-1.json", "manifest.json"]
    )
    assert manifest["selection"] == {"image_ids": ids}
    with Image.open(io.BytesIO(archive.read(files[1]))) as png:
        assert png.text["parameters"].startswith("red bicycle")  # type: ignore[attr-defined]
    assert json.loads(archive.read(f"seedream-{bicycle}-1.json"))["parameters"]["seed"] == 5


def test_a_search_and_a_collection_download_as_zips(shared_app: RunningApp, made: Made) -> None:
    client = shared_app.client
    found = client.get("/api/zip", params={"q": "lighthouse", "image_size": "landscape_16_9"})
    assert 'filename="seedream-search.zip"' in found.headers["content-disposition"]
    _, manifest = read_zip(found.content)
    assert [entry["image"]["id"] for entry in manifest["images"]] == [
        made.image("dawn"),
        made.image("dawn", 1),
    ]
    assert manifest["selection"]["filters"] == {"q": "lighthouse", "image_size": "landscape_16_9"}

    board = client.post("/api/collections", json={"name": "Zip me"}).json()
    client.post(f"/api/collections/{board['id']}/images", json={"image_ids": [made.image("food")]})
    zipped = client.get("/api/zip", params={"collection": board["id"]})
    assert 'filename="seedream-zip-me.zip"' in zipped.headers["content-disposition"]
    _, manifest = read_zip(zipped.content)
    assert [entry["image"]["id"] for entry in manifest["images"]] == [made.image("food")]

    empty = client.get("/api/zip", params={"q": "no such thing anywhere"})
    assert empty.status_code == 404 and "No images match" in empty.json()["error"]["message"]
    unknown = client.get("/api/zip", params={"ids": [999999]})
    assert unknown.status_code == 404 and "999999" in unknown.json()["error"]["message"]
