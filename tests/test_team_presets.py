"""Team presets: validated like a run, stored as the upstream body, listed beside the eight."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.apps import RunningApp
from tests.support.emulators import RunningEmulator

GOOD: dict[str, Any] = {
    "name": "Moody harbour",
    "description": "Night-time harbour scenes in deep blues.",
    "parameters": {
        "prompt": "a harbour at night",
        "image_size": "custom",
        "customWidth": 2560,
        "customHeight": 1440,
        "seed": 7,
        "num_images": 2,
    },
}


@pytest.mark.both_databases
def test_a_preset_is_created_listed_read_and_deleted(app: RunningApp) -> None:
    created = app.client.post("/api/team-presets", json=GOOD)
    assert created.status_code == 201, created.text
    preset = created.json()
    assert preset["name"] == "Moody harbour"
    assert preset["parameters"] == GOOD["parameters"]
    assert preset["estimated_credits"] == 2

    assert [p["id"] for p in app.client.get("/api/team-presets").json()] == [preset["id"]]
    assert app.client.get(f"/api/team-presets/{preset['id']}").json() == preset

    # Beside the built-ins on the playground, and loadable into the form.
    page = app.client.get("/").text
    assert "Moody harbour" in page and f"team_preset={preset['id']}" in page
    form = app.client.get(f"/playground/form?team_preset={preset['id']}").text
    assert "a harbour at night" in form and 'value="2560"' in form and 'value="7"' in form

    assert app.client.delete(f"/api/team-presets/{preset['id']}").status_code == 204
    assert app.client.get("/api/team-presets").json() == []
    assert app.client.get(f"/api/team-presets/{preset['id']}").status_code == 404
    assert app.client.delete(f"/api/team-presets/{preset['id']}").status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 81}, "name"),
        ({"parameters": {"prompt": "  "}}, "parameters.prompt"),
        (
            {
                "parameters": {
                    "prompt": "a",
                    "image_size": "custom",
                    "customWidth": 100,
                    "customHeight": 100,
                }
            },
            "parameters.customWidth",
        ),
        ({"parameters": {"prompt": "a", "num_images": 9}}, "parameters.num_images"),
        ({"parameters": {"prompt": "a", "aspect_ratio": "1:1"}}, "parameters.aspect_ratio"),
    ],
)
def test_bad_presets_are_refused_naming_the_field(
    app: RunningApp, emulator: RunningEmulator, change: dict[str, Any], field: str
) -> None:
    emulator.emulator.reset_log()
    answer = app.client.post("/api/team-presets", json={**GOOD, **change})
    assert answer.status_code == 422
    assert field in answer.json()["error"]["fields"], answer.json()
    assert app.client.get("/api/team-presets").json() == []
    assert emulator.emulator.requests == []


@pytest.mark.both_databases
def test_names_are_unique_whatever_their_case_and_spacing(app: RunningApp) -> None:
    assert app.client.post("/api/team-presets", json=GOOD).status_code == 201
    again = app.client.post("/api/team-presets", json={**GOOD, "name": "  moody   HARBOUR "})
    assert again.status_code == 409, "a clash with what is there, not a malformed request"
    assert again.json()["error"]["fields"] == {"name": "a team preset with this name exists"}
    assert len(app.client.get("/api/team-presets").json()) == 1


def test_saving_from_the_form_shows_every_problem_inline(app: RunningApp) -> None:
    headers = {"HX-Request": "true"}
    form = {"name": "", "prompt": "", "image_size": "auto_2K", "num_images": "1"}
    answer = app.client.post("/presets", data=form, headers=headers)
    assert answer.status_code == 422
    assert answer.headers["hx-retarget"] == "#save-preset-form"
    assert 'id="preset-name-error"' in answer.text
    assert "<code>prompt</code> must not be empty" in answer.text

    form = {
        "name": "Quiet fjord",
        "description": "",
        "prompt": "a quiet fjord",
        "image_size": "square_hd",
        "num_images": "1",
        "seed": "12",
    }
    saved = app.client.post("/presets", data=form, headers=headers)
    assert saved.status_code == 200
    assert "preset-saved" in saved.headers["hx-trigger"]
    assert 'id="team-presets"' in saved.text and "Quiet fjord" in saved.text
    (preset,) = app.client.get("/api/team-presets").json()
    assert preset["parameters"] == {
        "prompt": "a quiet fjord",
        "image_size": "square_hd",
        "customWidth": None,
        "customHeight": None,
        "seed": 12,
        "num_images": 1,
    }
