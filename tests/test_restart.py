"""Jobs live in the database, not the process: a restarted server finishes what it started."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from app.emulator import Fault
from app.features.jobs import queue, reads
from app.storage.db.engine import Database
from app.storage.db.tables import Job, JobStatus, utcnow
from tests.support.apps import make_settings, serve_app
from tests.support.databases import DatabaseChoice
from tests.support.emulators import RunningEmulator
from tests.support.jobs import wait_for_job
from tests.support.waiting import wait_until

pytestmark = pytest.mark.both_databases


def test_a_job_unfinished_at_shutdown_completes_after_a_restart(
    tmp_path: Path, emulator: RunningEmulator, database: DatabaseChoice
) -> None:
    emulator.config.job_seconds = 3600  # nothing finishes while the first server runs
    settings = make_settings(tmp_path / "data", emulator, database=database)
    with serve_app(settings) as first:
        job_id = first.client.post("/api/jobs", json={"prompt": "survive a restart"}).json()["id"]
        wait_until(lambda: emulator.emulator.requests_to("job"), what="the first status poll")
        assert first.client.get(f"/api/jobs/{job_id}").json()["status"] == "pending"

    emulator.config.job_seconds = 0  # the upstream finishes it while we are down
    with serve_app(settings) as second:
        job = wait_for_job(second.client, job_id)
        assert job["status"] == "completed"
        assert len(job["images"]) == 1
        assert second.client.get(job["images"][0]["url"]).status_code == 200
    assert len(emulator.emulator.requests_to("run")) == 1, "the job was not submitted again"


def test_a_submission_cut_short_by_a_crash_is_looked_for_upstream_not_resent(
    tmp_path: Path, emulator: RunningEmulator, database: DatabaseChoice
) -> None:
    settings = make_settings(
        tmp_path / "data",
        emulator,
        database=database,
        request_timeout_seconds=1,
        max_submit_wait_seconds=0,
        reconcile_window_seconds=1,
    )
    db = Database.for_settings(settings)
    db.migrate()
    # What a crash mid-submit leaves behind: the row, leased to a dead worker.
    with db.write() as session:
        job = Job(
            model="seedream-4",
            prompt="cut short",
            image_size="auto_2K",
            num_images=1,
            request_body={"prompt": "cut short", "image_size": "auto_2K", "num_images": 1},
            status=JobStatus.SUBMITTING,
            lease_owner="dead-worker",
            lease_expires_at=utcnow() - timedelta(seconds=1),
        )
        session.add(job)
        session.flush()
        job_id = job.id
    db.dispose()
    assert job_id is not None

    with serve_app(settings) as running:
        job_answer = wait_for_job(running.client, job_id)
    assert job_answer["status"] == "unknown"
    assert "most likely it was never accepted" in job_answer["error"]
    assert "not sent again" in job_answer["error"]
    assert emulator.emulator.requests_to("run") == []
    assert emulator.emulator.requests_to("jobs"), "PixelDojo's recent jobs were checked"


def _leased_job(db: Database, owner: str) -> None:
    now = utcnow()
    with db.write() as session:
        session.add(
            Job(
                model="seedream-4",
                prompt=f"owned by {owner}",
                image_size="auto_2K",
                num_images=1,
                request_body={},
                status=JobStatus.PENDING,
                upstream_job_id=f"job_{owner}",
                next_poll_at=now,
                lease_owner=owner,
                lease_expires_at=now + timedelta(minutes=5),
            )
        )


def test_a_job_leased_by_a_live_worker_is_left_alone(
    tmp_path: Path, database: DatabaseChoice
) -> None:
    db = database.open(tmp_path)
    db.migrate()
    queue.register_worker(db, worker_id="other-worker")
    _leased_job(db, "other-worker")
    now = utcnow()
    assert queue.claim_due_jobs(db, owner="me", now=now, lease_seconds=60, limit=10) == []
    # Its heartbeat keeps it alive...
    queue.heartbeat(db, worker_id="other-worker", job_ids=[], lease_seconds=60)
    later = now + timedelta(seconds=30)
    assert queue.claim_due_jobs(db, owner="me", now=later, lease_seconds=60, limit=10) == []
    # ...and once its heartbeat is stale, its leases mean nothing any more.
    much_later = now + timedelta(minutes=2)
    claimed = queue.claim_due_jobs(db, owner="me", now=much_later, lease_seconds=60, limit=10)
    assert [job.lease_owner for job in claimed] == ["me"]
    db.dispose()


def test_a_crashed_workers_jobs_are_taken_over_before_their_leases_end(
    tmp_path: Path, database: DatabaseChoice
) -> None:
    db = database.open(tmp_path)
    db.migrate()
    _leased_job(db, "crashed-worker")  # leased for 5 minutes, by a worker with no heartbeat
    queue.register_worker(db, worker_id="me")
    claimed = queue.claim_due_jobs(db, owner="me", now=utcnow(), lease_seconds=60, limit=10)
    assert [job.lease_owner for job in claimed] == ["me"]
    # Two workers racing for it: the second finds nothing left.
    assert queue.claim_due_jobs(db, owner="third", now=utcnow(), lease_seconds=60, limit=10) == []
    db.dispose()


@pytest.mark.parametrize(
    ("route", "job_seconds"),
    [
        # A download under way when the server is told to stop is allowed to finish.
        ("image", None),
        # A status poll under way finds the job done in the grace period and hands it to
        # the storing lane: that store is waited for too.
        ("job", 0.0),
    ],
)
def test_a_graceful_shutdown_lets_in_flight_work_store_its_images(
    tmp_path: Path,
    emulator: RunningEmulator,
    database: DatabaseChoice,
    route: str,
    job_seconds: float | None,
) -> None:
    if job_seconds is not None:
        emulator.config.job_seconds = job_seconds
    emulator.emulator.faults.add(Fault(route, kind="delay", delay_seconds=1.0))
    settings = make_settings(tmp_path / "data", emulator, database=database)
    with serve_app(settings) as running:
        job_id = running.client.post("/api/jobs", json={"prompt": "finish me"}).json()["id"]
        wait_until(lambda: emulator.emulator.requests_to(route), what=f"the {route} request")
    # The server has stopped; what it had under way was allowed to finish.
    db = Database.for_settings(settings)
    job = reads.get_job(db, job_id=job_id)
    db.dispose()
    assert job is not None
    assert job.job.status is JobStatus.COMPLETED
    assert job.job.lease_owner is None
    assert len(job.images) == 1
