"""Demo mode: no key, the built-in emulator over loopback, and nothing lost to a restart."""

from __future__ import annotations

import json
from pathlib import Path

from sqlmodel import select

from app.features.people.accounts import create_user
from app.storage.db.engine import Database
from app.storage.db.tables import Job, User
from app.web.factory import DEMO_UPSTREAM_FILE
from tests.support.apps import make_settings, serve_app
from tests.support.jobs import wait_for_job
from tests.support.team import sign_in
from tests.support.waiting import wait_until


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


def test_the_demo_upstream_calls_the_app_back_as_pixeldojo_does(tmp_path: Path) -> None:
    """No public URL is set: the built-in emulator calls back at the address the app was
    reached on, so a demo job ends by callback, not by its next poll."""
    settings = make_settings(tmp_path / "data", None, demo_job_seconds=0.5)
    assert settings.public_url is None
    with serve_app(settings) as app:
        job = app.client.post("/api/jobs", json={"prompt": "called back"}).json()
        assert wait_for_job(app.client, job["id"])["status"] == "completed"
    db = Database.for_settings(settings)
    with db.read() as session:
        stored = session.exec(select(Job).where(Job.id == job["id"])).one()
    db.dispose()
    assert stored.webhook_at is not None, "the emulator's callback reached the app"
    # The address is a permission: it is sent, never stored with the job.
    assert "/webhooks/pixeldojo/" not in json.dumps(stored.model_dump(mode="json"))


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


def test_demo_mode_counts_no_credits_anywhere_and_no_budget_is_spent(tmp_path: Path) -> None:
    """The page says "0 credits (demo)": the API, the command line's plans and budgets agree."""
    settings = make_settings(tmp_path / "data", None)
    db = Database.for_settings(settings)
    db.migrate()
    # A budget of one credit a day, that a charged demo would exceed at the second image.
    create_user(db, name="Ada", password="correct horse battery", is_admin=True)
    with db.write() as session:
        ada = session.exec(select(User)).one()
        ada.daily_budget = 1.0
        session.add(ada)
    with serve_app(settings) as app:
        signed_in = sign_in(app.url, "Ada", "correct horse battery")
        first = signed_in.post("/api/jobs", json={"prompt": "free", "num_images": 2}).json()
        done = wait_for_job(signed_in, first["id"])
        assert done["status"] == "completed" and done["credit_cost"] == 0
        # Over the budget if counted; it is not.
        second = signed_in.post("/api/jobs", json={"prompt": "still free", "num_images": 4})
        assert second.status_code == 202, second.text
        wait_for_job(signed_in, second.json()["id"])
        check = signed_in.post("/api/jobs/check", json={"jobs": [{"prompt": "x", "num_images": 3}]})
        assert check.json()["estimated_credits"] == 0
        plan = signed_in.post(
            "/api/grids/plan",
            json={"parameters": {"prompt": "x"}, "axes": [{"param": "seed", "values": [1, 2]}]},
        ).json()
        assert plan["estimated_credits"] == 0
        assert {cell["estimated_credits"] for cell in plan["cells"]} == {0}
        models = signed_in.get("/api/models").json()
        assert models["models"] and {model["credits"] for model in models["models"]} == {0}
        usage = signed_in.get("/api/usage").json()
        assert usage["total_credits"] == 0
        signed_in.close()
    db.dispose()
