"""A gallery of five jobs (four presets and sizes, and one that fails) made through the
emulator on a served app, shared by each module of tests of the gallery's JSON API:
`shared_emulator`, `shared_app` and `made` are fixtures, offered to every test through
tests/conftest.py, each made once per module (and per database). A module that uses them
keeps the calendar at FIXED_DAY itself (an autouse fixture of its own), so the gallery is
made, searched by today and counted by day on one day."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from app.domain.presets import PRESETS_BY_SLUG
from tests.support.apps import RunningApp, make_settings, serve_app
from tests.support.databases import DatabaseChoice
from tests.support.emulators import RunningEmulator, serve_emulator
from tests.support.jobs import wait_for_job


@dataclass
class Made:
    """The jobs the module's gallery starts with, by a short name."""

    jobs: dict[str, dict[str, Any]]

    def image(self, name: str, index: int = 0) -> int:
        image_id: int = self.jobs[name]["images"][index]["id"]
        return image_id


@pytest.fixture(scope="module")
def shared_emulator(module_database: DatabaseChoice) -> Iterator[RunningEmulator]:
    # One per database: tests count what the app sent upstream.
    with serve_emulator(job_seconds=0.1) as running:
        yield running


@pytest.fixture(scope="module")
def shared_app(
    tmp_path_factory: pytest.TempPathFactory,
    shared_emulator: RunningEmulator,
    module_database: DatabaseChoice,
) -> Iterator[RunningApp]:
    data_dir = tmp_path_factory.mktemp("gallery") / "data"
    settings = make_settings(data_dir, shared_emulator, database=module_database)
    with serve_app(settings) as running:
        yield running


FOOD = PRESETS_BY_SLUG["food-overhead"]
BODIES: dict[str, dict[str, Any]] = {
    "food": {**FOOD.params().upstream_body(), "preset": FOOD.slug},
    "dawn": {
        "prompt": "a lighthouse at dawn, watercolour",
        "image_size": "landscape_16_9",
        "seed": 11,
        "num_images": 2,
    },
    "night": {
        "prompt": "a lighthouse at night, oil painting",
        "image_size": "square_hd",
        "seed": 12,
        "num_images": 1,
    },
    "bicycle": {
        "prompt": "red bicycle against a blue wall, café terrace",
        "image_size": "custom",
        "customWidth": 2560,
        "customHeight": 1600,
        "seed": 5,
        "num_images": 1,
    },
}


@pytest.fixture(scope="module")
def made(shared_app: RunningApp) -> Made:
    client = shared_app.client
    ids = {}
    for name, body in BODIES.items():
        answer = client.post("/api/jobs", json=body)
        assert answer.status_code == 202, answer.text
        ids[name] = answer.json()["id"]
    failed = client.post("/api/jobs", json={"prompt": "this one breaks [[fail]]"})
    ids["failed"] = failed.json()["id"]
    jobs = {name: wait_for_job(client, job_id) for name, job_id in ids.items()}
    assert jobs["failed"]["status"] == "failed"
    assert all(jobs[name]["status"] == "completed" for name in BODIES)
    return Made(jobs)


def search(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    answer = client.get("/api/gallery", params=params)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def every_page(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    """All items, following next_cursor; the pages must not overlap."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = client.get(
            "/api/gallery", params={**params, **({"cursor": cursor} if cursor else {})}
        )
        assert page.status_code == 200, page.text
        items.extend(page.json()["items"])
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return items


def ids_of(items: list[dict[str, Any]]) -> list[int]:
    return [item["id"] for item in items]
