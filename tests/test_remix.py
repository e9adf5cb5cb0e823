"""A remix says where it came from: the source job and image, on its page, in the API, in
its downloads' metadata, and through an export and import."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.cli import main as cli
from tests.support.apps import RunningApp, make_settings, serve_app
from tests.support.databases import DatabaseChoice
from tests.support.emulators import RunningEmulator
from tests.support.jobs import wait_for_job
from tests.support.markup import one, select, text

pytestmark = pytest.mark.both_databases


def make_job(app: RunningApp, **body: Any) -> dict[str, Any]:
    answer = app.client.post("/api/jobs", json={"prompt": "a lighthouse at dawn", **body})
    assert answer.status_code == 202, answer.text
    return wait_for_job(app.client, answer.json()["id"])


def test_a_remix_from_the_api_records_its_source(app: RunningApp) -> None:
    source = make_job(app, num_images=2)
    remix = make_job(app, prompt="the lighthouse at dusk", remix_of=source["id"], remix_image=1)
    assert remix["remix_of"] == {
        "job_id": source["id"],
        "image_index": 1,
        "url": f"/jobs/{source['id']}",
    }
    page = app.client.get(f"/jobs/{remix['id']}").text
    [said] = [term.getnext() for term in select(page, "dt") if text(term) == "Remix of"]
    assert text(said) == f"job #{source['id']}, image 2"
    assert one(said, "a").get("href") == f"/jobs/{source['id']}"
    sidecar = app.client.get(f"{remix['images'][0]['url']}/sidecar").json()
    assert sidecar["job"]["remix_of"] == {"job_id": source["id"], "image_index": 1}
    # An ordinary job is a remix of nothing.
    assert source["remix_of"] is None
    assert "Remix of" not in app.client.get(f"/jobs/{source['id']}").text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"remix_of": 99_999}, "remix_of"),
        ({"remix_image": 0}, "remix_image"),
        ({"remix_of": "SOURCE", "remix_image": 1}, "remix_image"),
        ({"remix_of": 10**20}, "remix_of"),
        ({"remix_of": "SOURCE", "remix_image": -1}, "remix_image"),
    ],
)
def test_a_remix_of_nothing_is_refused_before_any_upstream_request(
    app: RunningApp, emulator: RunningEmulator, body: dict[str, Any], field: str
) -> None:
    source = make_job(app)
    body = {k: source["id"] if v == "SOURCE" else v for k, v in body.items()}
    runs = len(emulator.emulator.requests_to("run"))
    answer = app.client.post("/api/jobs", json={"prompt": "from nowhere", **body})
    assert answer.status_code == 422
    assert field in answer.text
    assert len(emulator.emulator.requests_to("run")) == runs, "nothing was sent upstream"


def test_the_playground_remembers_the_remix_source_through_the_form(app: RunningApp) -> None:
    source = make_job(app, num_images=2)
    page = app.client.get("/", params={"remix": source["id"], "image": 1}).text
    assert one(page, "#generate-form input[name=remix_of]").get("value") == str(source["id"])
    assert one(page, "#generate-form input[name=remix_image]").get("value") == "1"
    said = one(page, "#generate-form input[name=remix_image] + p.form-preset")
    assert text(said) == f"Remix of job #{source['id']}, image 2"
    assert one(said, "a").get("href") == f"/jobs/{source['id']}"
    assert app.client.get("/", params={"remix": source["id"], "image": 2}).status_code == 404

    form = {
        "prompt": "the lighthouse in fog",
        "image_size": "auto_2K",
        "num_images": "1",
        "remix_of": str(source["id"]),
        "remix_image": "1",
    }
    answer = app.client.post("/jobs", data=form)
    assert answer.status_code == 303
    remix = wait_for_job(app.client, int(answer.headers["location"].rsplit("/", 1)[1]))
    assert remix["remix_of"]["job_id"] == source["id"]
    assert remix["remix_of"]["image_index"] == 1

    # A hand-edited hidden field is a field error, and costs nothing.
    refused = app.client.post("/jobs", data={**form, "remix_of": "99999"})
    assert refused.status_code == 422
    assert "there is no job 99999" in refused.text
    for odd in ("²", "1e3", "9" * 30):
        refused = app.client.post("/jobs", data={**form, "remix_of": odd})
        assert refused.status_code == 422, odd
        assert "must be a job number" in refused.text
    refused = app.client.post("/jobs", data={**form, "remix_image": "٣"})
    assert refused.status_code == 422
    assert "must be an image number" in refused.text


def test_a_repeated_idempotency_key_with_another_source_is_a_conflict(app: RunningApp) -> None:
    first, second = make_job(app), make_job(app)
    body = {"prompt": "one key, one job", "remix_of": first["id"]}
    headers = {"Idempotency-Key": "remix-once"}
    assert app.client.post("/api/jobs", json=body, headers=headers).status_code == 202
    again = app.client.post("/api/jobs", json={**body, "remix_of": second["id"]}, headers=headers)
    assert again.status_code == 422
    assert again.json()["error"]["code"] == "idempotency_key_reused"


def test_same_prompt_new_seed_records_its_source(app: RunningApp) -> None:
    source = make_job(app, seed=7)
    again = app.client.post(f"/api/jobs/{source['id']}/new-seed").json()
    assert again["remix_of"] == {
        "job_id": source["id"],
        "image_index": None,
        "url": f"/jobs/{source['id']}",
    }


def test_an_imported_remix_points_at_the_imported_source(
    tmp_path: Path,
    emulator: RunningEmulator,
    monkeypatch: pytest.MonkeyPatch,
    database: DatabaseChoice,
    other_database: DatabaseChoice,
) -> None:
    first = make_settings(tmp_path / "first", emulator, database=database)
    with serve_app(first) as app:
        source = make_job(app, prompt="the source")
        make_job(app, prompt="the remix", remix_of=source["id"], remix_image=0)
    archive = tmp_path / "gallery.zip"
    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(tmp_path / "first"))
    database.use_in_environment(monkeypatch)
    assert cli.main(["export", str(archive)]) == 0

    second = make_settings(tmp_path / "second", emulator, database=other_database)
    with serve_app(second) as app:
        make_job(app, prompt="already here")
        make_job(app, prompt="already here too")
    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(tmp_path / "second"))
    other_database.use_in_environment(monkeypatch)
    assert cli.main(["import", str(archive)]) == 0
    with serve_app(second) as app:
        listed = app.client.get("/api/gallery/jobs", params={"limit": 100}).json()["items"]
        by_prompt = {job["parameters"]["prompt"]: job for job in listed}
        imported_source = by_prompt["the source"]
        assert imported_source["id"] != source["id"], "the import gave new ids"
        assert by_prompt["the remix"]["remix_of"]["job_id"] == imported_source["id"]


def test_a_remix_imported_after_its_source_points_at_the_copy_already_here(
    tmp_path: Path,
    emulator: RunningEmulator,
    monkeypatch: pytest.MonkeyPatch,
    database: DatabaseChoice,
    other_database: DatabaseChoice,
) -> None:
    first = make_settings(tmp_path / "first", emulator, database=database)
    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(tmp_path / "first"))
    database.use_in_environment(monkeypatch)
    with serve_app(first) as app:
        source = make_job(app, prompt="the source")
    assert cli.main(["export", str(tmp_path / "before.zip")]) == 0
    with serve_app(first) as app:
        make_job(app, prompt="the remix", remix_of=source["id"])
    assert cli.main(["export", str(tmp_path / "after.zip")]) == 0

    second = make_settings(tmp_path / "second", emulator, database=other_database)
    with serve_app(second) as app:
        make_job(app, prompt="already here")
    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(tmp_path / "second"))
    other_database.use_in_environment(monkeypatch)
    assert cli.main(["import", str(tmp_path / "before.zip")]) == 0
    # The source is already here and is skipped; the remix still finds it.
    assert cli.main(["import", str(tmp_path / "after.zip")]) == 0
    with serve_app(second) as app:
        listed = app.client.get("/api/gallery/jobs", params={"limit": 100}).json()["items"]
        by_prompt = {job["parameters"]["prompt"]: job for job in listed}
        assert len(listed) == 3
        assert by_prompt["the remix"]["remix_of"]["job_id"] == by_prompt["the source"]["id"]
