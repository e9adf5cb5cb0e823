"""Polls gather around the time jobs like it usually take, and back off when one is slow."""

from __future__ import annotations

import statistics
from datetime import timedelta
from pathlib import Path

import pytest

from app.models import Job, JobStatus, utcnow
from app.timing import (
    UpstreamTiming,
    done_by_seconds,
    first_poll_at,
    next_poll_in,
    upstream_timing,
)
from tests.conftest import (
    DatabaseChoice,
    RunningEmulator,
    make_settings,
    serve_app,
    wait_for_job,
)


def plan(timing: UpstreamTiming | None, elapsed: float, poll_count: int = 1) -> float:
    return next_poll_in(
        timing=timing, elapsed=elapsed, poll_count=poll_count, initial=2.0, maximum=10.0
    )


def test_without_history_polls_back_off_from_the_initial_delay() -> None:
    assert [plan(None, 0, n) for n in (0, 1, 2, 3, 8)] == [2.0, 2.0, 3.0, 4.5, 10.0]
    assert first_poll_at(None, initial=2.0) == 2.0


def test_with_history_polls_close_in_on_the_usual_end() -> None:
    usual = UpstreamTiming(running=108.0, early=115.0, done=120.0)
    # The first poll comes when such jobs were last seen running...
    assert first_poll_at(usual, initial=2.0) == 108.0
    assert plan(usual, 50.0) == pytest.approx(58.0)
    # ...then halves the distance to when half were done, then steps.
    assert plan(usual, 108.0) == pytest.approx(6.0)
    assert plan(usual, 117.0) == pytest.approx(2.0)
    assert plan(usual, 125.0) == pytest.approx(2.0)
    # Half as long again as usual: unusually slow, so back off.
    assert plan(usual, 200.0) == pytest.approx(10.0)
    assert UpstreamTiming(running=0.0, early=1.0, done=1.5).step == pytest.approx(0.25)
    # ...but a step (a tenth, at most 2 s) before the fastest were done, at the latest...
    assert UpstreamTiming(running=119.0, early=110.0, done=120.0).first_poll == 108.0
    # ...and a step after submission at the earliest.
    assert UpstreamTiming(running=0.0, early=110.0, done=120.0).first_poll == 2.0
    # Far from the end, the halving never waits longer than PLAYGROUND_POLL_MAX_SECONDS.
    assert plan(UpstreamTiming(running=0.0, early=110.0, done=120.0), 2.0) == 10.0


def test_a_first_poll_planned_on_an_older_estimate_is_not_followed_by_another_at_once() -> None:
    # Planned for 108 s; since then the estimate moved a little later. Asking again a
    # moment later would only hear "still running" twice.
    moved = UpstreamTiming(running=108.5, early=116.0, done=120.0)
    assert plan(moved, 108.0) == pytest.approx(6.0)
    # Moved a lot later: wait for the new window.
    later = UpstreamTiming(running=148.0, early=155.0, done=160.0)
    assert plan(later, 108.0) == pytest.approx(40.0)


def simulate(
    true_end: float, history: list[tuple[float | None, float]], jobs: int
) -> tuple[list[int], list[tuple[float | None, float]]]:
    """Jobs of a deterministic upstream polled one after another, each learning from the
    twenty before it, as upstream_timing does: polls per job, and the brackets learned."""
    polls: list[int] = []
    for _ in range(jobs):
        recent = history[-20:]
        done = sorted(d for _, d in recent)
        timing = UpstreamTiming(
            running=statistics.median(r or 0.0 for r, _ in recent),
            early=done[2],
            done=statistics.median(done),
        )
        elapsed, count, seen_running = first_poll_at(timing, initial=2.0), 1, None
        while elapsed < true_end:
            seen_running = elapsed
            elapsed += plan(timing, elapsed, count)
            count += 1
        history.append((seen_running, elapsed))
        polls.append(count)
    return polls, history


def test_polls_settle_at_two_a_job_within_a_step_of_its_end() -> None:
    # History from backing off with no history: seen running at 92 s, done at 130 s.
    polls, history = simulate(100.0, [(92.0, 130.0)] * 20, jobs=60)
    assert polls[-20:] == [2] * 20
    assert all(100.0 <= done < 102.0 for _, done in history[-20:])


def test_when_first_polls_find_jobs_done_the_next_ones_come_earlier() -> None:
    # PixelDojo got faster: jobs once seen running at 128 s now end at 60 s. Jobs found
    # done by their first poll teach no lower edge; once they are half the history, the
    # next jobs are asked early and find the new end.
    polls, history = simulate(60.0, [(128.0, 130.0)] * 20, jobs=80)
    assert polls[:3] == [1, 1, 1]
    assert polls[-10:] == [2] * 10
    assert all(60.0 <= done < 62.0 for _, done in history[-10:])
    assert sum(polls) <= 80 * 3, "relearning costs a few polls, not many"


def test_a_late_poll_teaches_nothing_about_how_long_jobs_take() -> None:
    started = utcnow()
    due = started + timedelta(seconds=30)
    # On time, or late by a busy moment: done by when the poll was due.
    assert done_by_seconds(started=started, due=due, now=due) == 30.0
    assert done_by_seconds(started=started, due=due, now=due + timedelta(seconds=2)) == 30.0
    # Late by minutes (the app was down): it ended some time before; nothing learned.
    assert done_by_seconds(started=started, due=due, now=due + timedelta(minutes=10)) is None
    assert done_by_seconds(started=started, due=None, now=due) is None


@pytest.mark.both_databases
def test_the_timing_is_the_spread_of_recent_jobs_of_the_kind(
    tmp_path: Path, database: DatabaseChoice
) -> None:
    db = database.open(tmp_path)
    db.migrate()
    now = utcnow()
    with db.write() as session:
        for running, done, size in (
            (8, 10, "square"),
            (9, 12, "square"),
            (None, 30, "square"),
            (5, None, "square"),
            (90, 99, "auto_4K"),
        ):
            session.add(
                Job(
                    model="seedream-4",
                    prompt="timed",
                    image_size=size,
                    num_images=1,
                    request_body={},
                    status=JobStatus.COMPLETED,
                    submitted_at=now,
                    seen_running_seconds=running,
                    done_by_seconds=done,
                    upstream_completed_at=now,
                )
            )
    square = upstream_timing(db, model="seedream-4", image_size="square", num_images=1)
    # A job found done by its first poll has a lower edge of 0; one whose end came to light
    # late (done_by_seconds None) is left out.
    assert square == UpstreamTiming(running=8.0, early=10.0, done=12.0)
    # Too few of a kind: the model's jobs of any size speak for it.
    other = upstream_timing(db, model="seedream-4", image_size="auto_4K", num_images=1)
    assert other == UpstreamTiming(running=8.5, early=10.0, done=21.0)
    assert upstream_timing(db, model="other", image_size="square", num_images=1) is None
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
