"""Polls gather around the time jobs like it usually take, and back off when one is slow."""

from __future__ import annotations

import math
import random
import statistics
from datetime import timedelta
from pathlib import Path

import pytest

from app.features.jobs.timing import (
    STEP_MIN,
    UpstreamTiming,
    done_by_seconds,
    first_poll_at,
    next_poll_in,
    timing_from_brackets,
    upstream_timing,
)
from app.storage.db.tables import Job, JobStatus, utcnow
from tests.support.apps import make_settings, serve_app
from tests.support.databases import DatabaseChoice
from tests.support.emulators import RunningEmulator
from tests.support.jobs import wait_for_job


def plan(timing: UpstreamTiming | None, elapsed: float, poll_count: int = 1) -> float:
    return next_poll_in(
        timing=timing, elapsed=elapsed, poll_count=poll_count, initial=2.0, maximum=10.0
    )


def test_without_history_polls_back_off_from_the_initial_delay() -> None:
    assert [plan(None, 0, n) for n in (0, 1, 2, 3, 8)] == [2.0, 2.0, 3.0, 4.5, 10.0]
    assert first_poll_at(None, initial=2.0) == 2.0


def test_with_history_polls_come_around_when_jobs_like_it_end() -> None:
    # Ten jobs seen running at 50–68 s and found done 2 s later: a spread of about 9 s.
    brackets: list[tuple[float | None, float]] = [(50.0 + 2 * i, 52.0 + 2 * i) for i in range(10)]
    usual = timing_from_brackets(brackets, maximum=10.0)
    # The first poll when about 30% of them had ended (early in their brackets), then every
    # half interquartile range, until all but the slowest 5% had, and a step more.
    assert usual.first == pytest.approx(55.9)
    assert usual.step == pytest.approx(4.5)
    assert usual.until == pytest.approx(68.1 + 4.5)
    assert first_poll_at(usual, initial=2.0) == pytest.approx(55.9)
    # A first poll planned before the estimate moved later waits for the new window...
    assert usual.wait_for_window(40.0) == pytest.approx(15.9)
    assert usual.wait_for_window(53.0) == 0.0, "...but within a step of it, asks now"
    assert plan(usual, 40.0, poll_count=1) == pytest.approx(15.9)
    # Then steps, for a few polls; each poll after those waits half as long again.
    assert plan(usual, 57.0, poll_count=1) == pytest.approx(4.5)
    assert plan(usual, 61.0, poll_count=3) == pytest.approx(4.5)
    assert plan(usual, 65.0, poll_count=4) == pytest.approx(6.75)
    # Unusually slow: back off, within PLAYGROUND_POLL_MAX_SECONDS ...
    assert plan(usual, 90.0, poll_count=3) == pytest.approx(8.7), "half its overrun of 17.4 s"
    assert plan(usual, 95.0, poll_count=3) == 10.0
    # ... or a tenth of the time it has run, once that is longer.
    assert plan(usual, 300.0, poll_count=3) == pytest.approx(30.0)


def test_jobs_found_done_by_their_first_poll_bring_the_next_first_polls_earlier() -> None:
    # A few found done at once, among jobs found running: they ended a step before.
    mixed = timing_from_brackets([(None, 56.0)] * 3 + [(55.0, 57.0)] * 7, maximum=10.0)
    assert mixed.step == pytest.approx(1.0)
    assert mixed.first == pytest.approx(55.35), "30% had ended by then: the three, and a little"
    # Most found done at once: PixelDojo got faster; the next come 15% of the time earlier.
    faster = timing_from_brackets([(None, 60.0)] * 10, maximum=10.0)
    assert faster.step == pytest.approx(6.0), "nobody seen running: a tenth of the time"
    assert faster.first == pytest.approx(51.0)
    # No finer than the evidence: brackets 4 s wide give steps of at least 2 s.
    assert timing_from_brackets([(60.0, 64.0)] * 10, maximum=10.0).step == pytest.approx(2.0)
    assert timing_from_brackets([(60.0, 60.1)] * 10, maximum=10.0).step == STEP_MIN


def run_jobs(
    durations: list[float], history: list[tuple[float | None, float]]
) -> tuple[list[int], list[float], list[tuple[float | None, float]]]:
    """Jobs polled one after another as app.worker.poller polls them, each timed by the twenty
    before it: polls per job, delays from each job's end to the poll that found it done,
    and the brackets learned."""
    polls: list[int] = []
    delays: list[float] = []
    for duration in durations:
        timing = timing_from_brackets(history[-20:], maximum=10.0)
        elapsed, count, seen_running = first_poll_at(timing, initial=2.0), 0, None
        while True:
            if count == 0 and (wait := timing.wait_for_window(elapsed)):
                elapsed += wait  # a look: postponed, no request
                continue
            count += 1
            if elapsed >= duration:
                break
            seen_running = elapsed
            elapsed += plan(timing, elapsed, count)
        history.append((seen_running, elapsed))
        polls.append(count)
        delays.append(elapsed - duration)
    return polls, delays, history


def test_jobs_that_all_take_as_long_settle_within_half_a_second_of_their_end() -> None:
    # History from backing off with no history: seen running at 92 s, done at 130 s.
    polls, delays, _ = run_jobs([100.0] * 100, [(92.0, 130.0)] * 20)
    assert max(polls[-40:]) <= 2
    assert max(delays[-40:]) <= 2 * STEP_MIN


def test_when_first_polls_find_jobs_done_the_next_ones_come_earlier() -> None:
    # PixelDojo got faster: jobs once seen running at 128 s now end at 60 s.
    polls, delays, _ = run_jobs([60.0] * 80, [(128.0, 130.0)] * 20)
    assert polls[:3] == [1, 1, 1]
    assert max(polls[-20:]) <= 2
    assert max(delays[-20:]) <= 1.5
    assert sum(polls) <= 80 * 2, "relearning costs a few polls, not many"


def test_jobs_that_vary_take_about_three_polls_each_found_done_soon_after_their_end() -> None:
    # Lognormal durations, median 60 s, spread ×/÷1.5: no schedule both asks each job
    # once or twice and finds it done within a second or two (docs/benchmarks.md).
    rng = random.Random(3)
    durations = [60.0 * math.exp(math.log(1.5) * rng.gauss(0, 1)) for _ in range(400)]
    polls, delays, _ = run_jobs(durations, [(40.0, 50.0), (50.0, 60.0), (60.0, 70.0)] * 5)
    settled_polls, settled_delays = polls[50:], sorted(delays[50:])
    assert statistics.mean(settled_polls) - 1 <= 2.5
    assert settled_delays[len(settled_delays) // 2] <= 8.0
    assert max(settled_polls) <= 15, "each poll after a few waits longer"


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
def test_the_timing_is_that_of_recent_settled_jobs_of_the_kind(
    tmp_path: Path, database: DatabaseChoice
) -> None:
    db = database.open(tmp_path)
    db.migrate()
    now = utcnow()
    with db.write() as session:
        for running, done, size, age in (
            (8, 10, "square", 300),
            (9, 12, "square", 300),
            (None, 30, "square", 300),
            (5, None, "square", 300),
            (90, 99, "auto_4K", 300),
            # Just submitted, and already done: the fast ones of their time.
            (1, 2, "square", 5),
            (1, 2, "square", 5),
            (1, 2, "square", 5),
        ):
            session.add(
                Job(
                    model="seedream-4",
                    prompt="timed",
                    image_size=size,
                    num_images=1,
                    request_body={},
                    status=JobStatus.COMPLETED,
                    created_at=now - timedelta(seconds=age),
                    submitted_at=now - timedelta(seconds=age),
                    seen_running_seconds=running,
                    done_by_seconds=done,
                    upstream_completed_at=now,
                )
            )

    def timing_of(size: str, settled: float) -> UpstreamTiming | None:
        return upstream_timing(
            db,
            model="seedream-4",
            image_size=size,
            num_images=1,
            maximum=10.0,
            settled_seconds=settled,
        )

    # Settled: jobs submitted long enough ago; a job whose end came to light late
    # (done_by_seconds None) is left out.
    settled = [(8.0, 10.0), (9.0, 12.0), (None, 30.0)]
    assert timing_of("square", 60.0) == timing_from_brackets(settled, maximum=10.0)
    # Without a settling time, the newest: the fast ones first.
    assert timing_of("square", 0.0) == timing_from_brackets(
        [(1.0, 2.0)] * 3 + settled, maximum=10.0
    )
    # Too few of a kind: the model's jobs of any size speak for it.
    assert timing_of("auto_4K", 60.0) == timing_from_brackets(
        [(90.0, 99.0), *settled], maximum=10.0
    )
    assert (
        upstream_timing(db, model="other", image_size="square", num_images=1, maximum=10.0) is None
    )
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
