"""Reads and writes of jobs and their images: every query the app runs lives here.

Functions are keyword-only and take the `Database` (or a session), so routes,
the submitter and the poller share one set of queries. Each write is one short
transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.blobs import BlobStore
from app.budgets import check_budget
from app.database import Database
from app.errors import InvalidParameters
from app.model_params import RunParams
from app.models import (
    FINISHED_STATUSES,
    ROW_ID_MAX,
    Image,
    Job,
    JobStatus,
    User,
    Worker,
    utcnow,
)
from app.storage import StagedImage
from app.upstream import UpstreamJob

# Jobs a worker may pick up: polled ones, ones with images to store, lost
# submissions to look for upstream, and submissions whose submitter died (their
# lease ran out).
CLAIMABLE_STATUSES = (
    JobStatus.PENDING,
    JobStatus.DOWNLOADING,
    JobStatus.RECONCILING,
    JobStatus.SUBMITTING,
)


class IdempotencyConflict(Exception):
    """The idempotency key was used before, for a different request."""

    def __init__(self, job_id: int) -> None:
        super().__init__(job_id)
        self.job_id = job_id


# --- Creating and submitting ---------------------------------------------------------


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
    """Write the job before anything is sent upstream, leased to the submitting worker.

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
    job = Job(
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
    try:
        with db.write() as session:
            if idempotency_key is not None:
                earlier = _with_key(session, idempotency_key)
                if earlier is not None:
                    return _replayed(earlier, job), False
            if remix_of is not None:
                _check_remix_source(session, remix_of)
            if user is not None and user.id is not None:
                current = session.get(User, user.id)
                if current is not None:
                    check_budget(session, user=current, cost=cost, now=now)
            session.add(job)
            session.flush()
        return job, True
    except sa.exc.IntegrityError:
        # Only a server database lets two writers race this far; SQLite's write lock doesn't.
        if idempotency_key is None:
            raise
    with db.read() as session:
        earlier = _with_key(session, idempotency_key)
    assert earlier is not None
    return _replayed(earlier, job), False


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
    db: Database, *, job_id: int, owner: str, upstream: UpstreamJob, first_poll_in: float
) -> Job:
    """The upstream accepted the job; only its submitter, still holding it, records that."""
    now = utcnow()
    with db.write() as session:
        job = _submitting(session, job_id, owner)
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
    db: Database, *, job_id: int, owner: str, note: str, first_look_in: float
) -> None:
    """The submit's answer never came: look for the job upstream before deciding anything."""
    now = utcnow()
    with db.write() as session:
        job = _submitting(session, job_id, owner)
        job.status = JobStatus.RECONCILING
        job.error = note
        job.submitted_at = now
        job.next_poll_at = now + timedelta(seconds=first_look_in)
        job.lease_owner = None
        job.lease_expires_at = None
        job.updated_at = now
        session.add(job)


def adopt_upstream_job(
    db: Database, *, job_id: int, owner: str, upstream_job_id: str, first_poll_in: float
) -> bool:
    """Link a lost submission to the upstream job found for it, and poll that."""
    now = utcnow()
    with db.write() as session:
        taken = session.exec(select(Job.id).where(Job.upstream_job_id == upstream_job_id)).first()
        if taken is not None:
            return False
        result = session.execute(
            sa.update(Job)
            .where(col(Job.id) == job_id, col(Job.lease_owner) == owner)
            .values(
                upstream_job_id=upstream_job_id,
                status=JobStatus.PENDING,
                error=None,
                next_poll_at=now + timedelta(seconds=first_poll_in),
                lease_owner=None,
                lease_expires_at=None,
                updated_at=now,
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def linked_upstream_ids(db: Database, *, upstream_job_ids: list[str]) -> set[str]:
    if not upstream_job_ids:
        return set()
    with db.read() as session:
        rows = session.exec(
            select(Job.upstream_job_id).where(col(Job.upstream_job_id).in_(upstream_job_ids))
        ).all()
    return {row for row in rows if row is not None}


def finish(
    db: Database,
    *,
    job_id: int,
    status: JobStatus,
    error: str | None = None,
    owner: str | None = None,
) -> bool:
    """Mark a job finished; with `owner`, only if that worker still holds its lease."""
    now = utcnow()
    statement = sa.update(Job).where(col(Job.id) == job_id)
    if owner is not None:
        statement = statement.where(col(Job.lease_owner) == owner)
    statement = statement.values(
        status=status,
        error=error,
        finished_at=now,
        updated_at=now,
        next_poll_at=None,
        lease_owner=None,
        lease_expires_at=None,
    )
    with db.write() as session:
        return bool(session.execute(statement).rowcount)  # type: ignore[attr-defined]


# --- The poller's side ---------------------------------------------------------------


def claim_due_jobs(
    db: Database, *, owner: str, now: datetime, lease_seconds: float, limit: int
) -> list[Job]:
    """Lease up to `limit` jobs that are due; a job leased elsewhere is never taken.

    The lease is a compare-and-set on each row, so two workers racing for the same
    job cannot both win, on SQLite or on a server database.
    """
    if limit <= 0:
        return []
    live_workers = select(Worker.id).where(
        col(Worker.heartbeat_at) >= now - timedelta(seconds=lease_seconds)
    )
    lease_free = sa.or_(
        col(Job.lease_expires_at).is_(None),
        col(Job.lease_expires_at) < now,
        # Its owner stopped beating; never ourselves, whose heartbeat may merely lag.
        sa.and_(col(Job.lease_owner) != owner, col(Job.lease_owner).not_in(live_workers)),
    )
    due = sa.or_(col(Job.next_poll_at).is_(None), col(Job.next_poll_at) <= now)
    claimed: list[Job] = []
    with db.write() as session:
        candidates = session.exec(
            select(Job.id)
            .where(col(Job.status).in_(CLAIMABLE_STATUSES), due, lease_free)
            .order_by(col(Job.next_poll_at))
            .limit(limit)
        ).all()
        for job_id in candidates:
            assert job_id is not None
            result = session.execute(
                sa.update(Job)
                .where(col(Job.id) == job_id, lease_free)
                .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_seconds))
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                claimed.append(_get(session, job_id))
    return claimed


def live_worker_ids(db: Database, *, now: datetime, lease_seconds: float) -> set[str]:
    with db.read() as session:
        rows = session.exec(
            select(Worker.id).where(
                col(Worker.heartbeat_at) >= now - timedelta(seconds=lease_seconds)
            )
        ).all()
    return set(rows)


def register_worker(db: Database, *, worker_id: str) -> None:
    now = utcnow()
    with db.write() as session:
        session.add(Worker(id=worker_id, started_at=now, heartbeat_at=now))


def remove_worker(db: Database, *, worker_id: str) -> None:
    with db.write() as session:
        session.execute(sa.delete(Worker).where(col(Worker.id) == worker_id))


def heartbeat(db: Database, *, worker_id: str, job_ids: list[int], lease_seconds: float) -> None:
    """Say this worker is alive, and keep the jobs it is busy with (a long download) its own."""
    now = utcnow()
    with db.write() as session:
        session.execute(
            sa.update(Worker).where(col(Worker.id) == worker_id).values(heartbeat_at=now)
        )
        # Workers dead for long are forgotten; their jobs were taken over already.
        session.execute(sa.delete(Worker).where(col(Worker.heartbeat_at) < now - timedelta(days=1)))
        if not job_ids:
            return
        session.execute(
            sa.update(Job)
            .where(col(Job.id).in_(job_ids), col(Job.lease_owner) == worker_id)
            .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
        )


def release_leases(db: Database, *, owner: str, job_ids: list[int]) -> None:
    """Hand unfinished work back at shutdown, so the next start resumes it at once."""
    if not job_ids:
        return
    with db.write() as session:
        session.execute(
            sa.update(Job)
            .where(col(Job.id).in_(job_ids), col(Job.lease_owner) == owner)
            .values(lease_owner=None, lease_expires_at=None, next_poll_at=utcnow())
        )


def seconds_until_next_due(db: Database, *, now: datetime) -> float | None:
    """Seconds until some job may be claimed: a leased job is not due before its lease ends."""
    next_poll, lease_end = col(Job.next_poll_at), col(Job.lease_expires_at)
    due_at = sa.case(
        (lease_end.is_(None), next_poll),
        (next_poll.is_(None), lease_end),
        (next_poll > lease_end, next_poll),
        else_=lease_end,
    )
    with db.read() as session:
        soonest: datetime | str | None = session.exec(
            select(sa.func.min(due_at)).where(col(Job.status).in_(CLAIMABLE_STATUSES))
        ).one()
    if soonest is None:
        return None
    # Aggregates come back without the column type's conversion on some backends.
    if isinstance(soonest, str):
        soonest = datetime.fromisoformat(soonest)
    if soonest.tzinfo is None:
        soonest = soonest.replace(tzinfo=now.tzinfo)
    return max(0.0, (soonest - now).total_seconds())


def reschedule(
    db: Database,
    *,
    job_id: int,
    owner: str,
    delay_seconds: float,
    status: JobStatus,
    upstream_status: str | None = None,
    seen_running_seconds: float | None = None,
    error: str | None = None,
) -> None:
    """Release the lease and look at the job again after `delay_seconds`."""
    now = utcnow()
    values: dict[str, object] = {
        "status": status,
        "next_poll_at": now + timedelta(seconds=delay_seconds),
        "poll_count": col(Job.poll_count) + 1,
        "lease_owner": None,
        "lease_expires_at": None,
        "updated_at": now,
        "error": error,
    }
    if upstream_status is not None:
        values["upstream_status"] = upstream_status
    if seen_running_seconds is not None:
        values["seen_running_seconds"] = seen_running_seconds
    with db.write() as session:
        session.execute(
            sa.update(Job)
            .where(col(Job.id) == job_id, col(Job.lease_owner) == owner)
            .values(**values)
        )


def postpone(db: Database, *, job_id: int, owner: str, delay_seconds: float) -> None:
    """Look again later without having asked PixelDojo (no poll is counted)."""
    now = utcnow()
    with db.write() as session:
        session.execute(
            sa.update(Job)
            .where(col(Job.id) == job_id, col(Job.lease_owner) == owner)
            .values(
                next_poll_at=now + timedelta(seconds=delay_seconds),
                lease_owner=None,
                lease_expires_at=None,
            )
        )


def record_upstream_completion(
    db: Database,
    *,
    job_id: int,
    owner: str,
    upstream: UpstreamJob,
    done_by_seconds: float | None,
) -> None:
    """Remember the image URLs at once: after a restart the images are fetched, not re-polled."""
    now = utcnow()
    values: dict[str, object] = {
        "status": JobStatus.DOWNLOADING,
        "upstream_status": upstream.status,
        "output_urls": upstream.image_urls,
        "upstream_completed_at": now,
        "done_by_seconds": done_by_seconds,
        "updated_at": now,
        "poll_count": col(Job.poll_count) + 1,
    }
    if upstream.credit_cost is not None:
        values["credit_cost"] = upstream.credit_cost
    if upstream.expires_at is not None:
        values["expires_at"] = upstream.expires_at
    with db.write() as session:
        session.execute(
            sa.update(Job)
            .where(col(Job.id) == job_id, col(Job.lease_owner) == owner)
            .values(**values)
        )


def store_images(
    db: Database,
    blobs: BlobStore,
    *,
    job_id: int,
    owner: str,
    staged: list[StagedImage],
) -> bool:
    """Store the bytes and their thumbnails, then in one transaction the image rows and the
    job's end.

    Returns False, writing no rows, if this worker no longer owns the job.
    """
    for image in staged:
        blobs.put_file(image.sha256, image.path)
        blobs.put_thumbnail(image.sha256, image.checked.thumbnail.data)
    now = utcnow()
    with db.write() as session:
        job = session.get(Job, job_id)
        if job is None or job.lease_owner != owner or job.status != JobStatus.DOWNLOADING:
            return False
        for image in staged:
            row = Image(
                job_id=job_id,
                index=image.index,
                content_type=image.checked.content_type,
                width=image.checked.width,
                height=image.checked.height,
                byte_size=image.byte_size,
                sha256=image.sha256,
                source_url=image.source_url,
                created_at=now,
            )
            session.add(row)
        job.status = JobStatus.COMPLETED
        job.error = None
        job.finished_at = now
        job.updated_at = now
        job.next_poll_at = None
        job.lease_owner = None
        job.lease_expires_at = None
        session.add(job)
    return True


def referenced_digests(db: Database) -> set[str]:
    with db.read() as session:
        return set(session.exec(select(Image.sha256).distinct()).all())


# --- Reading -----------------------------------------------------------------------


@dataclass(frozen=True)
class JobWithImages:
    job: Job
    images: list[Image]
    # Who made it; None when made without sign-in.
    author: str | None = None


def get_job(db: Database, *, job_id: int) -> JobWithImages | None:
    with db.read() as session:
        job = session.get(Job, job_id)
        if job is None:
            return None
        images = session.exec(
            select(Image).where(Image.job_id == job_id).order_by(col(Image.index))
        ).all()
        authors = _author_names(session, [job])
    return JobWithImages(job=job, images=list(images), author=authors.get(job.user_id))


def _author_names(session: Session, jobs: list[Job]) -> dict[int | None, str]:
    user_ids = {job.user_id for job in jobs if job.user_id is not None}
    if not user_ids:
        return {}
    rows = session.exec(select(User.id, User.name).where(col(User.id).in_(user_ids))).all()
    return {user_id: name for user_id, name in rows}


@dataclass(frozen=True)
class JobSummary:
    """A job as lists show it: its columns but the request body, the output URLs and
    the poller's bookkeeping. Attribute names are `Job`'s, so views read either."""

    id: int
    status: JobStatus
    model: str
    preset: str | None
    prompt: str
    image_size: str
    custom_width: int | None
    custom_height: int | None
    seed: int | None
    num_images: int
    upstream_job_id: str | None
    error: str | None
    credit_cost: float | None
    credits_remaining: float | None
    created_at: datetime
    submitted_at: datetime | None
    finished_at: datetime | None
    expires_at: datetime | None
    remix_of_job_id: int | None
    remix_of_image_index: int | None
    reference_images: list[int] | None


@dataclass(frozen=True)
class ImageSummary:
    id: int
    index: int
    width: int
    height: int
    content_type: str
    byte_size: int
    sha256: str
    favourite: bool
    deleted_at: datetime | None


@dataclass(frozen=True)
class JobListItem:
    job: JobSummary
    images: list[ImageSummary]
    # Who made it; None when made without sign-in.
    author: str | None = None


_JOB_SUMMARY_COLUMNS = [col(getattr(Job, f.name)) for f in fields(JobSummary)]
_IMAGE_SUMMARY_COLUMNS: list[sa.Label[Any]] = [
    col(getattr(Image, f.name)).label(f"image_{f.name}") for f in fields(ImageSummary)
]


def _job_page_statement() -> sa.Select[Any]:
    page = (
        sa.select(*_JOB_SUMMARY_COLUMNS, col(User.name).label("author"))
        .outerjoin(User, col(User.id) == col(Job.user_id))
        .where(col(Job.id) < sa.bindparam("before_id"))
        .order_by(col(Job.id).desc())
        .limit(sa.bindparam("limit"))
        .subquery("page")
    )
    return (
        sa.select(page, *_IMAGE_SUMMARY_COLUMNS)
        # Images in the gallery's trash are not shown with their job.
        .outerjoin(Image, sa.and_(col(Image.job_id) == page.c.id, col(Image.deleted_at).is_(None)))
        .order_by(page.c.id.desc(), col(Image.index))
    )


# Built once: a page of jobs is one query, jobs, their authors and their images
# together, read as plain rows. Whole ORM objects, three queries and a statement
# built per request put this list at four times the framework's floor
# (docs/benchmarks.md).
_JOB_PAGE = _job_page_statement()


def list_jobs(
    db: Database, *, before_id: int | None = None, limit: int = 20
) -> tuple[list[JobListItem], int | None]:
    """Newest first, keyset-paginated by id; returns the page and the next cursor."""
    with db.read() as session:
        rows = session.execute(
            _JOB_PAGE,
            {"before_id": ROW_ID_MAX if before_id is None else before_id, "limit": limit + 1},
        ).all()
    items: dict[int, JobListItem] = {}
    job_width = len(_JOB_SUMMARY_COLUMNS)
    for row in rows:
        item = items.get(row[0])
        if item is None:
            job = JobSummary(*row[:job_width])
            item = items[row[0]] = JobListItem(job, [], author=row[job_width])
        if row[job_width + 1] is not None:
            item.images.append(ImageSummary(*row[job_width + 1 :]))
    page = list(items.values())
    next_cursor = page[limit - 1].job.id if len(page) > limit else None
    return page[:limit], next_cursor


@dataclass(frozen=True)
class StoredImage:
    content_type: str
    sha256: str
    byte_size: int


# Built once and run on a bare connection: every image and thumbnail a page shows asks
# this, and an ORM session and a fresh statement cost three times the query itself.
_IMAGE_BY_ID = sa.select(col(Image.content_type), col(Image.sha256), col(Image.byte_size)).where(
    col(Image.id) == sa.bindparam("image_id")
)


def get_image(db: Database, *, image_id: int) -> StoredImage | None:
    with db.read_engine.connect() as connection:
        row = connection.execute(_IMAGE_BY_ID, {"image_id": image_id}).first()
    return StoredImage(*row) if row else None


def unfinished_count(db: Database) -> int:
    with db.read() as session:
        return session.exec(
            select(sa.func.count())
            .select_from(Job)
            # IN, not NOT IN: the status index answers it without scanning every job.
            .where(col(Job.status).in_(set(JobStatus) - FINISHED_STATUSES))
        ).one()


class LeaseLost(Exception):
    """The job is no longer this worker's to change (it was taken over)."""


def _submitting(session: Session, job_id: int, owner: str) -> Job:
    job = _get(session, job_id)
    if job.status is not JobStatus.SUBMITTING or job.lease_owner != owner:
        raise LeaseLost(f"job {job_id} is {job.status.value}, held by {job.lease_owner}")
    return job


def submitting_twins(db: Database, *, job: Job) -> bool:
    """Whether another job asking the same is still being submitted: its upstream job may be
    the one a lost submission would otherwise take for its own."""
    with db.read() as session:
        return (
            session.exec(
                select(Job.id).where(
                    col(Job.id) != job.id,
                    col(Job.status) == JobStatus.SUBMITTING,
                    col(Job.model) == job.model,
                    col(Job.prompt) == job.prompt,
                )
            ).first()
            is not None
        )


def _get(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise LookupError(f"job {job_id} does not exist")
    return job
