"""How long jobs take: the estimate a running job shows, from the jobs before it."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import col, select

from app.storage.db.engine import Database
from app.storage.db.tables import Job, JobStatus, utcnow

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
#
# PixelDojo says nothing about how long a job will take; the only way to learn that it
# is done is to ask. Each finished job leaves a bracket: the last poll that found it
# running and the poll that found it done. From the brackets of recent jobs of a kind
# come three figures (`UpstreamTiming`): when to ask first, how often to ask then, and
# until when; past that, polls back off. And however the estimate moves while a job
# runs, each poll after the first few waits longer than the one before.
#
# With jobs that vary (durations spread ×/÷1.5 around their median, say) no schedule
# finds every job done the moment it ends without asking many times: it trades polls
# against delay. This one asks a first time when about 30% of such jobs are done, then
# every half interquartile range: about three polls a job, each found done a few
# seconds after its end (docs/benchmarks.md has the figures, and the best any schedule
# can do with as many polls). With jobs that all take the same time, the spread is nil,
# the step shrinks to its minimum, and each job takes one or two polls within a
# quarter second of its end.

# With no history yet, the first poll comes after PLAYGROUND_POLL_INITIAL_SECONDS and the
# delay grows by half each time.
BACKOFF = 1.5
STEP_MIN = 0.25
# When to ask first: when this share of recent jobs of the kind were done.
FIRST_QUANTILE = 0.3
# Until when to keep asking every step: when this share were done (then one step more).
LAST_QUANTILE = 0.95
# The step: this share of the spread of when recent jobs ended (their interquartile
# range), but no finer than half the brackets they were found in (finer than the
# evidence would be a guess) ...
SPREAD_SHARE = 0.5
BRACKET_SHARE = 0.5
# ... or, while few jobs were ever found running, a tenth of the usual time.
FALLBACK_STEP_SHARE = 0.1
# Where in its bracket a job is taken to have ended, for the first poll (see below).
EARLY_SHARE = 0.25
# When most recent jobs were done by their first poll, the next first polls come this
# share of the usual time earlier (then the estimate settles again from brackets).
FASTER_SHARE = 0.15
# Polls a job gets at the steady step; each after these waits half as long again.
FREE_POLLS = 3
# Past its usual time, a job waits up to this share of the time it has run between polls.
SLOW_SHARE = 0.1
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
    """When to ask about a running job of a kind, in seconds after its submission."""

    first: float  # the first poll
    step: float  # then this often ...
    until: float  # ... until this; then back off

    def wait_for_window(self, elapsed: float) -> float:
        """Seconds until the first poll is due, for a job submitted `elapsed` seconds ago;
        0 within a step of it (asking a moment later would learn nothing new)."""
        wait = self.first - elapsed
        return wait if wait >= self.step else 0.0


Bracket = tuple[float | None, float]


def timing_from_brackets(brackets: Sequence[Bracket], *, maximum: float) -> UpstreamTiming:
    """The timing of jobs that ended within these (seen running, found done) brackets.

    A job found done by its first poll has no lower edge (None or 0): it ended some time
    before. It is taken to have ended a step before it was found, so that first polls
    finding many jobs done bring the next ones earlier; halfway, when most were.
    """
    two_sided = [(seen, done) for seen, done in brackets if seen]
    if len(two_sided) >= MIN_SAMPLES:
        middles = [(seen + done) / 2 for seen, done in two_sided]
        spread = _quantile(middles, 0.75) - _quantile(middles, 0.25)
        widths = [done - seen for seen, done in two_sided]
        step = max(SPREAD_SHARE * spread, BRACKET_SHARE * statistics.median(widths))
    else:
        step = FALLBACK_STEP_SHARE * statistics.median(done for _, done in brackets)
    step = min(maximum, max(STEP_MIN, step))
    # A job found done by its first poll ended a step before, say; when most were, PixelDojo
    # got faster by an unknown amount: move further back, a share of the time each time.
    back = (
        step
        if len(two_sided) * 2 >= len(brackets)
        else max(step, FASTER_SHARE * statistics.median(done for _, done in brackets))
    )
    ends = [(seen + done) / 2 if seen else max(0.0, done - back) for seen, done in brackets]
    # For the first poll, each job is taken to have ended early in its bracket: when all jobs
    # take alike and their brackets are wide, the first poll then comes just before the end
    # (a step later finds it done) rather than halfway past it.
    early_ends = [
        seen + EARLY_SHARE * (done - seen) if seen else end
        for (seen, done), end in zip(brackets, ends, strict=True)
    ]
    first = max(step, _quantile(early_ends, FIRST_QUANTILE))
    until = max(first, _quantile(ends, LAST_QUANTILE)) + step
    return UpstreamTiming(first=first, step=step, until=until)


def upstream_timing(
    db: Database,
    *,
    model: str,
    image_size: str,
    num_images: int,
    maximum: float,
    settled_seconds: float = 0.0,
    sample: int = SAMPLE_SIZE,
) -> UpstreamTiming | None:
    """The timing of recent jobs of this kind (of the model's jobs of any size when this
    kind has too few); None with no history.

    Recent, but submitted at least `settled_seconds` ago (the caller passes the `until` of
    its last estimate): of the jobs submitted in the last minute, only the fast ones have
    finished yet, and timing the next jobs by them alone would ask every job too early.
    """
    kinds = [
        (Job.model == model, Job.image_size == image_size, Job.num_images == num_images),
        (Job.model == model,),
    ]
    settled_before = utcnow() - timedelta(seconds=settled_seconds)
    with db.read() as session:
        for conditions in kinds:
            for settled in (True, False):
                query = (
                    select(col(Job.seen_running_seconds), col(Job.done_by_seconds))
                    .where(*conditions, col(Job.done_by_seconds).is_not(None))
                    .order_by(col(Job.id).desc())
                    .limit(sample)
                )
                if settled and settled_seconds > 0:
                    query = query.where(col(Job.created_at) <= settled_before)
                rows = session.exec(query).all()
                brackets = [(seen, done) for seen, done in rows if done is not None]
                if len(brackets) >= MIN_SAMPLES:
                    return timing_from_brackets(brackets, maximum=maximum)
    return None


def first_poll_at(timing: UpstreamTiming | None, *, initial: float) -> float:
    """Seconds after submission to ask first (app.worker.poller postpones, without asking, a first
    poll the estimate has since moved later)."""
    return initial if timing is None else timing.first


def next_poll_in(
    *,
    timing: UpstreamTiming | None,
    elapsed: float,
    poll_count: int,
    initial: float,
    maximum: float,
) -> float:
    """Seconds until the next status poll of a job submitted `elapsed` seconds ago that
    PixelDojo has just said is still running (`poll_count`: polls made so far)."""
    if timing is None:
        return min(maximum, initial * BACKOFF ** max(0, poll_count - 1))
    # Before the window: the estimate moved later since this poll was planned.
    if wait := timing.wait_for_window(elapsed):
        return wait
    # However the estimate moves while the job runs, its polls stay few.
    floor = timing.step * BACKOFF ** max(0, poll_count - FREE_POLLS)
    if elapsed < timing.until:
        return min(maximum, max(timing.step, floor))
    # Unusually slow: wait half as long again as it has overrun, and longer than the
    # setting's maximum once that is less than a tenth of the time the job has run (a slow
    # spell at PixelDojo must not cost a poll every few seconds for minutes per job).
    overrun = elapsed - timing.until
    return min(max(maximum, SLOW_SHARE * elapsed), max(timing.step, overrun / 2, floor))


# With callbacks arriving (app/features/jobs/callbacks.py), polls only catch a callback lost on the
# way:
# the first when all but the slowest jobs of the kind would have called back, half as
# late again as the usual polls stop ...
SAFETY_SHARE = 1.5
# ... then each after this share of the time the job has run (a lost callback is rare; a
# job in a slow spell at PixelDojo should not cost a poll every few seconds).
SAFETY_BACKOFF_SHARE = 0.25


def safety_poll_in(
    *,
    timing: UpstreamTiming | None,
    elapsed: float,
    poll_count: int,
    initial: float,
    maximum: float,
) -> float:
    """Seconds until the next poll of a job submitted `elapsed` seconds ago whose end
    PixelDojo is expected to call back about. With no history, as `next_poll_in`; with it,
    `poll_count` and `maximum` do not apply (these polls are few by design)."""
    if timing is None:
        return next_poll_in(
            timing=None, elapsed=elapsed, poll_count=poll_count, initial=initial, maximum=maximum
        )
    first = SAFETY_SHARE * timing.until
    if elapsed < first:
        return first - elapsed
    return max(timing.step, SAFETY_BACKOFF_SHARE * elapsed)


def _quantile(values: Sequence[float], share: float) -> float:
    """Linear interpolation between the closest ranks."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * share
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
