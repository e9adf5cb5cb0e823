"""At most once: a job is submitted upstream once whatever repeats it (an idempotency key
sent again or at once, the same form posted twice, try-all confirmed twice), and a submission
lost, taken over or still under way is answered, never made twice."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import col, select

from app.emulator import Fault
from app.features.jobs import creation, queue
from app.storage.db.engine import Database
from app.storage.db.tables import Job, JobStatus, utcnow
from app.upstream import parse_job
from tests.support.apps import RunningApp, make_settings, serve_app
from tests.support.databases import DatabaseChoice
from tests.support.emulators import TEST_KEY, RunningEmulator
from tests.support.jobs import wait_for_job
from tests.support.waiting import wait_until

# --- At most once ------------------------------------------------------------------------


@pytest.mark.both_databases
def test_the_same_idempotency_key_returns_the_same_job_and_submits_once(
    app: RunningApp, emulator: RunningEmulator
) -> None:
    body = {"prompt": "only once, please"}
    first = app.client.post("/api/jobs", json=body, headers={"Idempotency-Key": "abc-1"})
    again = app.client.post("/api/jobs", json=body, headers={"Idempotency-Key": "abc-1"})
    assert first.status_code == again.status_code == 202
    assert again.headers["idempotent-replayed"] == "true"
    assert first.json()["id"] == again.json()["id"]
    assert len(emulator.emulator.requests_to("run")) == 1
    other = app.client.post("/api/jobs", json=body, headers={"Idempotency-Key": "abc-2"})
    assert other.json()["id"] != first.json()["id"]
    assert len(emulator.emulator.requests_to("run")) == 2


@pytest.mark.both_databases
def test_simultaneous_requests_with_one_key_make_one_upstream_request(
    app: RunningApp, emulator: RunningEmulator
) -> None:
    emulator.config.latency_seconds = 0.3  # keep the first submit in flight while others arrive
    start = threading.Barrier(8)

    def submit(_: int) -> httpx.Response:
        with httpx.Client(base_url=app.url, timeout=30) as client:
            start.wait()
            return client.post(
                "/api/jobs", json={"prompt": "a double click"}, headers={"Idempotency-Key": "k"}
            )

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(submit, range(8)))
    assert {answer.status_code for answer in answers} == {202}
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert len(emulator.emulator.requests_to("run")) == 1
    assert wait_for_job(app.client, answers[0].json()["id"])["status"] == "completed"


@pytest.mark.both_databases
def test_reusing_a_key_for_a_different_request_is_refused(
    app: RunningApp, emulator: RunningEmulator
) -> None:
    app.client.post("/api/jobs", json={"prompt": "first"}, headers={"Idempotency-Key": "same"})
    clash = app.client.post(
        "/api/jobs", json={"prompt": "second"}, headers={"Idempotency-Key": "same"}
    )
    assert clash.status_code == 422
    assert clash.json()["error"]["code"] == "idempotency_key_reused"
    assert len(emulator.emulator.requests_to("run")) == 1


@pytest.mark.both_databases
def test_posting_the_same_form_twice_makes_one_job(
    app: RunningApp, emulator: RunningEmulator
) -> None:
    page = app.client.get("/").text
    token = page.split('name="submission_token" value="', 1)[1].split('"', 1)[0]
    form = {"prompt": "a double-clicked button", "num_images": "1", "submission_token": token}
    htmx = {"HX-Request": "true"}
    first = app.client.post("/jobs", data=form, headers=htmx)
    second = app.client.post("/jobs", data=form, headers=htmx)
    assert first.status_code == second.status_code == 200
    assert second.headers["hx-reswap"] == "none", "nothing new is shown for the repeat"
    assert len(emulator.emulator.requests_to("run")) == 1
    # The answer hands the form a fresh token, so the next Generate is a new job.
    fresh = first.text.split('name="submission_token" value="', 1)[1].split('"', 1)[0]
    assert fresh != token
    app.client.post("/jobs", data={**form, "submission_token": fresh}, headers=htmx)
    assert len(emulator.emulator.requests_to("run")) == 2


def test_confirming_try_all_twice_submits_the_eight_presets_once(
    app: RunningApp, emulator: RunningEmulator
) -> None:
    page = app.client.get("/").text
    token = page.split('id="try_all_token" name="submission_token" value="', 1)[1].split('"', 1)[0]
    htmx = {"HX-Request": "true"}
    first = app.client.post("/playground/try-all", data={"submission_token": token}, headers=htmx)
    again = app.client.post("/playground/try-all", data={"submission_token": token}, headers=htmx)
    assert first.status_code == again.status_code == 200
    assert again.headers["hx-reswap"] == "none"
    assert len(emulator.emulator.requests_to("run")) == 8
    fresh = first.text.split('id="try_all_token" name="submission_token" value="', 1)[1]
    assert fresh.split('"', 1)[0] != token, "the dialog gets a new token for the next time"


@pytest.mark.both_databases
def test_a_lost_submission_does_not_take_a_twin_still_being_submitted(
    tmp_path: Path, emulator: RunningEmulator, database: DatabaseChoice
) -> None:
    """Two jobs asking the same: one's answer was lost, the other's is on its way. The lost
    one must not adopt the other's upstream job while that is still being submitted."""
    prompt = "twins at the same moment"
    upstream = httpx.post(
        emulator.base_url + "/models/seedream-4/run",
        json={"prompt": prompt},
        headers={"Authorization": f"Bearer {TEST_KEY}"},
    ).json()
    settings = make_settings(
        tmp_path / "data",
        emulator,
        database=database,
        request_timeout_seconds=2,
        max_submit_wait_seconds=0,
        reconcile_window_seconds=2,
    )
    db = Database.for_settings(settings)
    db.migrate()
    queue.register_worker(db, worker_id="busy-submitter")
    body = {"prompt": prompt, "image_size": "auto_2K", "num_images": 1}
    now = utcnow()
    with db.write() as session:
        lost = Job(
            model="seedream-4",
            prompt=prompt,
            image_size="auto_2K",
            num_images=1,
            request_body=body,
            status=JobStatus.RECONCILING,
            next_poll_at=now,
        )
        twin = Job(
            model="seedream-4",
            prompt=prompt,
            image_size="auto_2K",
            num_images=1,
            request_body=body,
            status=JobStatus.SUBMITTING,
            lease_owner="busy-submitter",
            lease_expires_at=now + timedelta(minutes=5),
        )
        session.add(lost)
        session.add(twin)
        session.flush()
        lost_id, twin_id = lost.id, twin.id
    assert lost_id is not None and twin_id is not None
    with serve_app(settings) as app:
        wait_until(
            lambda: len(emulator.emulator.requests_to("jobs")) >= 2,
            what="two looks at PixelDojo's recent jobs",
        )
        first = app.client.get(f"/api/jobs/{lost_id}").json()
        assert first["status"] == "reconciling"
        assert first["upstream_job_id"] is None, "it waited for its twin"
        # The twin's submitter gets its answer: the upstream job is the twin's.
        queue.heartbeat(db, worker_id="busy-submitter", job_ids=[], lease_seconds=60)
        accepted = parse_job(upstream)
        creation.record_submitted(
            db, job_id=twin_id, owner="busy-submitter", token=0, upstream=accepted, first_poll_in=0
        )
        assert wait_for_job(app.client, twin_id)["status"] == "completed"
        lost_job = wait_for_job(app.client, lost_id)
    db.dispose()
    assert lost_job["status"] == "unknown"
    assert lost_job["upstream_job_id"] is None


@pytest.mark.both_databases
def test_a_job_taken_over_mid_submit_is_answered_not_failed(
    tmp_path: Path, emulator: RunningEmulator, database: DatabaseChoice
) -> None:
    """A worker whose heartbeat ran late is taken for dead, and another takes over the job it
    is submitting. The submitter answers with the job (no 500), and the job is found
    upstream by looking, never sent twice."""
    emulator.emulator.faults.add(Fault("run", kind="delay", delay_seconds=1.5))
    settings = make_settings(tmp_path / "data", emulator, database=database)
    db = Database.for_settings(settings)
    with serve_app(settings) as app, ThreadPoolExecutor(1) as pool:
        answer = pool.submit(app.client.post, "/api/jobs", json={"prompt": "taken over"})
        job_id = wait_until(lambda: db_job_ids(db), what="the job row, written before the submit")[
            0
        ]
        # Another worker takes the job over while the submit is still on its way.
        queue.register_worker(db, worker_id="other-worker")
        with db.write() as session:
            session.execute(
                sa.update(Job).where(col(Job.id) == job_id).values(lease_owner="other-worker")
            )
        submitted = answer.result(timeout=30)
        assert submitted.status_code == 202, submitted.text
        assert submitted.json()["id"] == job_id
        # The other worker "dies": this app's worker takes the job over and finds it upstream.
        queue.remove_worker(db, worker_id="other-worker")
        done = wait_for_job(app.client, job_id)
    db.dispose()
    assert done["status"] == "completed", done["error"]
    assert len(emulator.emulator.requests_to("run")) == 1, "never sent twice"


@pytest.mark.both_databases
def test_a_job_being_submitted_is_leased_to_a_submitter_of_its_own_that_is_alive(
    tmp_path: Path, emulator: RunningEmulator, database: DatabaseChoice
) -> None:
    """Not to the id the process's worker claims jobs with (a claim of the worker's could
    not then be told from the submitter's), and alive by that worker's heartbeat (so no
    other worker takes the job while it is being sent)."""
    emulator.emulator.faults.add(Fault("run", kind="delay", delay_seconds=1.5))
    settings = make_settings(tmp_path / "data", emulator, database=database)
    db = Database.for_settings(settings)
    with serve_app(settings) as app, ThreadPoolExecutor(1) as pool:
        answer = pool.submit(app.client.post, "/api/jobs", json={"prompt": "whose is it"})
        job_id = wait_until(lambda: db_job_ids(db), what="the job row, written before the submit")[
            0
        ]
        with db.read() as session:
            job = session.get(Job, job_id)
            assert job is not None and job.status is JobStatus.SUBMITTING
            submitter = job.lease_owner
        live = queue.live_worker_ids(db, now=utcnow(), lease_seconds=settings.lease_seconds)
        assert submitter in live
        assert len(live - {submitter}) == 1, "the worker beside it has an id of its own"
        assert answer.result(timeout=30).status_code == 202
    db.dispose()


def db_job_ids(db: Database) -> list[int]:
    with db.read() as session:
        return [job_id for job_id in session.exec(select(Job.id)).all() if job_id is not None]
