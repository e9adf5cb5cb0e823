"""Stopping, undoing a stop, and retrying: a job PixelDojo has is no longer waited for but its
images are kept; one still waiting to be sent is never sent; a grid's cells not yet sent are
never sent until the stop is undone; a failed job is tried again with its own seed."""

from __future__ import annotations

import html
import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.emulator.faults import Fault
from app.features.grids import records as grid_records
from app.features.grids import stopping as grid_stopping
from app.features.jobs.stopping import STOPPED_UNSENT
from app.features.people.permissions import Actor
from app.storage.db.engine import Database
from app.storage.db.tables import STOPPED_LABEL, Job
from tests.support.apps import RunningApp, make_settings, serve_app
from tests.support.databases import DatabaseChoice
from tests.support.emulators import RunningEmulator, serve_emulator
from tests.support.jobs import wait_for_job
from tests.support.team import Team
from tests.support.waiting import wait_until

HTMX = {"HX-Request": "true"}
LOCAL = Actor(user=None, sign_in_on=False)

pytestmark = pytest.mark.both_databases


def toast(answer: httpx.Response) -> dict[str, Any]:
    """The toast an answer carries, swapped into the page's toasts (app/web/stops.py)."""
    marker = re.search(
        r'hx-swap-oob="beforeend:#toasts"><p hidden data-toast="([^"]*)"', answer.text
    )
    assert marker, answer.text
    detail: dict[str, Any] = json.loads(html.unescape(marker.group(1)))
    return detail


def stopped_at(database: DatabaseChoice, data_dir: Path, job_id: int) -> Any:
    db = database.open(data_dir)
    try:
        with db.read() as session:
            job = session.get(Job, job_id)
            assert job is not None
            return job.stopped_at
    finally:
        db.dispose()


def test_a_running_job_stopped_is_no_longer_waited_for_and_its_images_are_still_kept(
    tmp_path: Path, database: DatabaseChoice
) -> None:
    with (
        serve_emulator(job_seconds=2.0) as emulator,
        serve_app(make_settings(tmp_path / "data", emulator, database=database)) as app,
    ):
        job = app.client.post("/api/jobs", json={"prompt": "a kite, stopped"}).json()
        answer = app.client.post("/jobs/stop", data={"ids": job["id"]}, headers=HTMX)
        assert answer.status_code == 200
        # The card comes back to swap in place: stopped, no spinner, a way back.
        assert f'id="job-{job["id"]}"' in answer.text and STOPPED_LABEL in answer.text
        assert "spinner" not in answer.text and "Wait for it again" in answer.text
        assert toast(answer)["undo"] == {"url": "/jobs/resume", "ids": [job["id"]]}
        assert stopped_at(database, tmp_path / "data", job["id"]) is not None
        # The JSON API says what the pages say, for the job and in a listing.
        assert app.client.get(f"/api/jobs/{job['id']}").json()["status_label"] == STOPPED_LABEL
        listed = app.client.get("/api/jobs").json()["items"]
        assert [item["status_label"] for item in listed] == [STOPPED_LABEL]
        # PixelDojo cannot cancel: the job runs on there, and its images are kept.
        done = wait_for_job(app.client, job["id"])
        assert done["status"] == "completed" and len(done["images"]) == 1
        card = app.client.get(f"/jobs/{job['id']}/card").text
        assert STOPPED_LABEL not in card and "Done" in card
        again = app.client.post("/jobs/stop", data={"ids": job["id"]}, headers=HTMX)
        assert toast(again)["message"].startswith("Nothing left to stop")
        assert "undo" not in toast(again)


def test_a_stop_is_undone_while_the_job_runs(tmp_path: Path, database: DatabaseChoice) -> None:
    with (
        serve_emulator(never_marker="[[never]]") as emulator,
        serve_app(make_settings(tmp_path / "data", emulator, database=database)) as app,
    ):
        job = app.client.post("/api/jobs", json={"prompt": "[[never]] a slow one"}).json()
        app.client.post("/jobs/stop", data={"ids": job["id"]}, headers=HTMX)
        undone = app.client.post("/jobs/resume", data={"ids": job["id"]}, headers=HTMX)
        assert toast(undone)["message"] == f"Waiting for job #{job['id']} again"
        assert STOPPED_LABEL not in undone.text and "spinner" in undone.text
        assert stopped_at(database, tmp_path / "data", job["id"]) is None


def test_a_try_all_s_jobs_stop_together_and_their_stop_is_undone_together(
    tmp_path: Path, database: DatabaseChoice
) -> None:
    with (
        serve_emulator() as emulator,
        serve_app(make_settings(tmp_path / "data", emulator, database=database)) as app,
    ):
        jobs = [
            app.client.post("/api/jobs", json={"prompt": f"[[never]] preset {n}"}).json()["id"]
            for n in range(3)
        ]
        finished = app.client.post("/api/jobs", json={"prompt": "quick"}).json()["id"]
        wait_for_job(app.client, finished)
        # As the comparison's Stop all sends them: every job of the try-all, done or not.
        stopped = app.client.post("/jobs/stop", data={"ids": [*jobs, finished]}, headers=HTMX)
        detail = toast(stopped)
        assert detail["message"].startswith("Stopped 3 jobs")
        assert detail["undo"] == {"url": "/jobs/resume", "ids": jobs}
        assert stopped.text.count(STOPPED_LABEL) == 3
        undone = app.client.post("/jobs/resume", data={"ids": jobs}, headers=HTMX)
        assert toast(undone)["message"] == "Waiting for 3 jobs again"
        assert all(stopped_at(database, tmp_path / "data", job) is None for job in jobs)


def test_a_job_stopped_while_it_waits_for_the_rate_limit_is_never_sent(
    tmp_path: Path, database: DatabaseChoice
) -> None:
    with (
        serve_emulator() as emulator,
        serve_app(make_settings(tmp_path / "data", emulator, database=database)) as app,
    ):
        # PixelDojo asks the app to wait before sending anything more: long enough for the
        # stop below to arrive on a busy machine.
        emulator.emulator.faults.add(Fault("run", status=429, headers={"Retry-After": "5"}))
        answers: list[httpx.Response] = []
        sender = threading.Thread(
            target=lambda: answers.append(app.client.post("/api/jobs", json={"prompt": "later"}))
        )
        sender.start()
        # Refused once, it now waits.
        wait_until(lambda: emulator.emulator.requests_to("run"), what="the first try")
        waiting = app.client.get("/api/jobs").json()["items"][0]
        assert waiting["status"] == "submitting"
        started = time.monotonic()
        stopped = app.client.post("/jobs/stop", data={"ids": waiting["id"]}, headers=HTMX)
        assert stopped.status_code == 200
        sender.join(timeout=30)
        assert time.monotonic() - started < 30
        job = app.client.get(f"/api/jobs/{waiting['id']}").json()
        assert job["status"] == "failed" and job["error"] == STOPPED_UNSENT
        assert answers[0].status_code == 409
        # Asked once (refused with the 429), never sent again: PixelDojo has no job.
        assert len(emulator.emulator.requests_to("run")) == 1
        assert emulator.emulator.jobs == {}
        # Its stop cannot be undone (it will never be sent), and the page says so.
        undone = app.client.post("/jobs/resume", data={"ids": waiting["id"]}, headers=HTMX)
        assert toast(undone)["message"].startswith("Nothing to wait for again")


def test_a_stopped_grid_sends_no_cell_left_and_undoing_the_stop_sends_them_all(
    tmp_path: Path, database: DatabaseChoice
) -> None:
    with serve_emulator() as emulator:
        settings = make_settings(tmp_path / "data", emulator, database=database)
        # Each submission takes half a second to be answered: the grid is sent slowly.
        emulator.emulator.faults.add(Fault("run", kind="delay", delay_seconds=0.5, times=100))
        with serve_app(settings) as app:
            grid = app.client.post(
                "/api/grids",
                json={
                    "parameters": {"prompt": "a lantern"},
                    "axes": [{"param": "seed", "values": list(range(1, 11))}],
                },
            ).json()
            wait_until(lambda: len(emulator.emulator.requests_to("run")) >= 2, what="2 cells")
            stop = app.client.post(f"/grids/{grid['id']}/stop", headers=HTMX)
            assert stop.status_code == 200
            detail = toast(stop)
            assert detail["undo"]["url"] == f"/grids/{grid['id']}/resume"
            sent = int(detail["message"].split("(")[1].split()[0])
            assert 2 <= sent <= 3, detail
            assert "Stopped: not sent" in stop.text
            finished = wait_until(
                lambda: (
                    (view := app.client.get(f"/api/grids/{grid['id']}").json())["finished"] and view
                ),
                what="the grid's sent cells to finish",
            )
            labels = [cell["status_label"] for cell in finished["cells"]]
            assert labels.count("Stopped: not sent") == 10 - sent
            # The cells stopped were never sent, however long one waits.
            time.sleep(1.0)
            assert len(emulator.emulator.requests_to("run")) == sent
            assert "Send the" in app.client.get(f"/grids/{grid['id']}").text

            resumed = app.client.post(f"/grids/{grid['id']}/resume", headers=HTMX)
            assert toast(resumed)["message"] == f"Sending the {10 - sent} stopped cells"
            assert 'id="grid-stream"' in resumed.text and "sse-connect" in resumed.text
            done = wait_until(
                lambda: (
                    (view := app.client.get(f"/api/grids/{grid['id']}").json())["done"] == 10
                    and view
                ),
                timeout=40,
                what="every cell",
            )
            assert all(cell["status"] == "completed" for cell in done["cells"])
            # Each cell sent once: the stop and its undo paid for nothing twice.
            assert len(emulator.emulator.requests_to("run")) == 10


def test_a_cell_taken_to_be_sent_cannot_be_stopped_and_a_stopped_one_cannot_be_taken(
    tmp_path: Path, database: DatabaseChoice
) -> None:
    """The runner's take and the person's stop each change the cell's row under the same
    condition: whichever comes second finds the cell already the other's."""
    with serve_emulator() as emulator:
        settings = make_settings(tmp_path / "data", emulator, database=database)
        # The first cell is answered late: the runner stays on it meanwhile.
        emulator.emulator.faults.add(Fault("run", kind="delay", delay_seconds=4, times=1))
        with serve_app(settings) as app:
            grid = app.client.post(
                "/api/grids",
                json={
                    "parameters": {"prompt": "a lantern"},
                    "axes": [{"param": "seed", "values": [1, 2, 3]}],
                },
            ).json()
            wait_until(lambda: emulator.emulator.requests_to("run"), what="the first cell")
            db: Database = database.open(tmp_path / "data")
            try:
                stop = grid_stopping.stop_grid(db, actor=LOCAL, grid_id=grid["id"])
                assert (stop.changed, stop.sent) == (2, 1)
                assert not grid_stopping.take_cell(db, grid_id=grid["id"], position=1)
                view = grid_records.require_grid(db, grid_id=grid["id"])
                assert [cell.stopped for cell in view.cells] == [False, True, True]
                # Only the first is left to send (again, after a restart: its key pays once).
                queued = grid_records.queued_cells(db, grid_id=grid["id"])
                assert [cell.position for cell in queued] == [0]
                resumed = grid_stopping.resume_grid(db, actor=LOCAL, grid_id=grid["id"])
                assert resumed.changed == 2
                queued = grid_records.queued_cells(db, grid_id=grid["id"])
                assert [cell.position for cell in queued] == [0, 1, 2]
                # The first cell was taken before the stop: it is never stopped.
                assert grid_stopping.stop_grid(db, actor=LOCAL, grid_id=grid["id"]).changed == 2
            finally:
                db.dispose()


def test_a_grid_cell_s_job_stopped_on_its_own_says_so_in_the_sheet(
    tmp_path: Path, database: DatabaseChoice
) -> None:
    with (
        serve_emulator() as emulator,
        serve_app(make_settings(tmp_path / "data", emulator, database=database)) as app,
    ):
        grid = app.client.post(
            "/api/grids",
            json={
                "parameters": {"prompt": "[[never]] a lantern"},
                "axes": [{"param": "seed", "values": [1]}],
            },
        ).json()
        job_id = wait_until(
            lambda: app.client.get(f"/api/grids/{grid['id']}").json()["cells"][0]["job_id"],
            what="the cell to be sent",
        )
        app.client.post("/jobs/stop", data={"ids": job_id}, headers=HTMX)
        sheet = app.client.get(f"/grids/{grid['id']}").text
        cell = sheet.split(f'id="cell-{grid["id"]}-0"')[1].split("</figure>")[0]
        # As on the job's card: stopped, still followed, no longer waited for.
        assert STOPPED_LABEL in cell and "spinner" not in cell, cell
        cells = app.client.get(f"/api/grids/{grid['id']}").json()["cells"]
        assert cells[0]["status_label"] == STOPPED_LABEL


def test_retry_sends_a_failed_job_again_with_its_own_seed(app: RunningApp) -> None:
    failed = app.client.post("/api/jobs", json={"prompt": "[[fail]] a moth", "seed": 77}).json()
    assert wait_for_job(app.client, failed["id"])["status"] == "failed"
    card = app.client.get(f"/jobs/{failed['id']}/card").text
    assert f'hx-post="/jobs/{failed["id"]}/retry"' in card
    # From the playground: the new job takes the output.
    answer = app.client.post(
        f"/jobs/{failed['id']}/retry",
        data={"token": "t1"},
        headers={**HTMX, "HX-Current-URL": f"{app.url}/"},
    )
    assert answer.headers["HX-Retarget"] == "#output"
    retried_id = int(answer.text.split('data-job-id="')[1].split('"')[0])
    retried = app.client.get(f"/api/jobs/{retried_id}").json()
    assert retried["parameters"]["seed"] == 77
    assert retried["parameters"]["prompt"] == "[[fail]] a moth"
    assert retried["remix_of"]["job_id"] == failed["id"]
    # The same token again is the same job, paid for once.
    repeat = app.client.post(
        f"/jobs/{failed['id']}/retry",
        data={"token": "t1"},
        headers={**HTMX, "HX-Current-URL": f"{app.url}/"},
    )
    assert repeat.headers["HX-Reswap"] == "none"
    # From the job page: to the new job's page.
    elsewhere = app.client.post(f"/jobs/{failed['id']}/retry", data={"token": "t2"})
    assert elsewhere.status_code == 303 and elsewhere.headers["location"] != f"/jobs/{retried_id}"


def test_only_whoever_made_a_job_or_grid_or_an_admin_may_stop_it(
    team: Team, emulator: RunningEmulator
) -> None:
    job = team.member.post("/api/jobs", json={"prompt": "[[never]] Max's"}).json()
    assert team.other.post("/jobs/stop", data={"ids": job["id"]}).status_code == 403
    assert team.admin.post("/jobs/stop", data={"ids": job["id"]}, headers=HTMX).status_code == 200
    grid = team.member.post(
        "/api/grids",
        json={"parameters": {"prompt": "[[never]] x"}, "axes": [{"param": "seed", "values": [1]}]},
    ).json()
    assert team.other.post(f"/grids/{grid['id']}/stop").status_code == 403
    assert team.member.post(f"/grids/{grid['id']}/stop").status_code == 303
