"""The jobs' figures for Prometheus, read from the database each time they are asked for.

Read, not counted: jobs are submitted, polled and finished by every process on the
database, so only the database knows how many there are in each status. Every process
answers the same figures (take any one, or `max` across them).

Two statements per scrape, each on an index (`ix_jobs_status_id`,
`ix_jobs_status_next_poll`): counting a million jobs by status reads the status index
once, tens of milliseconds; the oldest due job is looked for among unfinished ones only.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlmodel import col, select

from app.features.jobs.queue import CLAIMABLE_STATUSES
from app.storage.db.engine import Database
from app.storage.db.tables import Job, JobStatus, utcnow

JOBS = "playground_jobs"
QUEUE_DEPTH = "playground_queue_depth"
OLDEST_DUE = "playground_queue_oldest_due_seconds"

JOBS_HELP = "Jobs in the database, by status"
QUEUE_DEPTH_HELP = (
    "Unfinished jobs: being submitted, waiting for PixelDojo, or with images to store"
)
OLDEST_DUE_HELP = "How long the job waiting longest for a worker has been due (0: none is waiting)"


class JobGauges(Collector):
    def __init__(self, db: Database) -> None:
        self._db = db

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Without it the registry would collect, reading the database, to learn the names.
        yield GaugeMetricFamily(JOBS, JOBS_HELP, labels=["status"])
        yield GaugeMetricFamily(QUEUE_DEPTH, QUEUE_DEPTH_HELP)
        yield GaugeMetricFamily(OLDEST_DUE, OLDEST_DUE_HELP)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts, oldest_due = read_figures(self._db, now=utcnow())
        jobs = GaugeMetricFamily(JOBS, JOBS_HELP, labels=["status"])
        for status in JobStatus:
            jobs.add_metric([status.value], counts.get(status, 0))
        yield jobs
        yield GaugeMetricFamily(
            QUEUE_DEPTH,
            QUEUE_DEPTH_HELP,
            value=sum(counts.get(status, 0) for status in CLAIMABLE_STATUSES),
        )
        yield GaugeMetricFamily(OLDEST_DUE, OLDEST_DUE_HELP, value=oldest_due)


def read_figures(db: Database, *, now: datetime) -> tuple[dict[JobStatus, int], float]:
    """Jobs by status, and how long the job due longest ago and not held by a worker has
    been due (as a claim would find it: app/features/jobs/queue.py)."""
    due_at = sa.func.coalesce(col(Job.next_poll_at), col(Job.created_at))
    waiting = select(sa.func.min(due_at)).where(
        col(Job.status).in_(CLAIMABLE_STATUSES),
        sa.or_(col(Job.next_poll_at).is_(None), col(Job.next_poll_at) <= now),
        sa.or_(col(Job.lease_expires_at).is_(None), col(Job.lease_expires_at) < now),
    )
    with db.read() as session:
        rows = session.exec(
            select(col(Job.status), sa.func.count()).group_by(col(Job.status))
        ).all()
        soonest: datetime | str | None = session.exec(waiting).one()
    counts = {JobStatus(status): int(count) for status, count in rows}
    if soonest is None:
        return counts, 0.0
    # Aggregates come back without the column type's conversion on SQLite.
    if isinstance(soonest, str):
        soonest = datetime.fromisoformat(soonest)
    if soonest.tzinfo is None:
        soonest = soonest.replace(tzinfo=now.tzinfo)
    return counts, max(0.0, (now - soonest).total_seconds())
