"""How long jobs take: the estimate a running job shows, from the jobs before it."""

from __future__ import annotations

import statistics

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
# delay grows by half each time; with history, polls gather around the expected end.
BACKOFF = 1.5
# Ask a little before jobs like it usually finish: they vary, and an early "still running"
# costs one request while a late poll costs the person waiting.
FIRST_POLL_SHARE = 0.85
STEP_SHARE = 0.1
STEP_MIN, STEP_MAX = 0.25, 2.0
# Past this share of the expected time the job is unusually slow: back off again.
CLOSE_WATCH_SHARE = 1.5
# Two fewer would be one slow job's whim.
MIN_SAMPLES = 3


def upstream_seconds(
    db: Database, *, model: str, image_size: str, num_images: int, sample: int = SAMPLE_SIZE
) -> float | None:
    """Median seconds PixelDojo took (submission to seen done) for recent jobs of this kind;
    the model's recent jobs of any size when this kind has too few."""
    kinds = [
        (Job.model == model, Job.image_size == image_size, Job.num_images == num_images),
        (Job.model == model,),
    ]
    with db.read() as session:
        for conditions in kinds:
            rows = session.exec(
                select(col(Job.upstream_completed_at), col(Job.submitted_at))
                .where(*conditions, col(Job.upstream_completed_at).is_not(None))
                .order_by(col(Job.id).desc())
                .limit(sample)
            ).all()
            seconds = [
                (completed - submitted).total_seconds()
                for completed, submitted in rows
                if completed is not None and submitted is not None
            ]
            if len(seconds) >= MIN_SAMPLES:
                return statistics.median(seconds)
    return None


def next_poll_in(
    *,
    expected: float | None,
    elapsed: float,
    poll_count: int,
    initial: float,
    maximum: float,
) -> float:
    """Seconds until the next status poll of a job submitted `elapsed` seconds ago."""
    if expected is None:
        return min(maximum, initial * BACKOFF ** max(0, poll_count - 1))
    step = min(STEP_MAX, max(STEP_MIN, expected * STEP_SHARE))
    window_opens = expected * FIRST_POLL_SHARE
    if elapsed < window_opens:
        return window_opens - elapsed
    if elapsed < expected * CLOSE_WATCH_SHARE:
        return step
    # Unusually slow: wait half as long again as it has overrun, within the maximum.
    overrun = elapsed - expected * CLOSE_WATCH_SHARE
    return min(maximum, max(step, overrun / 2))
