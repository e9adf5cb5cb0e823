"""Credit budgets per person: what they have spent, and whether a new job fits.

A job counts from the moment it is submitted, at its estimate, and settles at
the cost PixelDojo reports. Jobs PixelDojo refused or failed (and refunded) do
not count; one it completed counts even if we could not store its images.
Days and months are UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.storage.db.engine import Database
from app.storage.db.tables import Job, JobStatus, User


class BudgetExceeded(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def charged_credits() -> sa.ColumnElement[float]:
    """What a job costs against a budget: reported cost, else the estimate reserved."""
    return sa.func.coalesce(col(Job.credit_cost), col(Job.estimated_credits))


def counts_against_budget() -> sa.ColumnElement[bool]:
    # Failed without ever completing upstream: refused or refunded, so not charged.
    refunded = sa.and_(
        col(Job.status) == JobStatus.FAILED, col(Job.upstream_completed_at).is_(None)
    )
    return sa.not_(refunded)


def period_starts(now: datetime) -> tuple[datetime, datetime]:
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day, day.replace(day=1)


def spent_since(session: Session, *, user_id: int, since: datetime) -> float:
    total = session.exec(
        select(sa.func.coalesce(sa.func.sum(charged_credits()), 0.0)).where(
            col(Job.user_id) == user_id, col(Job.created_at) >= since, counts_against_budget()
        )
    ).one()
    return float(total)


@dataclass(frozen=True)
class Spend:
    today: float
    this_month: float


def spend_of(session: Session, *, user_id: int, now: datetime) -> Spend:
    day, month = period_starts(now)
    return Spend(
        today=spent_since(session, user_id=user_id, since=day),
        this_month=spent_since(session, user_id=user_id, since=month),
    )


def check_budget(
    session: Session, *, user: User, cost: float, now: datetime, what: str = "This job"
) -> None:
    """Refuse a job (or, named by `what`, several) that would take the person over a limit.

    Runs inside the transaction that writes the job, so two submissions at once
    cannot both fit in what is left.
    """
    if user.daily_budget is None and user.monthly_budget is None:
        return
    assert user.id is not None
    spend = spend_of(session, user_id=user.id, now=now)
    for label, limit, used in (
        ("daily", user.daily_budget, spend.today),
        ("monthly", user.monthly_budget, spend.this_month),
    ):
        if limit is not None and used + cost > limit:
            raise BudgetExceeded(
                f"{what} would use {cost:g} credits, but your {label} budget is {limit:g} "
                f"and {used:g} are spent already. Nothing was sent to PixelDojo; ask an admin "
                "to raise your budget."
            )


@dataclass(frozen=True)
class PersonSpend:
    user_id: int | None
    name: str
    today: float
    this_month: float
    daily_budget: float | None
    monthly_budget: float | None


def team_spend(db: Database, *, now: datetime) -> list[PersonSpend]:
    day, month = period_starts(now)
    in_month = sa.and_(col(Job.created_at) >= month, counts_against_budget())
    today = sa.func.sum(sa.case((col(Job.created_at) >= day, charged_credits()), else_=0.0))
    with db.read() as session:
        rows = session.exec(
            select(
                User,
                sa.func.coalesce(today, 0.0),
                sa.func.coalesce(sa.func.sum(charged_credits()), 0.0),
            )
            .join(Job, sa.and_(col(Job.user_id) == col(User.id), in_month), isouter=True)
            .where(col(User.removed_at).is_(None))
            .group_by(col(User.id))
            .order_by(col(User.name_key))
        ).all()
    return [
        PersonSpend(
            user_id=user.id,
            name=user.name,
            today=float(spent_today),
            this_month=float(spent_month),
            daily_budget=user.daily_budget,
            monthly_budget=user.monthly_budget,
        )
        for user, spent_today, spent_month in rows
    ]


def spend_by_day(db: Database, *, now: datetime, days: int = 30) -> list[tuple[date, str, float]]:
    """(day, person, credits) for the last `days` days, people with no spend left out."""
    since = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
        days=days - 1
    )
    day = sa.func.date(col(Job.created_at))
    with db.read() as session:
        rows = session.exec(
            select(day, sa.func.coalesce(User.name, "(no sign-in)"), sa.func.sum(charged_credits()))
            .join(User, col(User.id) == col(Job.user_id), isouter=True)
            .where(col(Job.created_at) >= since, counts_against_budget())
            .group_by(day, User.name)
            .order_by(day.desc(), User.name)
        ).all()
    return [(date.fromisoformat(str(d)), str(name), float(total)) for d, name, total in rows]


def check_budget_before(db: Database, *, user: User | None, cost: float, what: str) -> None:
    """Refuse at once what the person's budget cannot pay for as a whole (a batch, a grid),
    before any of it is submitted; each job is still checked as it is written."""
    if user is None or user.id is None:
        return
    with db.read() as session:
        current = session.get(User, user.id)
        if current is not None:
            check_budget(session, user=current, cost=cost, now=datetime.now(UTC), what=what)
