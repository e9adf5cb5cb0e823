"""The worker's scheduling policy: when to ask about a job again, when to give up on it,
how long to trust what was looked up.

Arithmetic only, on numbers, moments and rows already read: nothing here reads a clock,
the database or PixelDojo (the caller passes `now`), so each rule can be checked alone
(tests/test_schedule.py) and `app.worker.poller` keeps the I/O and the order it happens
in. How long jobs of a kind take is learned in `app.features.jobs.timing`; this decides
what the worker does with it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from app.features.jobs import timing
from app.storage.db.tables import Job
from app.upstream import ListedJob

# Check the database this often even with nothing due: other workers add jobs too.
IDLE_RECHECK_SECONDS = 5.0
RETRY_MAX_SECONDS = 60.0
# Images stored at once (download, check, thumbnail), apart from the polls.
STORE_CONCURRENCY = 8
# How long a learned job timing is trusted before it is looked up again (a cheap indexed
# read): short, because each look-up narrows the window in which jobs finish, and a team
# submitting in bursts needs it narrow within seconds, not minutes.
EXPECTATION_TTL_SECONDS = 5.0
# While the key is refused, polls wait this long (a person has to fix the key).
KEY_REFUSED_RETRY_SECONDS = 60.0
RECONCILE_RETRY_SECONDS = 5.0
# How long images stay on PixelDojo's temporary host when it does not say (legacy API).
DEFAULT_RETENTION = timedelta(hours=24)
# The upstream may record a job a little before or after our clock says we sent it.
CLOCK_SLACK_SECONDS = 30.0


def idle_wait(due_in: float | None) -> float:
    """How long the loop sleeps: until the next job is due (a hair after, so it is due by
    then), never longer than `IDLE_RECHECK_SECONDS`."""
    if due_in is None:
        return IDLE_RECHECK_SECONDS
    return min(IDLE_RECHECK_SECONDS, due_in + 0.01)


def free_slots(*, concurrency: int, polling: int, storing: int) -> int:
    """How many more jobs a worker may claim."""
    # Images waiting for a storing slot count against claiming: otherwise one worker
    # would lease every finished job after a restart and the others could not help.
    waiting_to_store = max(0, storing - STORE_CONCURRENCY)
    return concurrency - polling - waiting_to_store


def still_fresh(looked_up_at: float | None, *, now: float) -> bool:
    """Whether something looked up at `looked_up_at` (monotonic clock; None: never) is
    trusted as it is rather than looked up again."""
    return looked_up_at is not None and now - looked_up_at < EXPECTATION_TTL_SECONDS


def first_poll_delay(
    *,
    found: timing.UpstreamTiming | None,
    callbacks_arrive: bool,
    initial: float,
    maximum: float,
) -> float:
    """When to ask about a job just submitted: a little before jobs like it end; or, for a
    job PixelDojo will call back about while callbacks arrive, when all but the slowest
    would have called."""
    if callbacks_arrive:
        return timing.safety_poll_in(
            timing=found, elapsed=0.0, poll_count=0, initial=initial, maximum=maximum
        )
    return timing.first_poll_at(found, initial=initial)


def poll_delay(
    *,
    found: timing.UpstreamTiming | None,
    elapsed: float,
    poll_count: int,
    awaiting_callback: bool,
    initial: float,
    maximum: float,
) -> float:
    """Seconds until the next poll of a job PixelDojo just said is running: the few safety
    polls while its callback is still to come (`awaiting_callback`), else ordinary ones."""
    schedule = timing.safety_poll_in if awaiting_callback else timing.next_poll_in
    return schedule(
        timing=found, elapsed=elapsed, poll_count=poll_count, initial=initial, maximum=maximum
    )


def past_deadline(*, created_at: datetime, deadline_seconds: float, now: datetime) -> bool:
    """Whether a job still running upstream has run out of time."""
    return now > created_at + timedelta(seconds=deadline_seconds)


def given_up(
    *, created_at: datetime, expires_at: datetime | None, deadline_seconds: float, now: datetime
) -> bool:
    """Past the job's deadline and past the time its images could still be fetched."""
    deadline = created_at + timedelta(seconds=deadline_seconds)
    return now > max(deadline, expires_at or deadline)


def images_expire(job: Job) -> datetime:
    """When the images' URLs die: PixelDojo's expiresAt, else the contract's 24 hours."""
    if job.expires_at is not None:
        return job.expires_at
    return (job.upstream_completed_at or job.created_at) + DEFAULT_RETENTION


def backoff_ceiling(*, poll_count: int, initial: float) -> float:
    """The longest a retry waits after `poll_count` attempts; the caller draws the delay
    between half of it and all of it (full jitter, so many jobs do not retry in step)."""
    return min(RETRY_MAX_SECONDS, initial * 2.0 ** min(poll_count, 10))


def capped_retry_delay(delay: float, *, expires_in: float | None) -> float:
    """A retry's delay, at most `RETRY_MAX_SECONDS`; for images that expire in `expires_in`
    seconds, the last attempt lands just after the expiry, where the job is marked expired."""
    delay = min(delay, RETRY_MAX_SECONDS)
    if expires_in is not None:
        delay = min(delay, max(0.5, expires_in + 0.5))
    return delay


def trusted_for(lease_seconds: float) -> float:
    """How long a claim or renewal is trusted without asking the database again: a quarter
    of a lease, so a request started within it ends long before the lease could."""
    return lease_seconds / 4


def held_within(since: float | None, *, now: float, within: float) -> bool:
    """Whether a lease known good at `since` (monotonic clock) was so less than `within`
    seconds ago: nobody can take a lease in its first part."""
    return since is not None and now - since < within


def could_be(job: Job, entry: ListedJob, *, submit_window_seconds: float) -> bool:
    """Whether one of PixelDojo's recent jobs could be this lost submission."""
    if entry.model is not None and entry.model != job.model:
        return False
    if entry.prompt is not None and entry.prompt != job.prompt:
        return False
    if entry.created_at is None:
        # Without a time, only a matching prompt can tell.
        return entry.prompt is not None
    # Without a prompt, a job made within the submit's window is taken only if it is the
    # one unclaimed candidate (the caller counts them).
    earliest = job.created_at - timedelta(seconds=CLOCK_SLACK_SECONDS)
    latest = job.created_at + timedelta(seconds=submit_window_seconds + CLOCK_SLACK_SECONDS)
    return earliest <= entry.created_at <= latest
