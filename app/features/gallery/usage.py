"""What the gallery cost: credits per day, per preset and per model, and the last balance.

Spent credits are the `creditCost` the upstream reported for each job, failed
jobs left out (PixelDojo refunds them). The balance is the `creditsRemaining`
of the newest job that reported one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select

from app.core.errors import InvalidParameters
from app.features.gallery.listing import author_names
from app.storage.db.engine import Database
from app.storage.db.tables import Job, JobStatus, utcnow

DEFAULT_DAYS = 30
MAX_DAYS = 366


def usage_range(since: date | None, until: date | None) -> tuple[date, date]:
    """The days a usage query covers: the last DEFAULT_DAYS by default, at most MAX_DAYS."""
    last = until or utcnow().date()
    first = since or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise InvalidParameters({"until": "must not be before since"})
    if (last - first).days >= MAX_DAYS:
        raise InvalidParameters({"since": f"the range can span at most {MAX_DAYS} days"})
    return first, last


@dataclass(frozen=True)
class UsageRow:
    key: str | None
    credits: float
    jobs: int
    images: int


@dataclass(frozen=True)
class DayUsage:
    day: date
    credits: float
    jobs: int
    images: int


@dataclass(frozen=True)
class Balance:
    credits_remaining: float
    reported_at: datetime
    job_id: int


@dataclass(frozen=True)
class Usage:
    since: date
    until: date
    days: list[DayUsage]
    by_preset: list[UsageRow]
    by_model: list[UsageRow]
    # Keyed by the person's name; None for work done without sign-in.
    by_person: list[UsageRow]
    total_credits: float
    total_jobs: int
    total_images: int
    balance: Balance | None


def usage(db: Database, *, since: date, until: date) -> Usage:
    """Usage of jobs created from the start of `since` to the end of `until` (UTC days)."""
    start = datetime.combine(since, time.min, tzinfo=UTC)
    end = datetime.combine(until + timedelta(days=1), time.min, tzinfo=UTC)
    in_range = sa.and_(col(Job.created_at) >= start, col(Job.created_at) < end)
    charged = col(Job.status) != JobStatus.FAILED
    credits = sa.func.coalesce(sa.func.sum(sa.case((charged, col(Job.credit_cost)), else_=0)), 0)
    images = sa.func.coalesce(
        sa.func.sum(
            sa.case((col(Job.status) == JobStatus.COMPLETED, col(Job.num_images)), else_=0)
        ),
        0,
    )
    # date() is a function on SQLite and PostgreSQL alike; SQLite answers with text.
    day = sa.func.date(col(Job.created_at))

    def grouped(key: Any) -> list[tuple[Any, float, int, int]]:
        statement = (
            sa.select(key, credits, sa.func.count(), images)
            .where(in_range)
            .group_by(key)
            .order_by(key)
        )
        with db.read() as session:
            return [tuple(row) for row in session.execute(statement)]

    per_day = {
        (value if isinstance(value, date) else date.fromisoformat(str(value))): (c, j, i)
        for value, c, j, i in grouped(day)
    }
    days = []
    current = since
    while current <= until:
        c, j, i = per_day.get(current, (0.0, 0, 0))
        days.append(DayUsage(current, float(c), int(j), int(i)))
        current += timedelta(days=1)

    def rows(key: Any) -> list[UsageRow]:
        found = [UsageRow(k, float(c), int(j), int(i)) for k, c, j, i in grouped(key)]
        return sorted(found, key=lambda row: (-row.credits, -row.jobs, row.key or ""))

    people = grouped(col(Job.user_id))
    with db.read() as session:
        names = author_names(session, [user_id for user_id, *_ in people])
    by_person = sorted(
        (UsageRow(names.get(user_id), float(c), int(j), int(i)) for user_id, c, j, i in people),
        key=lambda row: (-row.credits, -row.jobs, row.key or ""),
    )

    return Usage(
        since=since,
        until=until,
        days=days,
        by_preset=rows(col(Job.preset)),
        by_model=rows(col(Job.model)),
        by_person=by_person,
        total_credits=sum(d.credits for d in days),
        total_jobs=sum(d.jobs for d in days),
        total_images=sum(d.images for d in days),
        balance=last_balance(db),
    )


def last_balance(db: Database) -> Balance | None:
    with db.read() as session:
        job = session.exec(
            select(Job)
            .where(col(Job.credits_remaining).is_not(None))
            .order_by(col(Job.id).desc())
            .limit(1)
        ).first()
    if job is None or job.credits_remaining is None or job.id is None:
        return None
    return Balance(job.credits_remaining, job.submitted_at or job.created_at, job.id)
