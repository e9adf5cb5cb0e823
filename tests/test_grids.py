"""Grids: the plan and its cost, then grids made on a server, their zip and contact sheet."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from app.core.errors import InvalidParameters
from app.domain.grid_plans import MAX_CELLS, AxisSpec, GridRequest, plan_grid, plan_summary
from app.domain.presets import PRESETS_BY_SLUG
from app.features.grids import records as grid_records
from app.features.people import accounts
from app.storage.db.engine import Database
from tests.support.apps import SAME_ORIGIN, RunningApp, make_settings, serve_app
from tests.support.databases import DatabaseChoice
from tests.support.emulators import RunningEmulator
from tests.support.waiting import wait_until
from tests.support.zip_readers import assert_readable_by_anyone


def plan(prompt: str = "a lighthouse at dawn", *axes: str, token: str | None = "t", **base: Any):
    request = GridRequest(
        parameters={"prompt": prompt, **base}, axes=[AxisSpec.parse(text) for text in axes]
    )
    return plan_grid(request, default_model="seedream-4", token=token)


def refusal(*axes: str, prompt: str = "a lighthouse at dawn", **base: Any) -> dict[str, str]:
    with pytest.raises(InvalidParameters) as refused:
        plan(prompt, *axes, **base)
    return refused.value.field_errors


# --- The plan and its cost ------------------------------------------------------------


def test_a_plan_has_one_job_per_cell_and_costs_what_its_images_cost() -> None:
    made = plan("a lighthouse", "preset=cyberpunk-street,food-overhead", "seed=1,2,3", num_images=2)
    summary = plan_summary(made)
    assert (summary["columns"], summary["rows"], summary["tabs"]) == (2, 3, 1)
    assert (summary["jobs"], summary["images"], summary["estimated_credits"]) == (6, 12, 12.0)
    assert [axis["labels"] for axis in summary["axes"]] == [
        ["Cyberpunk street", "Food overhead"],
        ["1", "2", "3"],
    ]
    # Row by row: the top row's cells come first.
    assert [(cell.x, cell.y) for cell in made.cells][:3] == [(0, 0), (1, 0), (0, 1)]
    cyberpunk = PRESETS_BY_SLUG["cyberpunk-street"]
    first = made.cells[0]
    # With a prompt of the request's own, a preset gives its size and every cell draws that
    # prompt; the seed and the number of images come from the rest of the request.
    assert first.params.upstream_body() == {
        "prompt": "a lighthouse",
        "image_size": cyberpunk.image_size,
        "seed": 1,
        "num_images": 2,
    }
    assert first.preset is None, "a prompt of one's own is not the preset's work"
    assert summary["notes"] == [
        "Every cell draws the prompt “a lighthouse”; each preset gives its size."
    ]


def test_presets_draw_their_own_prompts_when_the_request_has_none() -> None:
    made = plan("", "preset=cyberpunk-street,food-overhead", "seed=1")
    cyberpunk, food = PRESETS_BY_SLUG["cyberpunk-street"], PRESETS_BY_SLUG["food-overhead"]
    bodies = [cell.params.upstream_body() for cell in made.cells]
    assert [body["prompt"] for body in bodies] == [cyberpunk.prompt, food.prompt]
    assert [body["image_size"] for body in bodies] == [cyberpunk.image_size, food.image_size]
    assert [cell.preset for cell in made.cells] == ["cyberpunk-street", "food-overhead"]
    assert made.notes == ("Each preset draws its own prompt at its own size.",)
    assert made.prompt == "Presets: Cyberpunk street, Food overhead"


def test_every_kind_of_axis_changes_what_it_names() -> None:
    sizes = plan("a cat on a mat", "size=square_hd, 2560x1440", 'prompt=cat,dog,"red fox"')
    bodies = [cell.params.upstream_body() for cell in sizes.cells]
    assert [body["prompt"] for body in bodies] == [
        "a cat on a mat",
        "a cat on a mat",
        "a dog on a mat",
        "a dog on a mat",
        "a red fox on a mat",
        "a red fox on a mat",
    ]
    assert bodies[1]["image_size"] == "custom"
    assert (bodies[1]["customWidth"], bodies[1]["customHeight"]) == (2560, 1440)
    assert sizes.axes[0].labels == ("Square HD", "2560×1440")
    # A custom side keeps the other side of the named size it starts from.
    widths = plan("a cat", "width=2560,3000", image_size="landscape_16_9")
    assert [(c.params.customWidth, c.params.customHeight) for c in widths.cells] == [
        (2560, 1440),
        (3000, 1440),
    ]
    counts = plan("a cat", "images=1,3", "seed=7", "size=square,portrait_16_9")
    assert counts.shape == (2, 1, 2)
    assert counts.images == 8 and counts.credits == 8.0


def test_random_seeds_are_drawn_once_per_token() -> None:
    first = plan("a cat", "seed=random:4", token="form-token")
    again = plan("a cat", "seed=random:4", token="form-token")
    other = plan("a cat", "seed=random:4", token="another")
    seeds = [cell.params.seed for cell in first.cells]
    assert len(set(seeds)) == 4
    assert seeds == [cell.params.seed for cell in again.cells], "the plan shown is the grid made"
    assert seeds != [cell.params.seed for cell in other.cells]
    assert AxisSpec.parse("seed=3 random").random == 3


def test_bad_axes_are_refused_by_name_before_anything_is_made() -> None:
    assert "no preset is called 'noir'" in refusal("preset=noir")["x"]
    assert "num_images=9" in refusal("seed=1", "images=1,9")["y"]
    assert "not a whole number" in refusal("seed=1,two")["x"]
    assert "listed twice" in refusal("seed=1,1")["x"]
    assert "varies seed already" in refusal("seed=1,2", "seed=3,4")["y"]
    assert "has no “dog” to replace" in refusal("prompt=dog,cat")["x"]
    assert "cannot be an axis" in refusal("colour=red,blue")["x"]
    assert "not a size" in refusal("size=huge")["x"]
    # A cell the rules refuse is refused as a run would be: prompt, field and all.
    assert refusal("seed=1,2", prompt="   ") == {"prompt": "must not be empty"}
    too_many = refusal(
        "seed=" + ",".join(map(str, range(MAX_CELLS // 2 + 1))), "size=square,auto_2K"
    )
    assert f"more than {MAX_CELLS}" in too_many["axes"]
    with pytest.raises(ValueError, match="NAME=VALUE"):
        AxisSpec.parse("1,2,3")


# --- Grids on a server ------------------------------------------------------------------


def wait_for_grid(client: httpx.Client, grid_id: int, timeout: float = 30) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        grid: dict[str, Any] = client.get(f"/api/grids/{grid_id}").json()
        return grid if grid["finished"] else None

    result: dict[str, Any] = wait_until(finished, timeout=timeout, what=f"grid {grid_id}")
    return result


GRID = {
    "parameters": {"prompt": "a lighthouse at dawn", "num_images": 1},
    "axes": [
        {"param": "preset", "values": ["cyberpunk-street", "food-overhead"]},
        {"param": "seed", "values": [11, 22, 33]},
    ],
}


def test_a_plan_is_priced_and_nothing_is_sent(app: RunningApp, emulator: RunningEmulator) -> None:
    answer = app.client.post("/api/grids/plan", json=GRID)
    assert answer.status_code == 200, answer.text
    planned = answer.json()
    assert (planned["jobs"], planned["images"], planned["estimated_credits"]) == (6, 6, 6.0)
    assert len(planned["cells"]) == 6
    bad = app.client.post(
        "/api/grids/plan", json={**GRID, "axes": [{"param": "seed", "values": [1, 10**12]}]}
    )
    assert bad.status_code == 422
    assert "seed=1000000000000" in bad.json()["error"]["fields"]["x"]
    assert emulator.emulator.requests_to("run") == []


@pytest.mark.both_databases
def test_a_grid_fills_in_is_paid_once_and_goes_away_as_zip_and_contact_sheet(
    app: RunningApp, emulator: RunningEmulator
) -> None:
    headers = {"Idempotency-Key": "grid-1"}
    made = app.client.post("/api/grids", json=GRID, headers=headers)
    assert made.status_code == 202, made.text
    grid_id = made.json()["id"]
    grid = wait_for_grid(app.client, grid_id)
    assert [cell["status"] for cell in grid["cells"]] == ["completed"] * 6
    assert {cell["parameters"]["seed"] for cell in grid["cells"]} == {11, 22, 33}
    assert all(len(cell["images"]) == 1 for cell in grid["cells"])
    assert len(emulator.emulator.requests_to("run")) == 6

    again = app.client.post("/api/grids", json=GRID, headers=headers)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == grid_id
    other = app.client.post(
        "/api/grids", json={**GRID, "parameters": {"prompt": "other"}}, headers=headers
    )
    assert other.status_code == 422
    assert len(emulator.emulator.requests_to("run")) == 6, "a replay sends nothing"

    job_page = app.client.get(f"/jobs/{grid['cells'][0]['job_id']}").text
    assert f'href="/grids/{grid_id}"' in job_page, "a job says which grid it belongs to"
    grid_page = app.client.get(f"/grids/{grid_id}").text
    assert grid_page.count('class="grid-cell status-completed"') == 6

    listed = app.client.get("/api/grids").json()["items"]
    assert [(item["id"], item["cells"], item["done"]) for item in listed] == [(grid_id, 6, 6)]

    grid_zip = app.client.get(f"/api/grids/{grid_id}/zip").content
    assert_readable_by_anyone(grid_zip)  # a streaming reader takes it, unzipped by anyone
    archive = zipfile.ZipFile(io.BytesIO(grid_zip))
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["count"] == 6
    assert manifest["selection"]["grid"] == grid_id
    assert len([name for name in archive.namelist() if name.endswith(".png")]) == 6

    sheet = app.client.get(f"/api/grids/{grid_id}/contact-sheet.png")
    assert sheet.headers["content-type"] == "image/png"
    picture = Image.open(io.BytesIO(sheet.content))
    assert "Grid: " in picture.text["parameters"]  # type: ignore[attr-defined]
    # Two columns and three rows of 256-pixel cells, with labels around them.
    assert picture.width >= 2 * 256 and picture.height >= 3 * 256
    assert_cells_drawn(picture, columns=2, rows=3)


def test_the_contact_sheet_says_a_cell_was_stopped_as_the_sheet_s_page_does() -> None:
    from app.features.grids.contact_sheet import _cell_note
    from app.storage.db.tables import STOPPED_LABEL, GridCell, Job, JobStatus, utcnow

    def cell(job: Job | None = None, **fields: Any) -> grid_records.CellView:
        row = GridCell(grid_id=1, position=0, x=0, y=0, z=0, parameters={}, **fields)
        return grid_records.CellView(cell=row, job=job, images=[])

    assert _cell_note(cell(stopped_at=utcnow())) == "Stopped: not sent"
    assert _cell_note(cell()) == "Not submitted yet"

    def job(**fields: Any) -> Job:
        return Job(
            id=1,
            model="seedream-4",
            prompt="p",
            image_size="auto_2K",
            num_images=1,
            request_body={},
            status=JobStatus.PENDING,
            **fields,
        )

    assert _cell_note(cell(job(), job_id=1)) == JobStatus.PENDING.label
    assert _cell_note(cell(job(stopped_at=utcnow()), job_id=1)) == STOPPED_LABEL


def assert_cells_drawn(picture: Image.Image, *, columns: int, rows: int) -> None:
    """Every cell of the sheet holds a picture (not the white page, not an empty box)."""
    from app.features.grids.contact_sheet import CELL, GAP

    rgb = picture.convert("RGB")
    right, bottom = rgb.width - 24, rgb.height - 24  # MARGIN
    for row in range(rows):
        for column in range(columns):
            x = right - (columns - column) * CELL - (columns - column - 1) * GAP + CELL // 2
            y = bottom - (rows - row) * CELL - (rows - row - 1) * GAP + CELL // 2
            colours = {rgb.getpixel((x + dx, y + dy)) for dx in (-40, 0, 40) for dy in (-40, 0, 40)}
            assert colours - {(255, 255, 255), (232, 232, 236)}, (row, column)


@pytest.mark.both_databases
def test_a_grid_over_the_budget_is_refused_whole(
    tmp_path: Path, emulator: RunningEmulator, database: DatabaseChoice
) -> None:
    settings = make_settings(tmp_path / "data", emulator, database=database)
    db = Database.for_settings(settings)
    db.migrate()
    accounts.create_user(db, name="Ada", password="correct horse battery", is_admin=True)
    max_user = accounts.create_user(db, name="Max", password="correct horse battery")
    assert max_user.id is not None
    accounts.set_budgets(
        db, user_id=max_user.id, changes={"daily_budget": 5, "monthly_budget": None}
    )
    with serve_app(settings) as app, httpx.Client(base_url=app.url, headers=SAME_ORIGIN) as max_:
        max_.post("/sign-in", data={"name": "Max", "password": "correct horse battery"})
        refused = max_.post("/api/grids", json=GRID)
        assert refused.status_code == 403, refused.text
        assert "This grid would use 6 credits" in refused.json()["error"]["message"]
        batch = max_.post("/api/jobs/check", json={"jobs": [{"prompt": "a"}] * 6})
        assert batch.status_code == 403
        fits = max_.post("/api/jobs/check", json={"jobs": [{"prompt": "a", "num_images": 2}] * 2})
        assert fits.json() == {"jobs": 2, "images": 4, "estimated_credits": 4.0}
    assert grid_records.list_grids(db)[0] == []
    assert emulator.emulator.requests_to("run") == []
    db.dispose()


@pytest.mark.both_databases
def test_a_grid_left_half_submitted_is_taken_up_at_the_next_start(
    tmp_path: Path, emulator: RunningEmulator, database: DatabaseChoice
) -> None:
    settings = make_settings(tmp_path / "data", emulator, database=database)
    db = Database.for_settings(settings)
    db.migrate()
    request = GridRequest.model_validate(GRID)
    made = plan_grid(request, default_model=settings.model)
    grid, _ = grid_records.create_grid(
        db, plan=made, request=request.model_dump(mode="json"), user=None, idempotency_key=None
    )
    assert grid.id is not None
    # As a worker that died would leave it: the grid still held, by nobody alive.
    grid_records.claim_runner(db, grid_id=grid.id, worker_id="gone:1:x", lease_seconds=0)
    with serve_app(settings) as app:
        finished = wait_for_grid(app.client, grid.id)
    assert [cell["status"] for cell in finished["cells"]] == ["completed"] * 6
    assert len(emulator.emulator.requests_to("run")) == 6
    db.dispose()


def test_the_grid_form_shows_the_cost_as_typed_and_refuses_by_axis(
    app: RunningApp, emulator: RunningEmulator
) -> None:
    form = {
        "prompt": "a cat on a mat",
        "image_size": "square",
        "num_images": "2",
        "axis_x": "prompt",
        "axis_x_values": "cat, dog, fox",
        "axis_y": "seed",
        "axis_y_values": "random 2",
        "submission_token": "tok-1",
    }
    plan = app.client.post("/grids/plan", data=form)
    assert 'data-jobs="6"' in plan.text and 'data-credits="12"' in plan.text
    refused = app.client.post("/grids", data={**form, "axis_y_values": "1, x"})
    assert refused.status_code == 422
    assert "&#39;x&#39; is not a whole number" in refused.text
    swapped = app.client.post(
        "/grids", data={**form, "axis_y_values": "1, x"}, headers={"HX-Request": "true"}
    )
    assert swapped.status_code == 422 and swapped.headers["HX-Retarget"] == "#grid-form"
    assert swapped.text.lstrip().startswith("<form"), "the form alone, not a page inside it"
    assert emulator.emulator.requests_to("run") == []
    made = app.client.post("/grids", data=form)
    assert made.status_code == 303
    again = app.client.post("/grids", data=form)
    assert again.headers["location"] == made.headers["location"], "one token, one grid"
    grid = wait_for_grid(app.client, int(made.headers["location"].rsplit("/", 1)[1]))
    # The seeds drawn are kept: a remix starts from them, not from new ones.
    seeds = {cell["parameters"]["seed"] for cell in grid["cells"]}
    assert len(seeds) == 2
    remix = app.client.get(f"/grids/new?remix={grid['id']}").text
    assert all(str(seed) in remix for seed in seeds)
