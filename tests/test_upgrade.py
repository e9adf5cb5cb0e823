"""An upgrade loses nothing: today's app started on a data dir the release before it left
(tests/fixtures/upgrade-data.tar.gz, made by tests/fixtures/make_upgrade_data.py).

The schema is brought to the newest migration; every job, image, grid, team preset,
collection, favourite and trashed image is there and served; the API token still
works and the password still signs in. The one thing an upgrade costs: sessions
are signed by app/core/signing.py now, so a session cookie from before is refused
cleanly (a redirect to sign in, a 401 from the API), never a 500.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import tarfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic.script import ScriptDirectory

from app.storage.db.engine import migrations_config
from app.web.gate import SESSION_COOKIE
from tests.support.apps import CLIENT_TLS, SAME_ORIGIN, RunningApp, make_settings, serve_app
from tests.support.emulators import RunningEmulator

FIXTURE = Path(__file__).parent / "fixtures" / "upgrade-data.tar.gz"
PASSWORD = "correct horse battery"  # the fixture's (tests/fixtures/make_upgrade_data.py)


def _revision(data_dir: Path) -> str:
    with contextlib.closing(sqlite3.connect(data_dir / "playground.db")) as connection:
        (revision,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    return str(revision)


@pytest.fixture
def made(tmp_path: Path) -> dict[str, Any]:
    with tarfile.open(FIXTURE) as archive:
        archive.extractall(tmp_path, filter="data")
    made: dict[str, Any] = json.loads((tmp_path / "made.json").read_text())
    assert _revision(tmp_path / "data") == made["revision"]
    return made


@pytest.fixture
def upgraded(tmp_path: Path, made: dict[str, Any], emulator: RunningEmulator) -> Any:
    with serve_app(make_settings(tmp_path / "data", emulator)) as app:
        yield app


def _client(app: RunningApp, **headers: str) -> httpx.Client:
    return httpx.Client(
        base_url=app.url, timeout=30, headers={**SAME_ORIGIN, **headers}, verify=CLIENT_TLS
    )


def test_the_schema_is_brought_to_the_newest_migration(
    tmp_path: Path, made: dict[str, Any], upgraded: RunningApp
) -> None:
    head = ScriptDirectory.from_config(migrations_config()).get_current_head()
    assert _revision(tmp_path / "data") == head


def test_everything_made_before_is_there_and_served(
    made: dict[str, Any], upgraded: RunningApp
) -> None:
    with _client(upgraded, Authorization=f"Bearer {made['api_token']}") as client:
        me = client.get("/api/me")
        assert me.status_code == 200, me.text
        assert me.json()["name"] == "Ada", "the API token still works"

        image_ids: set[int] = set()
        for job_id in made["job_ids"] + made["grid_job_ids"]:
            job = client.get(f"/api/jobs/{job_id}").json()
            assert job["status"] == "completed"
            image_ids |= {image["id"] for image in job["images"]}
        assert image_ids == {int(image_id) for image_id in made["image_sha256"]}
        for image_id, sha256 in made["image_sha256"].items():
            served = client.get(f"/api/images/{image_id}")
            assert served.status_code == 200
            assert hashlib.sha256(served.content).hexdigest() == sha256
            assert client.get(f"/api/images/{image_id}/thumbnail").status_code == 200
            # Its images are 8 px: each is its own preview (tests/test_previews.py makes them).
            preview = client.get(f"/api/images/{image_id}/preview")
            assert (preview.status_code, preview.headers["location"]) == (307, served.url.path)

        grid = client.get(f"/api/grids/{made['grid_id']}").json()
        assert [cell["job_id"] for cell in grid["cells"]] == made["grid_job_ids"]

        presets = client.get("/api/team-presets").json()
        assert [(p["id"], p["name"]) for p in presets] == [
            (made["team_preset"]["id"], made["team_preset"]["name"])
        ]

        collection = made["collection"]
        assert client.get(f"/api/collections/{collection['id']}").json()["image_count"] == 2
        on_board = client.get("/api/gallery", params={"collection": collection["id"]}).json()
        assert sorted(item["id"] for item in on_board["items"]) == collection["image_ids"]

        favourite = client.get(f"/api/gallery/images/{made['favourite_image_id']}").json()
        assert favourite["favourite"] is True
        trash = client.get("/api/trash").json()
        assert [item["id"] for item in trash["items"]] == [made["trashed_image_id"]]
        gallery = client.get("/api/gallery").json()
        assert made["trashed_image_id"] not in {item["id"] for item in gallery["items"]}


def test_a_session_from_before_is_refused_cleanly_and_the_password_still_signs_in(
    made: dict[str, Any], upgraded: RunningApp
) -> None:
    with _client(upgraded) as client:
        host = httpx.URL(upgraded.url).host
        client.cookies.set(SESSION_COOKIE, made["session_cookie"], domain=host)
        page = client.get("/gallery")
        assert page.status_code == 303
        assert page.headers["location"] == "/sign-in?next=/gallery"
        assert client.get("/api/me").status_code == 401

        signed_in = client.post(
            "/sign-in", data={"name": "Ada", "password": PASSWORD, "next": "/gallery"}
        )
        assert signed_in.status_code == 303
        assert client.cookies[SESSION_COOKIE] != made["session_cookie"]
        assert client.get("/gallery").status_code == 200
        assert client.get("/api/me").json()["name"] == "Ada"
