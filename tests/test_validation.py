"""Bad input is answered 422 naming the field, and costs nothing: the upstream sees no request."""

from __future__ import annotations

import re
from typing import Any

import pytest

from app.domain.parameters import PROMPT_MAX_CHARS
from tests.support.apps import RunningApp
from tests.support.emulators import RunningEmulator

INVALID_BODIES: list[tuple[str, dict[str, Any], str]] = [
    ("empty prompt", {"prompt": ""}, "prompt"),
    ("blank prompt", {"prompt": "   \n "}, "prompt"),
    ("missing prompt", {"image_size": "auto_2K"}, "prompt"),
    ("prompt too long", {"prompt": "x" * (PROMPT_MAX_CHARS + 1)}, "prompt"),
    ("num_images 0", {"prompt": "a cat", "num_images": 0}, "num_images"),
    ("num_images 7", {"prompt": "a cat", "num_images": 7}, "num_images"),
    ("num_images not a number", {"prompt": "a cat", "num_images": "two"}, "num_images"),
    ("unknown image_size", {"prompt": "a cat", "image_size": "huge"}, "image_size"),
    (
        "width out of range",
        {"prompt": "a cat", "image_size": "custom", "customWidth": 5000, "customHeight": 2000},
        "customWidth",
    ),
    (
        "height out of range",
        {"prompt": "a cat", "image_size": "custom", "customWidth": 2000, "customHeight": 100},
        "customHeight",
    ),
    (
        "custom size below the pixel budget",
        {"prompt": "a cat", "image_size": "custom", "customWidth": 1024, "customHeight": 1024},
        "customHeight",
    ),
    (
        "custom size without height",
        {"prompt": "a cat", "image_size": "custom", "customWidth": 2560},
        "customHeight",
    ),
    (
        "width without custom size",
        {"prompt": "a cat", "image_size": "auto_2K", "customWidth": 2560},
        "customWidth",
    ),
    ("seed below range", {"prompt": "a cat", "seed": -2}, "seed"),
    ("seed above range", {"prompt": "a cat", "seed": 2**31}, "seed"),
    ("unknown field", {"prompt": "a cat", "aspect_ratio": "1:1"}, "aspect_ratio"),
    ("unknown preset", {"prompt": "a cat", "preset": "nope"}, "preset"),
    ("bad model id", {"prompt": "a cat", "model": "../jobs"}, "model"),
]


@pytest.mark.parametrize(
    ("body", "field"),
    [(body, field) for _, body, field in INVALID_BODIES],
    ids=[name for name, _, _ in INVALID_BODIES],
)
def test_invalid_api_input_is_422_naming_the_field_and_sends_nothing(
    body: dict[str, Any], field: str, app: RunningApp, emulator: RunningEmulator
) -> None:
    emulator.emulator.reset_log()  # the schema read at start; from here, not one request
    answer = app.client.post("/api/jobs", json=body)
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "invalid_parameters"
    assert field in error["fields"], error
    assert field in error["message"]
    assert emulator.emulator.requests == [], "validation must happen before any upstream request"
    assert app.client.get("/api/jobs").json()["items"] == [], "no job is recorded"


def test_invalid_form_input_shows_inline_errors_and_sends_nothing(
    app: RunningApp, emulator: RunningEmulator
) -> None:
    emulator.emulator.reset_log()
    form = {
        "prompt": "",
        "image_size": "custom",
        "customWidth": "wide",
        "customHeight": "2000",
        "num_images": "9",
        "seed": "",
    }
    answer = app.client.post("/jobs", data=form, headers={"HX-Request": "true"})
    assert answer.status_code == 422
    assert answer.headers["hx-retarget"] == "#generate-form"
    page = answer.text
    for field in ("prompt", "customWidth", "num_images"):
        assert f'id="{field}-error"' in page, field
    assert 'value="2000"' in page, "what the person typed is kept"
    assert emulator.emulator.requests == []


def test_hidden_custom_fields_are_ignored_when_the_size_is_named(
    app: RunningApp, emulator: RunningEmulator
) -> None:
    form = {"prompt": "a cat", "image_size": "square_hd", "customWidth": "10", "num_images": "1"}
    answer = app.client.post("/jobs", data=form)
    assert answer.status_code == 303
    (run,) = emulator.emulator.requests_to("run")
    seed = run.body.pop("seed")  # drawn by the app: the seed left random is still known
    assert run.body == {"prompt": "a cat", "image_size": "square_hd", "num_images": 1}
    assert 0 <= seed <= 2_147_483_647


def test_a_bad_model_id_in_the_form_is_refused_naming_the_field(
    app: RunningApp, emulator: RunningEmulator
) -> None:
    form = {"prompt": "a cat", "num_images": "1", "model": "Not A Model/../x"}
    answer = app.client.post("/jobs", data=form, headers={"HX-Request": "true"})
    assert answer.status_code == 422
    assert 'id="model-error"' in answer.text
    assert app.client.get("/api/jobs").json()["items"] == [], "no job is recorded"


@pytest.mark.both_databases
@pytest.mark.parametrize(
    "path",
    [
        "/api/jobs/100000000000000000000",
        "/api/images/100000000000000000000",
        "/api/gallery/images/100000000000000000000",
        "/api/jobs?cursor=100000000000000000000",
    ],
)
def test_a_record_number_too_large_for_the_database_is_not_found(
    app: RunningApp, path: str
) -> None:
    answer = app.client.get(path)
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"
    page = app.client.get("/jobs/100000000000000000000")
    assert page.status_code == 404
    assert "There is nothing with a number that large." in page.text


@pytest.mark.both_databases
def test_no_number_in_an_address_makes_the_database_fail(app: RunningApp) -> None:
    """Every page and API route that takes a number, given numbers past what the database's
    columns hold (32-bit, 64-bit and beyond): a 404 or a 422, never a 500."""
    from tests.support.team import all_routes

    numbered = [path for method, path in all_routes() if method == "GET" and "{" in path]
    assert len(numbered) > 10
    queries = [
        "/api/jobs?cursor={n}",
        "/api/gallery?collection={n}",
        "/api/gallery?user={n}",
        "/api/gallery/jobs?before={n}",
        "/?job={n}",
        "/?remix={n}",
        "/?remix=1&image={n}",
    ]
    for number in (2**31, 2**63 - 1, 2**63, 10**20):
        for path in numbered:
            url = re.sub(r"\{[^}]+\}", str(number), path)
            answer = app.client.get(url)
            assert answer.status_code in (404, 422), (url, answer.status_code, answer.text[:200])
        for query in queries:
            url = query.format(n=number)
            answer = app.client.get(url)
            assert answer.status_code < 500, (url, answer.status_code, answer.text[:200])
