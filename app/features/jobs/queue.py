"""The lease queue: which worker works on which job, until when, and what it records.

A job is worked on only by the worker holding its lease. Leases run out unless
renewed by the holder's heartbeat, and a worker whose heartbeat stopped (killed,
crashed) loses its jobs at once, so another worker takes them over. Every write
here is conditional on the writer still holding the lease: its owner *and* the
token it claimed with, which every claim raises. A worker whose heartbeat lagged
and whose job was taken over (by another worker, or by its own next claim) is
fenced off: its results are not stored, and `renew_lease`, asked before each
download, tells it to stop before it fetches anything again.

Claiming is the one place where the databases differ (`claim_due_jobs`,
`_skip_locked`): SQLite has one writer at a time, so a claim is a plain
compare-and-set; PostgreSQL runs claimers side by side, and `FOR UPDATE SKIP
LOCKED` has each take rows no other claimer is taking, without waiting.

It stays one module, long as it is: every write here is fenced by the same lease
condition (`_held`), and the fence is only trustworthy while every write is in sight of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlmodel import col, select

from app.storage.blobs.protocol import BlobStore, ensure_kept, store_then_commit
from app.storage.db.engine import Database
from app.storage.db.tables import Image, Job, JobStatus, UTCDateTime, Worker, utcnow
from app.storage.intake import StagedImage
from app.upstream import UpstreamJob

_Select = TypeVar("_Select", bound=sa.Select[Any])

# Jobs a worker may pick up: polled ones, ones with images to store, lost
# submissions to look for upstream, and submissions whose submitter died (their
# lease ran out).
CLAIMABLE_STATUSES = (
    JobStatus.PENDING,
    JobStatus.DOWNLOADING,
    JobStatus.RECONCILING,
    JobStatus.SUBMITTING,
)


def _held(job_id: int, owner: str, token: int) -> sa.ColumnElement[bool]:
    """The job is still leased to `owner` under the claim that gave it `token`."""
    return sa.and_(
        col(Job.id) == job_id, col(Job.lease_owner) == owner, col(Job.lease_token) == token
    )


def adopt_upstream_job(
    db: Database,
    *,
    job_id: int,
    owner: str,
    token: int,
    upstream_job_id: str,
    first_poll_in: float,
) -> bool:
    """Link a lost submission to the upstream job found for it, and poll that."""
    now = utcnow()
    try:
        with db.write() as session:
            taken = session.exec(
                select(Job.id).where(Job.upstream_job_id == upstream_job_id)
            ).first()
            if taken is not None:
                return False
            result = session.execute(
                sa.update(Job)
                .where(_held(job_id, owner, token))
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
    except sa.exc.IntegrityError:
        # Another worker linked it to another job in the meantime (only a server
        # database lets two writers race this far).
        return False


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
    owner: str,
    token: int,
) -> bool:
    """Mark a job finished, only if `owner` still holds its lease under the claim that gave
    it `token` (a worker's, or the submitter's when it wrote the job); says whether it did."""
    now = utcnow()
    statement = (
        sa.update(Job)
        .where(_held(job_id, owner, token))
        .values(
            status=status,
            error=error,
            finished_at=now,
            updated_at=now,
            next_poll_at=None,
            lease_owner=None,
            lease_expires_at=None,
        )
    )
    with db.write() as session:
        return bool(session.execute(statement).rowcount)  # type: ignore[attr-defined]


def claim_due_jobs(
    db: Database, *, owner: str, now: datetime, lease_seconds: float, limit: int
) -> list[Job]:
    """Lease up to `limit` jobs that are due; a job leased elsewhere is never taken.

    The lease is a compare-and-set on each row, so two workers racing for the same job
    cannot both win. On PostgreSQL the candidates are also locked as they are chosen,
    skipping rows another claimer has locked: claimers in many processes take different
    jobs at once instead of queueing for the same few (on SQLite one writer at a time
    claims anyway).
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
    candidates = (
        select(Job.id)
        .where(col(Job.status).in_(CLAIMABLE_STATUSES), due, lease_free)
        .order_by(col(Job.next_poll_at))
        .limit(limit)
    )
    with db.read() as session:
        # Looked for without the write lock first: most looks find nothing due, and on
        # SQLite a write transaction would hold every other process's writes meanwhile.
        if session.exec(candidates.limit(1)).first() is None:
            return []
    with db.write() as session:
        # A claim is a sign of life too: with a heartbeat loop running late, another worker
        # would otherwise take these jobs back the moment they were claimed. The worker's
        # row is locked before any job's, in the heartbeat's order (no deadlock with it).
        session.execute(sa.update(Worker).where(col(Worker.id) == owner).values(heartbeat_at=now))
        job_ids = session.exec(_skip_locked(db, candidates)).all()
        if not job_ids:
            return []
        claimed = session.scalars(
            sa.update(Job)
            .where(col(Job.id).in_(job_ids), lease_free)
            .values(
                lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                lease_token=col(Job.lease_token) + 1,
            )
            .returning(Job),
            execution_options={"synchronize_session": False},
        ).all()
    order = {job_id: place for place, job_id in enumerate(job_ids)}
    return sorted(claimed, key=lambda job: order[job.id])


def _skip_locked(db: Database, statement: _Select) -> _Select:
    """Lock the rows `statement` selects, passing over rows another transaction has locked.

    PostgreSQL's `FOR UPDATE SKIP LOCKED`, the one part of the queue's SQL that is a
    database's own. SQLite has no row locks: its writer holds the whole database
    (`BEGIN IMMEDIATE`), so there is nothing to skip and the statement stays as it is.
    """
    if db.dialect == "postgresql":
        return statement.with_for_update(skip_locked=True)
    return statement


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


def heartbeat(
    db: Database,
    *,
    worker_id: str,
    job_ids: list[int],
    lease_seconds: float,
    also_alive: Sequence[str] = (),
) -> None:
    """Say this worker is alive (and `also_alive`, the process's other lease holders), and
    keep the jobs it is busy with (a long download) its own."""
    now = utcnow()
    with db.write_urgently() as session:
        session.execute(
            sa.update(Worker)
            .where(col(Worker.id).in_([worker_id, *also_alive]))
            .values(heartbeat_at=now)
        )
        # Workers dead for long are forgotten; their jobs were taken over already. Rows
        # another worker is forgetting at this moment are left to it.
        long_dead = select(Worker.id).where(col(Worker.heartbeat_at) < now - timedelta(days=1))
        session.execute(
            sa.delete(Worker).where(
                col(Worker.id).in_(_skip_locked(db, long_dead).scalar_subquery())
            )
        )
        if not job_ids:
            return
        session.execute(
            sa.update(Job)
            .where(col(Job.id).in_(job_ids), col(Job.lease_owner) == worker_id)
            .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
        )


def renew_lease(db: Database, *, job_id: int, owner: str, token: int, lease_seconds: float) -> bool:
    """Keep the job for another lease if this claim still holds it, and say whether it does.

    Asked before each download: a worker whose lease was taken over stops there, and one
    that still holds it has a full lease ahead (its heartbeat is renewed with it, so a
    lagging heartbeat loop cannot make it look dead in the middle of the download).
    """
    now = utcnow()
    with db.write() as session:
        # The worker's row before the job's, as the heartbeat and claims lock them.
        session.execute(sa.update(Worker).where(col(Worker.id) == owner).values(heartbeat_at=now))
        renewed = session.execute(
            sa.update(Job)
            .where(_held(job_id, owner, token))
            .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
        ).rowcount  # type: ignore[attr-defined]
    return bool(renewed)


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
    token: int,
    delay_seconds: float,
    status: JobStatus,
    upstream_status: str | None = None,
    seen_running_seconds: float | None = None,
    error: str | None = None,
    callback_seen: datetime | None,
) -> None:
    """Release the lease and look at the job again after `delay_seconds`: at once if
    PixelDojo called back about it while this claim held it (see `_unless_called_back`)."""
    now = utcnow()
    values: dict[str, object] = {
        "status": status,
        "next_poll_at": _unless_called_back(
            now + timedelta(seconds=delay_seconds), now, status, callback_seen
        ),
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
        session.execute(sa.update(Job).where(_held(job_id, owner, token)).values(**values))


def postpone(
    db: Database,
    *,
    job_id: int,
    owner: str,
    token: int,
    delay_seconds: float,
    callback_seen: datetime | None,
) -> None:
    """Look again later without having asked PixelDojo (no poll is counted); at once if
    PixelDojo called back about it meanwhile."""
    now = utcnow()
    with db.write() as session:
        session.execute(
            sa.update(Job)
            .where(_held(job_id, owner, token))
            .values(
                next_poll_at=_unless_called_back(
                    now + timedelta(seconds=delay_seconds), now, JobStatus.PENDING, callback_seen
                ),
                lease_owner=None,
                lease_expires_at=None,
            )
        )


# Jobs a callback from PixelDojo makes due at once (app/features/jobs/callbacks.py): waiting for a
# poll or
# for reconciliation. One still being submitted keeps the mark for when its submit returns.
CALLED_BACK_STATUSES = (JobStatus.PENDING, JobStatus.RECONCILING)


def _unless_called_back(
    planned: datetime, now: datetime, status: JobStatus, callback_seen: datetime | None
) -> datetime | sa.ColumnElement[datetime]:
    """`planned`, unless a callback came while the job was held: the row's `webhook_at`
    then differs from `callback_seen`, the one the claim read. Compared as values the
    database wrote, never against a clock: a web process's clock may differ from ours."""
    if status not in CALLED_BACK_STATUSES:
        return planned
    called_since = sa.and_(
        col(Job.webhook_at).is_not(None),
        col(Job.webhook_at) != callback_seen if callback_seen is not None else sa.true(),
    )
    return sa.case(
        (called_since, sa.literal(now, UTCDateTime())),
        else_=sa.literal(planned, UTCDateTime()),
    )


def record_upstream_completion(
    db: Database,
    *,
    job_id: int,
    owner: str,
    token: int,
    upstream: UpstreamJob,
    done_by_seconds: float | None,
) -> bool:
    """Remember the image URLs at once: after a restart the images are fetched, not re-polled.

    Returns False, changing nothing, if this claim no longer holds the job."""
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
        result = session.execute(sa.update(Job).where(_held(job_id, owner, token)).values(**values))
        return bool(result.rowcount)  # type: ignore[attr-defined]


def store_images(
    db: Database,
    blobs: BlobStore,
    *,
    job_id: int,
    owner: str,
    token: int,
    staged: list[StagedImage],
) -> bool:
    """Store the bytes and their thumbnails, then in one transaction the image rows and the
    job's end (again if a purge took bytes it found stored, in between: app.storage.blobs.protocol).

    Returns False, writing no rows, if this worker's claim no longer holds the job (it was
    taken over: the new holder stores the images, once).
    """
    return store_then_commit(
        lambda: _store_images_once(
            db, blobs, job_id=job_id, owner=owner, token=token, staged=staged
        )
    )


def _store_images_once(
    db: Database,
    blobs: BlobStore,
    *,
    job_id: int,
    owner: str,
    token: int,
    staged: list[StagedImage],
) -> bool:
    for image in staged:
        blobs.put_file(image.sha256, image.path)
        blobs.put_thumbnail(image.sha256, image.checked.thumbnail.data)
        if image.checked.preview is not None:
            blobs.put_preview(image.sha256, image.checked.preview.data)
    now = utcnow()
    with db.write() as session:
        # The fence: the job ends in the UPDATE that checks the claim, and its image rows
        # are written in the same transaction only if it matched. A worker whose lease was
        # taken over matches nothing and writes nothing.
        ended = session.execute(
            sa.update(Job)
            .where(_held(job_id, owner, token), col(Job.status) == JobStatus.DOWNLOADING)
            .values(
                status=JobStatus.COMPLETED,
                error=None,
                finished_at=now,
                updated_at=now,
                next_poll_at=None,
                lease_owner=None,
                lease_expires_at=None,
            )
        ).rowcount  # type: ignore[attr-defined]
        if not ended:
            return False
        for image in staged:
            session.add(
                Image(
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
            )
        ensure_kept(blobs, session.connection(), {image.sha256 for image in staged})
    return True


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
