"""The live schema wins: with PixelDojo's schema narrowed (at most 4 images, no auto_4K,
prompts of at most 2,000 characters), every path that submits refuses what it forbids with
no upstream call, the form offers only what it allows, and what it allows still works."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.domain.parameters import IMAGE_SIZES
from app.emulator import Fault
from tests.support.apps import RunningApp, make_settings, serve_app
from tests.support.emulators import RunningEmulator, serve_emulator
from tests.support.jobs import wait_for_job
from tests.support.markup import Elements
from tests.support.waiting import wait_until

ALLOWED_SIZES = [size for size in IMAGE_SIZES if size != "auto_4K"]
NARROW: dict[str, Any] = {
    "num_images": {"maximum": 4},
    "image_size": {"enum": ALLOWED_SIZES},
    "prompt": {"maxLength": 2000},
}
HTMX = {"HX-Request": "true"}


# One narrowed upstream and one app for the tests that only read or are refused: a start
# costs more than the test.
@pytest.fixture(scope="module")
def narrowed() -> Iterator[RunningEmulator]:
    with serve_emulator(schema_overrides=NARROW) as running:
        yield running


@pytest.fixture(scope="module")
def narrowed_app(
    tmp_path_factory: pytest.TempPathFactory, narrowed: RunningEmulator
) -> Iterator[RunningApp]:
    data = tmp_path_factory.mktemp("narrowed") / "data"
    with serve_app(make_settings(data, narrowed)) as running:
        yield running


FORBIDDEN: list[tuple[str, dict[str, Any], str]] = [
    ("five images", {"prompt": "a cat", "num_images": 5}, "num_images"),
    ("auto_4K", {"prompt": "a cat", "image_size": "auto_4K"}, "image_size"),
    ("2,001 characters", {"prompt": "x" * 2001}, "prompt"),
]


@pytest.mark.parametrize(
    ("body", "field"), [(b, f) for _, b, f in FORBIDDEN], ids=[n for n, _, _ in FORBIDDEN]
)
def test_the_api_refuses_what_the_live_schema_forbids_with_no_upstream_call(
    narrowed_app: RunningApp, narrowed: RunningEmulator, body: dict[str, Any], field: str
) -> None:
    before = narrowed_app.client.get("/api/jobs").json()["items"]
    narrowed.emulator.reset_log()  # the schema read at start; from here, not one request
    answer = narrowed_app.client.post("/api/jobs", json=body)
    assert answer.status_code == 422
    assert field in answer.json()["error"]["fields"]
    assert narrowed.emulator.requests == [], "0 upstream calls"
    assert narrowed_app.client.get("/api/jobs").json()["items"] == before, "no job recorded"


@pytest.mark.parametrize(
    ("body", "field"), [(b, f) for _, b, f in FORBIDDEN], ids=[n for n, _, _ in FORBIDDEN]
)
def test_the_form_refuses_what_the_live_schema_forbids_with_no_upstream_call(
    narrowed_app: RunningApp, narrowed: RunningEmulator, body: dict[str, Any], field: str
) -> None:
    narrowed.emulator.reset_log()
    posted = {"image_size": "auto_2K", "num_images": "1", **{k: str(v) for k, v in body.items()}}
    answer = narrowed_app.client.post("/jobs", data=posted, headers=HTMX)
    assert answer.status_code == 422
    page = Elements(answer.text)
    assert page.by_id(f"{field}-error") is not None
    assert narrowed.emulator.requests == [], "0 upstream calls"


def test_the_form_offers_only_what_the_live_schema_allows(narrowed_app: RunningApp) -> None:
    page = Elements(narrowed_app.client.get("/").text)
    offered = [attrs["value"] for attrs in page.named("image_size")]
    assert offered == ALLOWED_SIZES
    assert page.by_id("num_images")["max"] == "4"
    assert page.by_id("prompt")["maxlength"] == "2000"
    limits = json.loads(page.by_id("generate-form")["data-limits"] or "")
    assert limits["num_images_max"] == 4
    assert limits["prompt_max"] == 2000
    assert page.texts["rules-status"].split()[:3] == ["rules:", "live,", "fetched"]
    rules = narrowed_app.client.get("/api/rules").json()
    assert rules["source"] == "live"
    assert rules["sizes"] == ALLOWED_SIZES
    assert "num_images: maximum 4 (built-in: 6)" in rules["differences"]


def test_four_images_still_work(narrowed_app: RunningApp, narrowed: RunningEmulator) -> None:
    answer = narrowed_app.client.post("/api/jobs", json={"prompt": "four foxes", "num_images": 4})
    assert answer.status_code == 202
    job = wait_for_job(narrowed_app.client, answer.json()["id"])
    assert job["status"] == "completed"
    assert len(job["images"]) == 4
    (run,) = [r for r in narrowed.emulator.requests_to("run") if r.body["prompt"] == "four foxes"]
    assert run.body["num_images"] == 4


def test_new_seed_remix_and_try_all_are_held_to_the_rules_refreshed_on_demand(
    app: RunningApp, emulator: RunningEmulator
) -> None:
    # Six images, under the built-in rules; it never finishes upstream (nothing to render).
    made = app.client.post("/api/jobs", json={"prompt": "six owls [[never]]", "num_images": 6})
    assert made.status_code == 202, "the built-in rules allow six"
    job = made.json()
    # PixelDojo narrows its schema; a refresh (what the form's Refresh button asks) reads it.
    emulator.config.schema_overrides = {
        **NARROW,
        "image_size": {"enum": [s for s in ALLOWED_SIZES if s != "landscape_4_3"]},
    }
    refreshed = app.client.post("/upstream/rules/refresh", data={}, headers=HTMX)
    assert refreshed.status_code == 200
    assert "rules: live, fetched just now" in refreshed.text
    assert app.client.get("/api/rules").json()["limits"]["num_images_max"] == 4
    emulator.emulator.reset_log()

    new_seed = app.client.post(f"/api/jobs/{job['id']}/new-seed")
    assert new_seed.status_code == 422
    assert "num_images" in new_seed.json()["error"]["fields"]

    remix = {**{k: str(v) for k, v in job["parameters"].items() if v is not None}}
    remix["remix_of"] = str(job["id"])
    answer = app.client.post("/jobs", data=remix, headers=HTMX)
    assert answer.status_code == 422
    assert 'id="num_images-error"' in answer.text
    remix_page = Elements(app.client.get(f"/?remix={job['id']}").text)
    assert remix_page.by_id("num_images-error") is not None, "said on opening the remix"

    # The six-image job's own polls go on; nothing else reached PixelDojo.
    calls = [r for r in emulator.emulator.requests if r.route != "job"]
    assert calls == [], "0 upstream calls on every refused path"
    assert len(app.client.get("/api/jobs").json()["items"]) == 1

    # Trying every preset is not refused as a whole: the two presets made at landscape 4:3
    # run at the nearest size still allowed, and the answer says so.
    try_all = app.client.post("/playground/try-all", data={"submission_token": "t"}, headers=HTMX)
    assert try_all.status_code == 200, try_all.text
    message = json.loads(try_all.headers["HX-Trigger"])["toast"]["message"]
    assert "Children storybook runs at Landscape 16:9" in message
    assert "Real estate interior runs at Landscape 16:9" in message
    runs = emulator.emulator.requests_to("run")
    assert len(runs) == 8
    assert sorted(run.body["image_size"] for run in runs).count("landscape_16_9") == 3
    assert all(run.body["image_size"] != "landscape_4_3" for run in runs)


def test_the_last_good_copy_stays_in_force_while_the_schema_cannot_be_read(
    tmp_path: Path,
) -> None:
    with serve_emulator(schema_overrides=NARROW) as upstream:
        settings = make_settings(tmp_path / "data", upstream)
        with serve_app(settings) as first:
            assert first.client.get("/api/rules").json()["source"] == "live"
        upstream.emulator.faults.add(Fault("schema", status=503, times=100))
        with serve_app(settings) as second:
            rules = second.client.get("/api/rules").json()
            assert rules["source"] == "last good copy"
            assert rules["label"].startswith("rules: last good copy, fetched")
            assert "Injected fault 503" in rules["problem"]
            upstream.emulator.reset_log()
            refused = second.client.post("/api/jobs", json={"prompt": "a cat", "num_images": 5})
            assert refused.status_code == 422, "never looser than the live schema"
            assert upstream.emulator.requests == []


def test_with_no_copy_and_no_schema_the_built_in_rules_apply(tmp_path: Path) -> None:
    with serve_emulator() as running:
        running.emulator.faults.add(Fault("schema", kind="malformed", times=100))
        with serve_app(make_settings(tmp_path / "data", running)) as app:
            rules = app.client.get("/api/rules").json()
            assert rules["source"] == "built-in"
            assert rules["label"] == "rules: built-in"
            assert "could not be read" in rules["problem"]
            page = Elements(app.client.get("/").text)
            assert page.texts["rules-status"].split()[:2] == ["rules:", "built-in"]
            assert len(page.named("image_size")) == len(IMAGE_SIZES)


def test_demo_mode_reads_the_emulator_s_schema_the_same_way(tmp_path: Path) -> None:
    with serve_app(make_settings(tmp_path / "data", None)) as demo:
        rules = demo.client.get("/api/rules").json()
        assert rules["source"] == "live"
        assert rules["differences"] == []


def test_the_schema_is_read_again_on_the_timer(tmp_path: Path, emulator: RunningEmulator) -> None:
    # 0.3 s instead of 15 min: the loop itself, not a stand-in, picks up the change.
    settings = make_settings(tmp_path / "data", emulator, schema_refresh_minutes=0.005)
    with serve_app(settings) as app:
        assert app.client.get("/api/rules").json()["limits"]["num_images_max"] == 6
        emulator.config.schema_overrides = NARROW
        wait_until(
            lambda: app.client.get("/api/rules").json()["limits"]["num_images_max"] == 4,
            timeout=20,
            what="the timer to read the narrowed schema",
        )


# --- A live schema without the built-in default size ---------------------------------------

WITHOUT_AUTO_2K = [size for size in IMAGE_SIZES if size not in ("auto_2K", "auto_4K")]


@pytest.fixture(scope="module")
def without_default(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    """PixelDojo's schema lists no auto_2K (and still names it its default)."""
    with serve_emulator(schema_overrides={"image_size": {"enum": WITHOUT_AUTO_2K}}) as upstream:
        data = tmp_path_factory.mktemp("without-default") / "data"
        with serve_app(make_settings(data, upstream)) as running:
            yield running


def test_a_prompt_alone_runs_at_the_first_allowed_size_from_the_api_and_the_form(
    without_default: RunningApp,
) -> None:
    client = without_default.client
    rules = client.get("/api/rules").json()
    assert rules["fields"]["image_size"]["default"] == WITHOUT_AUTO_2K[0]
    made = client.post("/api/jobs", json={"prompt": "a cat"})
    assert made.status_code == 202, made.text
    assert made.json()["parameters"]["image_size"] == WITHOUT_AUTO_2K[0]
    assert wait_for_job(client, made.json()["id"])["status"] == "completed"

    page = Elements(client.get("/").text)
    chosen = [attrs["value"] for attrs in page.named("image_size") if "checked" in attrs]
    assert chosen == [WITHOUT_AUTO_2K[0]], "the form starts on a size it may send"
    posted = client.post("/jobs", data={"prompt": "a dog", "num_images": "1"}, headers=HTMX)
    assert posted.status_code in (200, 303), posted.text
    jobs = client.get("/api/jobs").json()["items"]
    assert jobs[0]["parameters"]["prompt"] == "a dog"
    assert jobs[0]["parameters"]["image_size"] == WITHOUT_AUTO_2K[0]


def test_presets_say_how_the_live_schema_changes_them(without_default: RunningApp) -> None:
    schema = {"image_size": {"enum": ["square_hd", "portrait_16_9"]}}
    with (
        serve_emulator(schema_overrides=schema) as upstream,
        serve_app(
            make_settings(without_default.settings.data_dir.parent / "narrower", upstream)
        ) as app,
    ):
        presets = {preset["slug"]: preset for preset in app.client.get("/api/presets").json()}
    landscape = presets["dramatic-landscape"]
    assert landscape["available"] and landscape["parameters"]["image_size"] == "square_hd"
    assert landscape["note"] == (
        "Dramatic landscape runs at Square HD: PixelDojo's schema does not allow its Landscape 16:9"
    )
    assert presets["cyberpunk-street"]["note"] is None
