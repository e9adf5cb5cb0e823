"""Jobs live in the database, not the process: a restarted server finishes what it started."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from app import jobs
from app.database import Database
from app.models import Job, JobStatus, utcnow
from tests.conftest import RunningEmulator, make_settings, serve_app, wait_for_job, wait_until


def test_a_job_unfinished_at_shutdown_completes_after_a_restart(
    tmp_path: Path, emulator: RunningEmulator
) -> None:
    emulator.config.job_seconds = 3600  # nothing finishes while the first server runs
    settings = make_settings(tmp_path / "data", emulator)
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


def test_a_submission_cut_short_by_a_crash_is_marked_unknown_not_resent(
    tmp_path: Path, emulator: RunningEmulator
) -> None:
    settings = make_settings(tmp_path / "data", emulator)
    db = Database.at_path(settings.database_path)
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
    assert "not sent again" in job_answer["error"]
    assert emulator.emulator.requests_to("run") == []


def test_a_job_leased_by_a_live_worker_is_left_alone(
    tmp_path: Path, emulator: RunningEmulator
) -> None:
    settings = make_settings(tmp_path / "data", emulator)
    db = Database.at_path(settings.database_path)
    db.migrate()
    now = utcnow()
    with db.write() as session:
        session.add(
            Job(
                model="seedream-4",
                prompt="owned elsewhere",
                image_size="auto_2K",
                num_images=1,
                request_body={},
                status=JobStatus.PENDING,
                upstream_job_id="job_elsewhere",
                next_poll_at=now,
                lease_owner="other-worker",
                lease_expires_at=now + timedelta(minutes=5),
            )
        )
    claimed = jobs.claim_due_jobs(db, owner="me", now=now, lease_seconds=60, limit=10)
    assert claimed == []
    later = now + timedelta(minutes=6)
    claimed = jobs.claim_due_jobs(db, owner="me", now=later, lease_seconds=60, limit=10)
    assert [job.lease_owner for job in claimed] == ["me"]
    db.dispose()
