"""Slowing down password guessing, the same for every process on the database.

Failed sign-ins are counted twice:

- per name at an address: a few mistakes are free, then each failure doubles
  the wait, up to 15 minutes. A guesser slows down only themselves: the
  person they are guessing at signs in from anywhere else as usual;
- per address, with more room (a team behind one router shares an address),
  so one address cannot try name after name.

The counts and each key's end of wait live in the database (table
`sign_in_throttles`), written with atomic updates, so they hold across web
processes and restarts. A count is forgotten an hour after its last failure;
signing in clears the name at that address (not the address: one good account
must not reset an address that is guessing at others).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.features.people.accounts import name_key
from app.storage.db.engine import Database
from app.storage.db.tables import SignInThrottle, utcnow

NAME_AT_ADDRESS_FREE_FAILURES = 5
ADDRESS_FREE_FAILURES = 20
MAX_DELAY_SECONDS = 900.0
FORGET_AFTER = timedelta(hours=1)


@dataclass(frozen=True)
class Attempt:
    """One sign-in attempt: the name typed, from where."""

    name: str
    address: str | None

    @property
    def name_at_address(self) -> str:
        # Hashed: names are typed by anyone and may be long; the key column is not.
        pair = f"{name_key(self.name)}\n{self.address or ''}"
        return "name-at-address:" + hashlib.sha256(pair.encode()).hexdigest()

    @property
    def counters(self) -> list[tuple[str, int]]:
        """(key, free failures) of each count this attempt is held to."""
        counters = [(self.name_at_address, NAME_AT_ADDRESS_FREE_FAILURES)]
        if self.address:
            counters.append(("address:" + self.address[:200], ADDRESS_FREE_FAILURES))
        return counters


def delay_after(failures: int, free: int) -> float:
    """Seconds to wait after `failures` failures when `free` of them cost nothing."""
    if failures < free:
        return 0.0
    return min(MAX_DELAY_SECONDS, 2.0 ** (failures - free))


def wait_seconds(db: Database, attempt: Attempt, *, now: datetime | None = None) -> float:
    """How long before this attempt may be checked at all (0: go ahead)."""
    now = now or utcnow()
    keys = [key for key, _ in attempt.counters]
    with db.read() as session:
        ends = session.exec(
            select(SignInThrottle.blocked_until).where(
                col(SignInThrottle.key).in_(keys), col(SignInThrottle.blocked_until).is_not(None)
            )
        ).all()
    return max([0.0, *((end - now).total_seconds() for end in ends if end is not None)])


def wait_message(seconds: float) -> str:
    """The wait as people read it: whole seconds, rounded up (never "0 seconds")."""
    return f"Too many failed sign-ins. Try again in {math.ceil(seconds)} s."


def record_failure(db: Database, attempt: Attempt, *, now: datetime | None = None) -> float:
    """Count a failed attempt; returns the wait it now imposes (0 if none)."""
    now = now or utcnow()
    wait = 0.0
    with db.write() as session:
        for key, free in attempt.counters:
            failures = _count(session, key, now)
            delay = delay_after(failures, free)
            if delay:
                session.execute(
                    sa.update(SignInThrottle)
                    .where(col(SignInThrottle.key) == key)
                    .values(blocked_until=now + timedelta(seconds=delay))
                )
                wait = max(wait, delay)
    return wait


def _count(session: Session, key: str, now: datetime) -> int:
    """Add one failure to `key`, atomically (other processes count on the same rows)."""
    table = SignInThrottle
    recent = col(table.last_failure_at) > now - FORGET_AFTER
    added = session.execute(
        sa.update(table)
        .where(col(table.key) == key, recent)
        .values(failures=col(table.failures) + 1, last_failure_at=now)
    )
    if not added.rowcount:  # type: ignore[attr-defined]
        # No count yet, or an old one to forget: start again at one.
        restarted = session.execute(
            sa.update(table)
            .where(col(table.key) == key, sa.not_(recent))
            .values(failures=1, last_failure_at=now, blocked_until=None)
        )
        if not restarted.rowcount:  # type: ignore[attr-defined]
            try:
                with session.begin_nested():
                    session.add(table(key=key, failures=1, last_failure_at=now))
            except IntegrityError:
                # Another process counted this key first: add to theirs.
                session.execute(
                    sa.update(table)
                    .where(col(table.key) == key)
                    .values(failures=col(table.failures) + 1, last_failure_at=now)
                )
    return int(session.execute(select(table.failures).where(col(table.key) == key)).scalar_one())


def record_success(db: Database, attempt: Attempt, *, now: datetime | None = None) -> None:
    """Clear the name at this address, and forget counts nobody has added to for a day."""
    now = now or utcnow()
    with db.write() as session:
        session.execute(
            sa.delete(SignInThrottle).where(
                sa.or_(
                    col(SignInThrottle.key) == attempt.name_at_address,
                    col(SignInThrottle.last_failure_at) < now - timedelta(days=1),
                )
            )
        )
