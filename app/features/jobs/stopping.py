"""Stopping jobs, and undoing a stop.

PixelDojo has no way to cancel a job. So a stop means what it can honestly mean:

- a job PixelDojo already has is no longer waited for: pages show it as stopped, at
  once, but the worker still polls it and keeps its images if they come (they are paid
  for either way);
- a job not yet sent (its submission waiting for the rate limit) is never sent: the
  submission looks just before sending (`refuse_if_stopped`) and gives up, and the job
  fails as "stopped before it was sent", costing nothing.

Stopping asks nothing, because it loses nothing that `resume` cannot give back: undone,
the job is waited for again (one that was never sent stays unsent; the answer says so).
Only whoever made a job, or an admin, may stop it, as for deleting it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlmodel import col, select

from app.features.people import audit
from app.features.people.permissions import Actor
from app.storage.db.engine import Database
from app.storage.db.tables import FINISHED_STATUSES, Job, utcnow

STOPPED_UNSENT = "Stopped before it was sent to PixelDojo: nothing was charged."


class StoppedBeforeSending(Exception):
    """The person stopped the job while its submission waited: it must not be sent."""


def stop_jobs(db: Database, *, actor: Actor, job_ids: Sequence[int]) -> list[int]:
    """Stop the unfinished jobs among `job_ids`; returns those it stopped (not those
    stopped already or finished). Forbidden if the actor may not change one of them."""
    ids = list(dict.fromkeys(job_ids))
    with db.write() as session:
        jobs = session.exec(
            select(Job).where(
                col(Job.id).in_(ids),
                col(Job.status).not_in(FINISHED_STATUSES),
                col(Job.stopped_at).is_(None),
            )
        ).all()
        for job in jobs:
            actor.ensure_may_change(job.user_id, what=f"job {job.id}")
        stopped = sorted(job.id for job in jobs if job.id is not None)
        if stopped:
            session.execute(
                sa.update(Job)
                .where(col(Job.id).in_(stopped), col(Job.stopped_at).is_(None))
                .values(stopped_at=utcnow())
            )
    if stopped:
        _record(db, actor, "stopped", stopped)
    return stopped


def resume_jobs(db: Database, *, actor: Actor, job_ids: Sequence[int]) -> list[int]:
    """Undo a stop: the jobs among `job_ids` that were stopped and can still be waited for
    (not those stopped before they were sent: they never will be). Returns them."""
    ids = list(dict.fromkeys(job_ids))
    with db.write() as session:
        jobs = session.exec(
            select(Job).where(
                col(Job.id).in_(ids),
                col(Job.stopped_at).is_not(None),
                sa.or_(col(Job.error).is_(None), col(Job.error) != STOPPED_UNSENT),
            )
        ).all()
        for job in jobs:
            actor.ensure_may_change(job.user_id, what=f"job {job.id}")
        resumed = sorted(job.id for job in jobs if job.id is not None)
        if resumed:
            session.execute(sa.update(Job).where(col(Job.id).in_(resumed)).values(stopped_at=None))
    if resumed:
        _record(db, actor, "resumed", resumed)
    return resumed


def is_stopped(db: Database, *, job_id: int) -> bool:
    with db.read() as session:
        stopped_at = session.exec(select(Job.stopped_at).where(col(Job.id) == job_id)).first()
    return stopped_at is not None


def refuse_if_stopped(db: Database, *, job_id: int) -> None:
    """Called just before a job is sent: StoppedBeforeSending if the person stopped it."""
    if is_stopped(db, job_id=job_id):
        raise StoppedBeforeSending(job_id)


def _record(db: Database, actor: Actor, what: str, job_ids: list[int]) -> None:
    audit.record(
        db,
        action=audit.Action.STOP,
        user=actor.user,
        ip=actor.ip,
        detail=f"{what} job(s) {', '.join(map(str, job_ids[:50]))}",
    )
