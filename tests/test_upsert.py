"""The one upsert helper (app/storage/db/upsert.py): two writers inserting one key both end
with the row that got in, on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.storage.db.engine import Database
from app.storage.db.tables import AppSecret, utcnow
from app.storage.db.upsert import upsert

KEY = "race"
# How long the first writer waits for the second to have looked too. On PostgreSQL both
# look at once and meet; on SQLite the second is still waiting for the write lock, so
# the first stops waiting for it and goes on alone: any wait there is only time lost.
MEET_SECONDS = {"postgresql": 3.0, "sqlite": 0.2}


def _racing_insert(db: Database, value: str, meet: threading.Barrier, looks: list[str]) -> str:
    def write(session: Session) -> str:
        row = session.get(AppSecret, KEY)
        looks.append(value)
        if row is None:
            # Both have looked and found nothing: now both insert.
            with contextlib.suppress(threading.BrokenBarrierError):
                meet.wait()
            row = AppSecret(name=KEY, value=value, created_at=utcnow())
            session.add(row)
            session.flush()
        return row.value

    return upsert(db, write)


@pytest.mark.both_databases
def test_two_writers_inserting_one_key_both_get_the_row_that_got_in(db: Database) -> None:
    meet = threading.Barrier(2, timeout=MEET_SECONDS[db.url.get_backend_name()])
    looks: list[str] = []
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(_racing_insert, db, value, meet, looks) for value in ("a", "b")]
        results = [future.result(timeout=60) for future in futures]
    with db.read() as session:
        rows = session.exec(select(AppSecret).where(col(AppSecret.name) == KEY)).all()
    assert len(rows) == 1
    assert results == [rows[0].value, rows[0].value]
    if db.url.get_backend_name() == "postgresql":
        # Both looked before either inserted, so one lost the race and looked again.
        assert sorted(looks[:2]) == ["a", "b"] and len(looks) == 3


@pytest.mark.both_databases
def test_a_second_conflict_is_no_race_and_is_raised(db: Database) -> None:
    with db.write() as session:
        session.add(AppSecret(name=KEY, value="there", created_at=utcnow()))
    attempts: list[int] = []

    def blind_insert(session: Session) -> None:
        attempts.append(1)
        session.add(AppSecret(name=KEY, value="again", created_at=utcnow()))
        session.flush()

    with pytest.raises(sa.exc.IntegrityError):
        upsert(db, blind_insert)
    assert len(attempts) == 2
