"""Creating a job and recording what became of its submission.

The row is written before anything is sent upstream, leased to the submitter; the
submitter then records the upstream's answer, only while it still holds the lease
(app/features/jobs/submission.py drives this). Functions are keyword-only and take the `Database`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlmodel import Session, select

from app.core.errors import InvalidParameters
from app.domain.model_params import RunParams
from app.features.people.budgets import check_budget
from app.storage.db.engine import Database
from app.storage.db.tables import Job, JobStatus, User, utcnow
from app.storage.db.upsert import upsert
from app.upstream import UpstreamJob


class IdempotencyConflict(Exception):
    """The idempotency key was used before, for a different request."""

    def __init__(self, job_id: int) -> None:
        super().__init__(job_id)
        self.job_id = job_id


def create_job(
    db: Database,
    *,
    params: RunParams,
    model: str,
    preset: str | None,
    owner: str,
    lease_seconds: float,
    idempotency_key: str | None = None,
    user: User | None = None,
    remix_of: RemixSource | None = None,
    reference_images: list[int] | None = None,
    estimated_credits: float | None = None,
    request_body: dict[str, Any] | None = None,
) -> tuple[Job, bool]:
    """Write the job before anything is sent upstream, leased to the submitter (under the
    job's first token, which the submitter's every later write names).

    Returns the job and whether it is new. With an idempotency key already used for
    the same request, the earlier job comes back instead (the unique constraint
    decides, so two requests racing with one key cannot both create a job). The
    person's budget is checked in the same transaction (BudgetExceeded), against
    `estimated_credits` (the catalogue's figure; by default the built-in one).
    `request_body` is what is kept of the body sent (by default the run's upstream body;
    references are kept as notes naming their images, not their bytes).
    """
    now = utcnow()
    cost = params.estimated_credits if estimated_credits is None else estimated_credits

    def new_job() -> Job:
        return Job(
            model=model,
            preset=preset,
            **params.columns(),
            request_body=params.upstream_body() if request_body is None else request_body,
            status=JobStatus.SUBMITTING,
            created_at=now,
            updated_at=now,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            idempotency_key=idempotency_key,
            user_id=user.id if user is not None else None,
            estimated_credits=cost,
            remix_of_job_id=remix_of.job_id if remix_of else None,
            remix_of_image_index=remix_of.image_index if remix_of else None,
            reference_images=list(reference_images) if reference_images else None,
        )

    request = new_job()

    def write(session: Session) -> tuple[Job, bool]:
        if idempotency_key is not None:
            earlier = _with_key(session, idempotency_key)
            if earlier is not None:
                return _replayed(earlier, request), False
        if remix_of is not None:
            _check_remix_source(session, remix_of)
        if user is not None and user.id is not None:
            # Locked (on PostgreSQL) until the job is written: one person's submissions
            # are checked against their budget one at a time, each seeing the last.
            current = session.get(User, user.id, with_for_update=True)
            if current is not None:
                check_budget(session, user=current, cost=cost, now=now)
        job = new_job()
        session.add(job)
        session.flush()
        return job, True

    # Two requests with one key may both find none (on a server database): the unique key
    # lets one in, and the other, written again, gets its job.
    return upsert(db, write)


@dataclass(frozen=True)
class RemixSource:
    """The job a new one was remixed from, and which of its images (None: the job)."""

    job_id: int
    image_index: int | None = None


def _check_remix_source(session: Session, remix_of: RemixSource) -> None:
    source = session.get(Job, remix_of.job_id)
    if source is None:
        raise InvalidParameters({"remix_of": f"there is no job {remix_of.job_id}"})
    index = remix_of.image_index
    if index is not None and not 0 <= index < source.num_images:
        raise InvalidParameters(
            {"remix_image": f"job {source.id} has images 0 to {source.num_images - 1}"}
        )


def _with_key(session: Session, idempotency_key: str) -> Job | None:
    return session.exec(select(Job).where(Job.idempotency_key == idempotency_key)).first()


def _replayed(earlier: Job, request: Job) -> Job:
    """The earlier job for a repeated key, if the repeat asks for the same thing."""
    assert earlier.id is not None
    if (
        earlier.request_body != request.request_body
        or earlier.model != request.model
        or earlier.remix_of_job_id != request.remix_of_job_id
        or earlier.remix_of_image_index != request.remix_of_image_index
        or (earlier.reference_images or None) != (request.reference_images or None)
    ):
        raise IdempotencyConflict(earlier.id)
    return earlier


def record_submitted(
    db: Database,
    *,
    job_id: int,
    owner: str,
    token: int,
    upstream: UpstreamJob,
    first_poll_in: float,
    webhook_requested: bool = False,
) -> Job:
    """The upstream accepted the job; only its submitter, still holding it under the token
    it wrote, records that. A job PixelDojo already called back about (it ended while its
    submit's answer was on the way) is due for a poll at once."""
    now = utcnow()
    with db.write() as session:
        job = _submitting(session, job_id, owner, token)
        if job.webhook_at is not None:
            first_poll_in = 0.0
        job.webhook_requested = webhook_requested
        job.upstream_job_id = upstream.job_id
        job.upstream_status = upstream.status
        job.status = JobStatus.PENDING
        job.submitted_at = now
        job.credit_cost = upstream.credit_cost
        job.credits_remaining = upstream.credits_remaining
        job.expires_at = upstream.expires_at
        job.next_poll_at = now + timedelta(seconds=first_poll_in)
        job.lease_owner = None
        job.lease_expires_at = None
        job.updated_at = now
        session.add(job)
    return job


def record_lost_submission(
    db: Database, *, job_id: int, owner: str, token: int, note: str, first_look_in: float
) -> None:
    """The submit's answer never came: look for the job upstream before deciding anything."""
    now = utcnow()
    with db.write() as session:
        job = _submitting(session, job_id, owner, token)
        job.status = JobStatus.RECONCILING
        job.error = note
        job.submitted_at = now
        job.next_poll_at = now + timedelta(seconds=first_look_in)
        job.lease_owner = None
        job.lease_expires_at = None
        job.updated_at = now
        session.add(job)


class LeaseLost(Exception):
    """The job is no longer this worker's to change (it was taken over)."""


def _submitting(session: Session, job_id: int, owner: str, token: int) -> Job:
    # Locked (on PostgreSQL) from the check to the commit, so the lease cannot pass.
    job = session.get(Job, job_id, with_for_update=True)
    if job is None:
        raise LookupError(f"job {job_id} does not exist")
    if (
        job.status is not JobStatus.SUBMITTING
        or job.lease_owner != owner
        or job.lease_token != token
    ):
        raise LeaseLost(f"job {job_id} is {job.status.value}, held by {job.lease_owner}")
    return job
