"""Reading jobs: one job with its images, the newest-first list, image and thumbnail rows.

Read models only: nothing here writes. Lists read plain columns into small
dataclasses (`JobSummary`, `ImageSummary`) rather than whole ORM rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.features.gallery.listing import JobWithImages
from app.storage.db.engine import Database
from app.storage.db.tables import (
    FINISHED_STATUSES,
    IMAGE_RECORD,
    JOB_RECORD,
    ROW_ID_MAX,
    Image,
    Job,
    JobStatus,
    User,
    is_stopped,
    state_label,
)


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


# Listing rows, built by the page (twenty jobs, their images): slots and not frozen, whose
# __init__ costs a fraction of a frozen one's (app.features.gallery.listing.GalleryEntry says more).
@dataclass(slots=True)
class JobSummary:
    """A job as lists show it: the job record (`JOB_RECORD`), field for field, in its order,
    so a row of those columns builds one. Attribute names are `Job`'s, so views read either."""

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
    stopped_at: datetime | None = None

    @property
    def stopped(self) -> bool:
        return is_stopped(self.status, self.stopped_at)

    @property
    def state_label(self) -> str:
        return state_label(self.status, self.stopped_at)


@dataclass(slots=True)
class ImageSummary:
    """An image as lists show it: the image record (`IMAGE_RECORD`), field for field, in its
    order, so a row of those columns builds one."""

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


_JOB_SUMMARY_COLUMNS = [col(getattr(Job, name)) for name in JOB_RECORD]
_IMAGE_SUMMARY_COLUMNS: list[sa.Label[Any]] = [
    col(getattr(Image, name)).label(f"image_{name}") for name in IMAGE_RECORD
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
    with db.read_rows() as connection:
        rows = connection.execute(
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
