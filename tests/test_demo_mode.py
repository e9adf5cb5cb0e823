"""Demo mode: no key, the built-in emulator over loopback, and nothing lost to a restart."""

from __future__ import annotations

import json
from pathlib import Path

from app.web.factory import DEMO_UPSTREAM_FILE
from tests.conftest import make_settings, serve_app, wait_for_job, wait_until


def test_demo_mode_makes_images_locally_and_says_so(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", None)
    assert settings.demo_mode
    with serve_app(settings) as app:
        page = app.client.get("/")
        assert "Demo mode" in page.text
        assert "pd_demo_" not in page.text
        job = app.client.post("/api/jobs", json={"prompt": "a demo lighthouse"}).json()
        done = wait_for_job(app.client, job["id"])
    assert done["status"] == "completed", done
    assert len(done["images"]) == 1


def test_a_demo_job_running_when_the_app_stops_finishes_after_it_starts_again(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    # Long enough that the job is still running upstream when the first app stops.
    settings = make_settings(data_dir, None, demo_job_seconds=4.0)
    with serve_app(settings) as app:
        job = app.client.post("/api/jobs", json={"prompt": "across a restart"}).json()
        wait_until(
            lambda: app.client.get(f"/api/jobs/{job['id']}").json()["status"] == "pending",
            what="the demo job to be submitted",
        )
        balance = app.client.get(f"/api/jobs/{job['id']}").json()["credits_remaining"]
    assert app.client.is_closed
    saved = json.loads((data_dir / DEMO_UPSTREAM_FILE).read_text())
    assert len(saved["jobs"]) == 1
    assert "pd_demo_" not in (data_dir / "playground.db").read_bytes().decode("latin-1")

    with serve_app(settings) as app:
        done = wait_for_job(app.client, job["id"], timeout=30)
        assert done["status"] == "completed", done
        assert len(done["images"]) == 1
        image = app.client.get(done["images"][0]["url"])
        assert image.status_code == 200
        assert image.headers["content-type"] == "image/png"
        # The same upstream account: its credits carried on, and nothing was submitted twice.
        again = app.client.post("/api/jobs", json={"prompt": "after the restart"}).json()
        assert again["credits_remaining"] == balance - done["credit_cost"]
    saved = json.loads((data_dir / DEMO_UPSTREAM_FILE).read_text())
    assert len(saved["jobs"]) == 2
