"""NUL and other control characters in what the app is sent: a name, an id or a key holds
none, a prompt or a description only line breaks and tabs. Anything else is a 422 naming the
field, before anything is stored or sent, the same on SQLite as on PostgreSQL (whose text
cannot hold a NUL at all: there these were server errors)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from app.core.errors import InvalidParameters
from app.core.text import CONTROL_MESSAGE, check_line, check_text, text_problems
from app.domain.grid_axes import GridRequest
from app.domain.grid_plans import request_from_record
from app.domain.model_params import ModelParams
from app.domain.parameters import GenerationParams
from app.domain.rules import SEEDREAM_RULES
from app.domain.runs import check_run
from app.features.people import accounts
from app.features.people.accounts import AccountError
from app.storage.db.engine import Database
from app.web.gate import SESSION_COOKIE
from tests.support.apps import InProcessClient, in_process, make_settings
from tests.support.databases import DatabaseChoice

pytestmark = pytest.mark.both_databases

# C0 (NUL, escape), DEL and C1 (NEL), alone and among words.
CONTROLS = ("a\x00b", "\x00", "red \x1b[31mtext", "a\x7f", "next\x85line")


@pytest.fixture
def client(tmp_path: Path, database: DatabaseChoice) -> Iterator[InProcessClient]:
    # Jobs stay pending: a refusal is all these tests look at.
    settings = make_settings(tmp_path / "data", None, database=database, demo_job_seconds=3600)
    with in_process(settings) as running:
        yield running


def refused(answer: httpx.Response, field: str) -> None:
    assert answer.status_code == 422, answer.text[:300]
    assert answer.json()["error"]["fields"] == {field: CONTROL_MESSAGE}


def test_a_prompt_with_a_control_character_is_refused_naming_it_and_costs_nothing(
    client: InProcessClient,
) -> None:
    for prompt in CONTROLS:
        refused(client.post("/api/jobs", json={"prompt": prompt}), "prompt")
        refused(
            client.post("/api/jobs/check", json={"jobs": [{"prompt": prompt}]}), "jobs.0.prompt"
        )
    assert client.get("/api/jobs").json()["items"] == [], "nothing was recorded or sent"


def test_a_prompt_keeps_its_line_breaks_and_tabs(client: InProcessClient) -> None:
    prompt = "a lighthouse\n\tat dawn\r\nin fog"
    answer = client.post("/api/jobs", json={"prompt": prompt})
    assert answer.status_code == 202, answer.text[:300]
    assert client.get(f"/api/jobs/{answer.json()['id']}").json()["parameters"]["prompt"] == prompt


def test_names_and_descriptions_with_control_characters_are_refused(
    client: InProcessClient,
) -> None:
    for text in CONTROLS:
        refused(client.post("/api/collections", json={"name": text}), "name")
        refused(
            client.post("/api/collections", json={"name": "Keepers", "description": text}),
            "description",
        )
        refused(client.post("/api/tokens", json={"name": text}), "name")
    kept = client.post("/api/collections", json={"name": "Keepers", "description": "one\ntwo"})
    assert kept.status_code == 201, kept.text[:300]
    address = f"/api/collections/{kept.json()['id']}"
    refused(client.patch(address, json={"name": "a\x00b"}), "name")
    refused(client.patch(address, json={"description": "a\x00b"}), "description")
    assert [c["name"] for c in client.get("/api/collections").json()] == ["Keepers"]

    preset: dict[str, Any] = {"name": "Fog", "description": "", "parameters": {"prompt": "fog"}}
    for field in ("name", "description"):
        refused(client.post("/api/team-presets", json={**preset, field: "a\x00b"}), field)
    refused(
        client.post("/api/team-presets", json={**preset, "parameters": {"prompt": "a\x00b"}}),
        "parameters.prompt",
    )
    assert client.get("/api/team-presets").json() == []


def test_keys_and_grid_axes_with_control_characters_are_refused(client: InProcessClient) -> None:
    key = {"Idempotency-Key": "key\x01"}
    refused(client.post("/api/jobs", json={"prompt": "fog"}, headers=key), "header.idempotency-key")
    grid: dict[str, Any] = {
        "parameters": {"prompt": "fog"},
        "axes": [{"param": "seed", "random": 2}],
    }
    refused(client.post("/api/grids", json=grid, headers=key), "header.idempotency-key")
    axis: dict[str, Any] = {"param": "prompt", "values": ["fog", "a\x00b"]}
    refused(client.post("/api/grids/plan", json={**grid, "axes": [axis]}), "axes.0.values")
    axis = {"param": "see\x00d", "random": 2}
    refused(client.post("/api/grids/plan", json={**grid, "axes": [axis]}), "axes.0.param")
    refused(client.post("/api/grids", json={**grid, "preset": "a\x00b"}), "preset")
    assert client.get("/api/jobs").json()["items"] == []
    assert client.get("/api/grids").json()["items"] == []


def test_forms_with_control_characters_are_refused_naming_the_field(
    client: InProcessClient,
) -> None:
    run = {"prompt": "fog", "image_size": "square", "num_images": "1"}
    for field in ("model", "submission_token"):
        answer = client.post("/jobs", data={**run, field: "a\x00b"})
        assert answer.status_code == 422, (field, answer.text[:300])
        assert f"{field}: {CONTROL_MESSAGE}" in answer.text
    answer = client.post("/grids", data={**run, "submission_token": "a\x00b"})
    assert answer.status_code == 422
    answer = client.post("/playground/try-all", data={"submission_token": "a\x00b"})
    assert answer.status_code == 422
    assert client.get("/api/jobs").json()["items"] == []

    for field in ("name", "description"):
        answer = client.post("/collections", data={"name": "Keepers", field: "a\x00b"})
        assert answer.status_code == 422, (field, answer.text[:300])
        answer = client.post("/presets", data={**run, "name": "Fog", field: "a\x00b"})
        assert answer.status_code == 422, (field, answer.text[:300])
        assert CONTROL_MESSAGE in answer.text
    assert client.get("/api/collections").json() == []
    assert client.get("/api/team-presets").json() == []

    job = client.post("/api/jobs", json={"prompt": "fog"}).json()["id"]
    answer = client.post(f"/jobs/{job}/new-seed", data={"token": "a\x00b"})
    assert answer.status_code == 422
    assert len(client.get("/api/jobs").json()["items"]) == 1


def test_a_name_with_a_control_character_signs_nobody_in_and_makes_no_account(
    client: InProcessClient, tmp_path: Path, database: DatabaseChoice
) -> None:
    db: Database = database.open(tmp_path / "data")
    try:
        # What `users add` and the people page call.
        with pytest.raises(AccountError) as refusal:
            accounts.create_user(db, name="ada\x00", password="a long enough password")
        assert refusal.value.field == "name"
        accounts.create_user(db, name="ada", password="a long enough password")
        assert accounts.find_user(db, name="ada\x00") is None
    finally:
        db.dispose()
    answer = client.post("/sign-in", data={"name": "ada\x00", "password": "a long enough password"})
    assert answer.status_code < 500
    assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")


def test_the_rule_keeps_line_breaks_and_tabs_in_a_text_only() -> None:
    assert check_text("one\ntwo\r\n\tthree") == "one\ntwo\r\n\tthree"
    for value in ("one\ntwo", "a\tb", *CONTROLS):
        with pytest.raises(ValueError, match=CONTROL_MESSAGE):
            check_line(value)
    for value in CONTROLS:
        with pytest.raises(ValueError, match=CONTROL_MESSAGE):
            check_text(value)
    # Another model's run: its values have no declared kind, at any depth.
    values = {"prompt": "ok\n", "style": {"names": ["fine", "a\x00b"]}, "steps": 4}
    assert text_problems(values) == {"style.names.1": CONTROL_MESSAGE}
    with pytest.raises(InvalidParameters) as refusal:
        check_run(ModelParams(values), SEEDREAM_RULES)
    assert refusal.value.field_errors["style.names.1"] == CONTROL_MESSAGE


def test_a_record_stored_before_the_rule_still_opens() -> None:
    """A SQLite gallery may keep a prompt or an axis value from before the rule: read back, it
    opens as it was; sent again as a new run, it is held to the rule like any other."""
    stored = {"prompt": "old \x1b[0mprompt\x00", "image_size": "square", "num_images": 1}
    assert GenerationParams.from_body(stored).prompt == stored["prompt"]
    with pytest.raises(ValidationError):
        GenerationParams.model_validate(stored)
    record = {"parameters": stored, "axes": [{"param": "prompt", "values": ["old", "ne\x01w"]}]}
    assert request_from_record(record).axes[0].values == ["old", "ne\x01w"]
    with pytest.raises(ValidationError):
        GridRequest.model_validate(record)
    with pytest.raises(InvalidParameters) as refusal:
        check_run(GenerationParams.from_body(stored), SEEDREAM_RULES)
    assert refusal.value.field_errors["prompt"] == CONTROL_MESSAGE
