"""Callbacks from PixelDojo: told when a job ends instead of asking until it has.

Polling alone cannot find jobs that vary done soon after they end without asking
many times (bench/bound.py). PixelDojo takes a `webhook_url` with each run and
calls it when the job ends; when PLAYGROUND_PUBLIC_URL says where PixelDojo can
reach this app, every run carries one:

    {public_url}/webhooks/pixeldojo/{job id}/{signature}

What PixelDojo sends there (its payload, a signature header, retries) is not
documented, so nothing in it is trusted or even read: the call only says "ask
about this job now". The URL's signature (of the job id, app/core/signing.py
`CALLBACK`) is the permission, so a call needs no
sign-in; a forged or repeated one can at most bring one status poll forward,
never spend a credit or change a job. The poll that follows reads the job from
PixelDojo with the API key, as any poll does.

Polls stay as a safety net: once recent jobs show that callbacks arrive
(`callbacks_arrive`), a job's polls wait until all but the slowest jobs of its
kind would have called back (app/features/jobs/timing.py `safety_poll_in`); until then, or if
they stop arriving, jobs are polled as usual, and a callback still brings a poll
forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col, select

from app.core import signing
from app.features.jobs.queue import CALLED_BACK_STATUSES
from app.storage.db.engine import Database
from app.storage.db.tables import Job, JobStatus, UTCDateTime

PATH_PREFIX = "/webhooks/pixeldojo/"
# The run body's field for it (the contract's name).
RUN_FIELD = "webhook_url"
# One answer for a wrong signature and an unknown job (`doctor` knows the app by it).
NOT_FOUND_MESSAGE = "There is no such callback address."
# A callback repeated within this long brings no second poll forward (PixelDojo retrying,
# or someone who learned the URL calling it in a loop).
REPEAT_IGNORED_SECONDS = 5.0
# Callbacks are trusted to arrive when at least half of the newest TRUST_SAMPLE finished
# jobs that asked for one got one (so if they stop, polls take over after about ten jobs);
# with fewer than TRUST_MIN_JOBS such jobs, nothing is assumed. Looked for among the last
# TRUST_WINDOW_JOBS jobs submitted: a bounded read by primary key, however big the gallery,
# and wide enough for a batch of a thousand still running.
TRUST_SAMPLE = 20
TRUST_MIN_JOBS = 3
TRUST_SHARE = 0.5
TRUST_WINDOW_JOBS = 5_000


@dataclass
class CallbackBase:
    """Where PixelDojo calls back, if anywhere: `PLAYGROUND_PUBLIC_URL` when callbacks are
    on, or, in demo mode without one, the address the app was first reached on
    (app/web/own_address.py). None: polls alone tell the app when a job ends."""

    url: str | None = None


def _signed(job_id: int) -> str:
    return f"job:{job_id}"


def signature(signer: signing.Signer, job_id: int) -> str:
    return signer.sign(signing.CALLBACK, _signed(job_id))


def callback_url(public_url: str, signer: signing.Signer, job_id: int) -> str:
    return f"{public_url.rstrip('/')}{PATH_PREFIX}{job_id}/{signature(signer, job_id)}"


def signature_valid(signer: signing.Signer, job_id: int, presented: str) -> bool:
    return signer.valid(signing.CALLBACK, _signed(job_id), presented)


def record_callback(db: Database, *, job_id: int, now: datetime) -> bool:
    """PixelDojo says the job ended: note when, and make the job due for a poll now (a
    worker holding it sees the change when it lets go, app/features/jobs/queue.py). Returns whether
    anything changed (False for an unknown job or a repeat within REPEAT_IGNORED_SECONDS)."""
    fresh = sa.or_(
        col(Job.webhook_at).is_(None),
        col(Job.webhook_at) < now - timedelta(seconds=REPEAT_IGNORED_SECONDS),
    )
    # Noted whatever the job's state (a poll may have found it done first): that callbacks
    # arrive at all is what `callbacks_arrive` learns from.
    poll_now = sa.case(
        (col(Job.status).in_(CALLED_BACK_STATUSES), sa.literal(now, UTCDateTime())),
        else_=col(Job.next_poll_at),
    )
    with db.write() as session:
        result = session.execute(
            sa.update(Job)
            .where(col(Job.id) == job_id, fresh)
            .values(webhook_at=now, next_poll_at=poll_now)
        )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def callbacks_arrive(db: Database) -> bool:
    """Whether PixelDojo's callbacks reach this app, as the last jobs submitted show."""
    asked, called = callback_counts(db)
    return asked >= TRUST_MIN_JOBS and called >= TRUST_SHARE * asked


def callback_counts(db: Database) -> tuple[int, int]:
    """Of the newest TRUST_SAMPLE finished jobs that asked for a callback, how many there
    are and how many got one."""
    with db.read() as session:
        newest = session.exec(select(sa.func.max(col(Job.id)))).one()
        if newest is None:
            return 0, 0
        finished = (
            select(col(Job.webhook_at))
            .where(
                col(Job.id) > newest - TRUST_WINDOW_JOBS,
                col(Job.webhook_requested),
                col(Job.status).in_((JobStatus.COMPLETED, JobStatus.FAILED)),
            )
            .order_by(col(Job.id).desc())
            .limit(TRUST_SAMPLE)
            .subquery()
        )
        asked, called = session.exec(
            select(sa.func.count(), sa.func.count(finished.c.webhook_at)).select_from(finished)
        ).one()
    return int(asked), int(called)
