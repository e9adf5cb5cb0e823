"""Every PixelDojo image model: the catalogue (read, kept, offered with its cost), a form
rendered from any model's schema that sends what is typed as the schema types it, and the
model recorded and shown wherever a job is."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.emulator import Fault
from app.emulator.catalogue import FLUX, SEEDREAM_EDIT, VIDEO
from tests.support.apps import RunningApp, make_settings, serve_app
from tests.support.databases import DatabaseChoice
from tests.support.emulators import RunningEmulator, serve_emulator
from tests.support.jobs import wait_for_job
from tests.support.markup import Elements

HTMX = {"HX-Request": "true"}
# A model whose schema holds one field of every kind the form knows, and two it does not.
EVERY_KIND = "every-kind"
EVERY_KIND_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "prompt": {"type": "string", "minLength": 1, "maxLength": 300},
        "style_name": {"type": "string", "maxLength": 40, "description": "A named style"},
        "sampler": {"type": "string", "enum": ["euler", "dpm++"], "default": "euler"},
        "quality": {"type": "integer", "enum": [1, 2, 3]},
        "steps": {"type": "integer", "minimum": 1, "maximum": 50, "default": 20},
        "strength": {"type": "number", "minimum": 0, "maximum": 1},
        "tiling": {"type": "boolean", "default": False},
        "upscale": {"type": "boolean", "default": True},
        "seed": {"type": "integer", "minimum": 0, "maximum": 2_147_483_647},
        "image_urls": {
            "type": "array",
            "items": {"type": "string", "format": "uri"},
            "maxItems": 3,
        },
        "regions": {"type": "array", "items": {"type": "object"}},
        "extra": {"type": "object", "default": {"a": 1}},
    },
    "required": ["prompt", "steps"],
    "additionalProperties": False,
}


def picked(site: RunningApp, model: str) -> str:
    """The form of `model` as a person gets it once picked. The GET shows what is stored; for
    a model never read it asks, once shown, for its schema by POST (htmx, on load)."""
    shown = site.client.get("/playground/form", params={"model": model}, headers=HTMX)
    assert shown.status_code == 200
    reading = [a for _, a in Elements(shown.text).elements if "data-rules-reading" in a]
    if not reading:
        return shown.text
    assert (reading[0]["hx-post"], reading[0]["hx-trigger"]) == ("/upstream/rules/refresh", "load")
    answer = site.client.post("/upstream/rules/refresh", data={"model": model}, headers=HTMX)
    assert answer.status_code == 200
    assert "data-rules-reading" not in answer.text
    return answer.text


@pytest.fixture(scope="module")
def upstream() -> Iterator[RunningEmulator]:
    extra = {
        EVERY_KIND: {
            "card": {"name": "Every kind", "creditCost": {"amount": 3, "type": "per_job"}},
            "schema": EVERY_KIND_SCHEMA,
        }
    }
    with serve_emulator(extra_models=extra) as running:
        yield running


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, upstream: RunningEmulator
) -> Iterator[RunningApp]:
    data = tmp_path_factory.mktemp("models") / "data"
    with serve_app(make_settings(data, upstream)) as running:
        yield running


def test_the_catalogue_lists_the_image_models_with_their_cost_seedream_first(
    site: RunningApp,
) -> None:
    listed = site.client.get("/api/models").json()
    assert listed["source"] == "live"
    ids = [model["api_id"] for model in listed["models"]]
    assert ids[0] == "seedream-4" and listed["models"][0]["default"] is True
    assert {FLUX, SEEDREAM_EDIT, EVERY_KIND} <= set(ids)
    assert VIDEO not in ids, "a video model is not offered"
    flux = next(model for model in listed["models"] if model["api_id"] == FLUX)
    assert (flux["credits"], flux["per_job"], flux["cost"]) == (2, False, "2 credits per image")

    picker = Elements(site.client.get("/").text)
    options = [
        a["value"] for tag, a in picker.elements if tag == "option" and a.get("value") in ids
    ]
    assert options[0] == "seedream-4" and set(options) == set(ids)
    assert picker.by_id("model")["hx-get"] == "/playground/form"


@pytest.mark.both_databases
def test_the_catalogue_s_last_good_copy_serves_while_pixeldojo_cannot_be_read(
    tmp_path: Path, database: DatabaseChoice
) -> None:
    with serve_emulator() as running:
        settings = make_settings(tmp_path / "data", running, database=database)
        with serve_app(settings):
            pass
        running.emulator.faults.add(Fault("models", status=503, times=100))
        with serve_app(settings) as app:
            listed = app.client.get("/api/models").json()
            assert listed["source"] == "last good copy"
            assert "503" in listed["problem"]
            assert FLUX in [model["api_id"] for model in listed["models"]]


def test_the_cost_shown_and_reserved_is_the_catalogue_s(site: RunningApp) -> None:
    form = Elements(picked(site, FLUX))
    cost = next(a for tag, a in form.elements if "data-cost" in a)
    assert cost["data-credits-per-image"] == "2.0"
    assert cost["data-count-input"] == "param-num_images"
    assert "· 2 credits" in site.client.get("/playground/form", params={"model": FLUX}).text
    check = site.client.post(
        "/api/jobs/check",
        json={"jobs": [{"model": FLUX, "prompt": "a fox", "num_images": 3}, {"prompt": "a fox"}]},
    )
    assert check.json()["estimated_credits"] == 2 * 3 + 1
    per_job = Elements(picked(site, EVERY_KIND))
    cost = next(a for tag, a in per_job.elements if "data-cost" in a)
    assert (cost["data-credits-per-job"], cost["data-credits-per-image"]) == ("3.0", "0.0")


def test_a_form_is_rendered_from_a_schema_with_every_kind_of_field(site: RunningApp) -> None:
    form = Elements(picked(site, EVERY_KIND))
    tags = {
        a.get("name"): tag for tag, a in form.elements if (a.get("name") or "").startswith("param.")
    }
    assert tags["param.prompt"] == "textarea"
    assert form.by_id("prompt")["maxlength"] == "300"
    assert tags["param.style_name"] == "input" and form.by_id("param-style_name")["type"] == "text"
    assert tags["param.sampler"] == tags["param.quality"] == "select"
    options = [a["value"] for tag, a in form.elements if tag == "option"]
    assert {"euler", "dpm++", "1", "2", "3"} <= set(options)
    steps = form.by_id("param-steps")
    assert (steps["type"], steps["min"], steps["max"], steps["step"]) == ("number", "1", "50", "1")
    assert steps["value"] == "20", "a required field starts at its default"
    strength = form.by_id("param-strength")
    assert (strength["min"], strength["max"], strength["step"]) == ("0", "1", "any")
    assert form.by_id("param-tiling")["type"] == "checkbox"
    assert "checked" in form.by_id("param-upscale") and "checked" not in form.by_id("param-tiling")
    assert form.by_id("references") is not None, "the array of URIs is the reference picker"
    # What the form cannot set is shown, never an input.
    shown = [a.get("data-schema-field") for tag, a in form.elements if "data-not-sent" in a]
    assert shown == ["regions", "extra"]
    assert "param.regions" not in tags and "param.extra" not in tags


def test_the_values_typed_are_sent_as_the_schema_types_them(
    site: RunningApp, upstream: RunningEmulator
) -> None:
    posted = {
        "model": EVERY_KIND,
        "submission_token": "every-kind-1",
        "param.prompt": "a tin robot ",
        "param.style_name": "  pastel  ",
        "param.sampler": "dpm++",
        "param.quality": "2",
        "param.steps": "35",
        "param.strength": "0.45",
        "param.tiling": "false",
        "param.upscale": ["false", "true"],
        "param.regions": "[{}]",
    }
    upstream.emulator.reset_log()
    answer = site.client.post("/jobs", data=posted)
    assert answer.status_code == 303, answer.text
    (run,) = upstream.emulator.requests_to("run")
    sent = dict(run.body)
    seed = sent.pop("seed")
    assert isinstance(seed, int), "the app drew the seed and sent it"
    assert sent == {
        "prompt": "a tin robot ",
        "style_name": "  pastel  ",
        "sampler": "dpm++",
        "quality": 2,
        "steps": 35,
        "strength": 0.45,
        "tiling": False,
        "upscale": True,
    }
    job_id = int(answer.headers["location"].rsplit("/", 1)[-1])
    job = wait_for_job(site.client, job_id)
    assert job["model"] == EVERY_KIND and job["parameters"]["seed"] == seed
    page = Elements(site.client.get(f"/jobs/{job_id}").text)
    assert (
        "steps" in [text.strip() for text in page.texts.values()]
        or "steps" in site.client.get(f"/jobs/{job_id}").text
    )


def test_typing_mistakes_in_a_schema_form_are_named_and_cost_nothing(
    site: RunningApp, upstream: RunningEmulator
) -> None:
    upstream.emulator.reset_log()
    answer = site.client.post(
        "/jobs",
        data={
            "model": EVERY_KIND,
            "param.prompt": "",
            "param.steps": "3.5",
            "param.strength": "7",
            "param.quality": "4",
        },
        headers=HTMX,
    )
    assert answer.status_code == 422
    form = Elements(answer.text)
    assert "must be a whole number" in answer.text
    for field in ("prompt", "param-steps", "param-strength", "param-quality"):
        assert form.by_id(f"{field}-error") is not None, field
    assert upstream.emulator.requests == []


def test_picking_seedream_again_gives_its_hand_made_form_with_the_prompt_carried_over(
    site: RunningApp,
) -> None:
    answer = site.client.get(
        "/playground/form", params={"model": "seedream-4", "param.prompt": "a tin robot"}
    )
    form = Elements(answer.text)
    assert [a["value"] for a in form.named("image_size")][:2] == ["auto_2K", "auto_4K"]
    assert "a tin robot" in answer.text
    assert form.by_id("prompt")["name"] == "prompt"


def test_jobs_the_gallery_and_compare_show_the_model(site: RunningApp) -> None:
    made = site.client.post("/api/jobs", json={"model": FLUX, "prompt": "a lynx", "num_images": 1})
    flux_job = wait_for_job(site.client, made.json()["id"])
    assert flux_job["status"] == "completed"
    seedream = wait_for_job(
        site.client, site.client.post("/api/jobs", json={"prompt": "a lynx"}).json()["id"]
    )
    only_flux = site.client.get("/api/gallery", params={"model": FLUX}).json()["items"]
    assert [item["id"] for item in only_flux] == [flux_job["images"][0]["id"]]
    gallery = site.client.get("/gallery", params={"model": FLUX}).text
    assert FLUX in gallery
    datalist = Elements(site.client.get("/gallery").text)
    assert FLUX in [a.get("value") for tag, a in datalist.elements if tag == "option"]
    ids = [flux_job["images"][0]["id"], seedream["images"][0]["id"]]
    compare = site.client.get("/api/compare", params={"ids": ids}).json()
    (row,) = [row for row in compare["rows"] if row["name"] == "model"]
    assert row["values"] == [FLUX, "seedream-4"] and row["differs"]
    card = site.client.get(f"/jobs/{flux_job['id']}/card").text
    assert FLUX in card


def test_a_model_pixeldojo_does_not_list_is_refused_by_name_at_no_cost(
    site: RunningApp, upstream: RunningEmulator
) -> None:
    upstream.emulator.reset_log()
    answer = site.client.post("/api/jobs", json={"model": "no-such-model", "prompt": "a cat"})
    assert answer.status_code == 422
    assert "no-such-model" in answer.json()["error"]["fields"]["model"]
    grid = site.client.post(
        "/api/grids",
        json={
            "model": "no-such-model",
            "parameters": {"prompt": "a cat", "num_images": 1},
            "axes": [{"param": "seed", "values": [1, 2]}],
        },
    )
    assert grid.status_code == 422, grid.text
    assert "no-such-model" in grid.json()["error"]["fields"]["model"]
    # Refused from the catalogue: not even the made-up model's schema was asked for.
    assert upstream.emulator.requests == []


def test_without_a_catalogue_a_model_the_schema_says_is_missing_is_refused_unsent(
    tmp_path: Path,
) -> None:
    with serve_emulator() as running:
        # Both reads of the `models` route made at start (the catalogue, and the default
        # model's card, in either order) fail; the unknown model's card, asked later, answers.
        running.emulator.faults.add(Fault("models", status=503, times=2))
        with serve_app(make_settings(tmp_path / "data", running)) as app:
            assert app.client.get("/api/models").json()["source"] == "none"
            answer = app.client.post("/api/jobs", json={"model": "no-such-model", "prompt": "x"})
            assert answer.status_code == 422
            assert "no-such-model" in answer.json()["error"]["fields"]["model"]
            assert running.emulator.requests_to("run") == []
