"""Polls gather around the time jobs like it usually take, and back off when one is slow."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from app.database import Database
from app.models import Job, JobStatus, utcnow
from app.timing import next_poll_in, upstream_seconds
from tests.conftest import RunningEmulator, make_settings, serve_app, wait_for_job


def plan(expected: float | None, elapsed: float, poll_count: int = 1) -> float:
    return next_poll_in(
        expected=expected, elapsed=elapsed, poll_count=poll_count, initial=2.0, maximum=10.0
    )


def test_without_history_polls_back_off_from_the_initial_delay() -> None:
    assert [plan(None, 0, n) for n in (0, 1, 2, 3, 8)] == [2.0, 2.0, 3.0, 4.5, 10.0]


def test_with_history_the_first_poll_comes_just_before_the_usual_end() -> None:
    assert plan(20.0, 0) == pytest.approx(17.0)
    # Then every tenth of the usual time (0.25 s to 2 s) while it is due...
    assert plan(20.0, 17.0) == pytest.approx(2.0)
    assert plan(4.0, 3.5) == pytest.approx(0.4)
    # ...and back off once it runs half as long again as usual.
    assert plan(20.0, 40.0) == pytest.approx(5.0)
    assert plan(20.0, 80.0) == pytest.approx(10.0)


def test_the_expected_time_is_the_median_of_recent_jobs_of_the_kind(tmp_path: Path) -> None:
    db = Database.at_path(tmp_path / "playground.db")
    db.migrate()
    now = utcnow()
    with db.write() as session:
        for seconds, size in ((10, "square"), (12, "square"), (30, "square"), (99, "auto_4K")):
            session.add(
                Job(
                    model="seedream-4",
                    prompt="timed",
                    image_size=size,
                    num_images=1,
                    request_body={},
                    status=JobStatus.COMPLETED,
                    submitted_at=now,
                    upstream_completed_at=now + timedelta(seconds=seconds),
                )
            )
    assert upstream_seconds(db, model="seedream-4", image_size="square", num_images=1) == 12
    # Too few of a kind: the model's jobs of any size speak for it.
    assert upstream_seconds(db, model="seedream-4", image_size="auto_4K", num_images=1) == 21
    assert upstream_seconds(db, model="other", image_size="square", num_images=1) is None
    db.dispose()


def test_once_jobs_have_a_history_each_takes_few_polls(
    tmp_path: Path, emulator: RunningEmulator
) -> None:
    emulator.config.job_seconds = 1.5
    # No history: backing off from 0.1 s up to 1 s takes several polls for a 1.5 s job.
    settings = make_settings(tmp_path / "data", emulator, poll_max_seconds=1.0)
    with serve_app(settings) as app:
        for n in range(4):
            job = app.client.post("/api/jobs", json={"prompt": f"learning {n}"}).json()
            wait_for_job(app.client, job["id"])
        emulator.emulator.reset_log()
        for n in range(3):
            job = app.client.post("/api/jobs", json={"prompt": f"learned {n}"}).json()
            wait_for_job(app.client, job["id"])
    polls = len(emulator.emulator.requests_to("job"))
    assert polls <= 3 * 3, (
        f"{polls} polls for 3 jobs: at most two beyond the one that finds it done"
    )
