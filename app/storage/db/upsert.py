"""Writes that insert a row unless one with its key is there: one home for losing that race.

Such a write looks for the row first and inserts only if it is missing. On SQLite
nothing can come between the look and the insert (the writer holds `BEGIN
IMMEDIATE`); on PostgreSQL two processes can both look, both find nothing and both
insert, and the unique key lets one in and fails the other with IntegrityError.
The loser has only to do its write again: its look now finds the winner's row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa
from sqlmodel import Session

from app.storage.db.engine import Database

T = TypeVar("T")


def upsert(db: Database, write: Callable[[Session], T]) -> T:
    """Run `write` in a write transaction; if another writer inserted the same key first,
    run it once more in a new one, where it finds that row (and returns, or updates, it).

    `write` must look before it inserts, and build what it inserts inside (a row from a
    rolled-back attempt is not to be added again). A second IntegrityError is no race
    (the same key cannot be inserted twice): it is raised.
    """
    try:
        with db.write() as session:
            return write(session)
    except sa.exc.IntegrityError:
        pass
    with db.write() as session:
        return write(session)
