"""How long jobs take: the estimate a running job shows, from the jobs before it."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, select

from app.database import Database
from app.models import Job, JobStatus

# Enough recent jobs to smooth out one slow one, few enough to follow a change of pace.
SAMPLE_SIZE = 20


def typical_seconds(
    db: Database, *, models: list[str], sample: int = SAMPLE_SIZE
) -> dict[str, float]:
    """Median seconds from creation to stored images of each model's recent completed jobs."""
    typical: dict[str, float] = {}
    with db.read() as session:
        for model in models:
            rows = session.exec(
                select(Job.created_at, Job.finished_at)
                .where(Job.model == model, Job.status == JobStatus.COMPLETED)
                .order_by(col(Job.id).desc())
                .limit(sample)
            ).all()
            durations = [
                (finished - created).total_seconds() for created, finished in rows if finished
            ]
            if durations:
                typical[model] = round(statistics.median(durations), 1)
    return typical


# --- When to ask PixelDojo about a running job ----------------------------------------

# With no history yet, the first poll comes after PLAYGROUND_POLL_INITIAL_SECONDS and the
# delay grows by half each time; with history, polls close in on when jobs like it end.
BACKOFF = 1.5
STEP_SHARE = 0.1
STEP_MIN, STEP_MAX = 0.25, 2.0
# The fastest recent completions: a tenth of them, so that with enough history one freak
# fast job does not count.
EARLY_QUANTILE = 0.1
# Past this share of the usual time the job is unusually slow: back off again.
CLOSE_WATCH_SHARE = 1.5
# Fewer would be one odd job's whim.
MIN_SAMPLES = 3
# A poll this much later than planned still tells when the job was done by: when it was
# planned. Later than that (the app was down, polls were held back), it tells nothing.
LATE_POLL_TOLERANCE_SECONDS = 5.0


def done_by_seconds(*, started: datetime, due: datetime | None, now: datetime) -> float | None:
    """What a poll that found a job done teaches about how long it took, in seconds after
    submission: when the poll was due, not when it ran (a poll made late by a busy moment
    must not teach later jobs that PixelDojo is slower than it is); nothing if it ran late."""
    if due is None or (now - due).total_seconds() > LATE_POLL_TOLERANCE_SECONDS:
        return None
    return (min(now, due) - started).total_seconds()


@dataclass(frozen=True)
class UpstreamTiming:
    """How long PixelDojo took for recent jobs of a kind, in seconds after submission.

    Each job is bracketed by the last poll that found it running (0 if the first poll
    already found it done) and the poll that found it done. `running`: the median lower
    edge; `early` and `done`: a tenth and half of the jobs were done by then.
    """

    running: float
    early: float
    done: float

    @property
    def step(self) -> float:
        return min(STEP_MAX, max(STEP_MIN, self.done * STEP_SHARE))

    @property
    def first_poll(self) -> float:
        # When jobs like it were last seen running; but a step before the fastest were
        # done at the latest. Without that cap, first polls creep up to the jobs' end,
        # find most of them done, and those teach no lower edge. With it, first polls
        # find most jobs running unless PixelDojo got faster; then more than half are
        # found done at once, the median lower edge drops to 0, and the next jobs are
        # asked early and bisect their way to the new end.
        return max(self.step, min(self.running, self.early - self.step))

    def wait_for_window(self, elapsed: float) -> float:
        """Seconds until the first poll is due, for a job submitted `elapsed` seconds ago;
        0 within a step of it (asking a moment later would learn nothing new)."""
        wait = self.first_poll - elapsed
        return wait if wait >= self.step else 0.0


def upstream_timing(
    db: Database, *, model: str, image_size: str, num_images: int, sample: int = SAMPLE_SIZE
) -> UpstreamTiming | None:
    """The timing of recent jobs of this kind; of the model's jobs of any size when this kind
    has too few; None with no history."""
    kinds = [
        (Job.model == model, Job.image_size == image_size, Job.num_images == num_images),
        (Job.model == model,),
    ]
    with db.read() as session:
        for conditions in kinds:
            rows = session.exec(
                select(col(Job.seen_running_seconds), col(Job.done_by_seconds))
                .where(*conditions, col(Job.done_by_seconds).is_not(None))
                .order_by(col(Job.id).desc())
                .limit(sample)
            ).all()
            running = [seen or 0.0 for seen, _ in rows]
            done = sorted(done for _, done in rows if done is not None)
            if len(done) >= MIN_SAMPLES:
                return UpstreamTiming(
                    running=statistics.median(running),
                    early=done[min(len(done) - 1, int(EARLY_QUANTILE * len(done)))],
                    done=statistics.median(done),
                )
    return None


def first_poll_at(timing: UpstreamTiming | None, *, initial: float) -> float:
    """Seconds after submission to ask first."""
    return initial if timing is None else timing.first_poll


def next_poll_in(
    *,
    timing: UpstreamTiming | None,
    elapsed: float,
    poll_count: int,
    initial: float,
    maximum: float,
) -> float:
    """Seconds until the next status poll of a job submitted `elapsed` seconds ago that
    PixelDojo has just said is still running."""
    if timing is None:
        return min(maximum, initial * BACKOFF ** max(0, poll_count - 1))
    step = timing.step
    # Before the window: the estimate moved later since this poll was planned.
    if wait := timing.wait_for_window(elapsed):
        return wait
    if elapsed < timing.done:
        # Far from the usual end: halve the distance; close to it: small steps.
        gap = timing.done - elapsed
        return min(maximum, gap / 2) if gap > 2 * step else step
    if elapsed < timing.done * CLOSE_WATCH_SHARE:
        return step
    # Unusually slow: wait half as long again as it has overrun, within the maximum.
    overrun = elapsed - timing.done * CLOSE_WATCH_SHARE
    return min(maximum, max(step, overrun / 2))
