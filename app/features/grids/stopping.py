"""Stopping a grid: its cells not yet sent are never sent, until the stop is undone.

The runner takes each cell before it sends it (`take_cell`), and a stop marks the cells
nobody has taken (`stop_grid`). Both write the cell's row under the same condition, so
on SQLite (one writer) and on PostgreSQL (a row lock, its condition checked again after
the wait) exactly one of them wins for each cell: a cell is either stopped, or sent. A
stop therefore costs nothing and loses nothing; `resume_grid` puts the stopped cells back
in the queue and they are sent as if nothing had happened. Cells already sent run on, and
their images are kept, as for any job PixelDojo has (app/features/jobs/stopping.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import col, func, select

from app.core.errors import NotFoundError
from app.features.people import audit
from app.features.people.permissions import Actor
from app.storage.db.engine import Database
from app.storage.db.tables import Grid, GridCell, utcnow


@dataclass(frozen=True)
class GridStop:
    # Cells stopped (or, for a resume, queued again) by this request.
    changed: int
    # Cells taken to be sent before it: these run on (or ran).
    sent: int


def _waiting() -> sa.ColumnElement[bool]:
    """A cell nobody has taken, sent, refused or stopped."""
    return sa.and_(
        col(GridCell.job_id).is_(None),
        col(GridCell.refused).is_(None),
        col(GridCell.sent_at).is_(None),
        col(GridCell.stopped_at).is_(None),
    )


def take_cell(db: Database, *, grid_id: int, position: int) -> bool:
    """Mark a cell as being sent, unless the person stopped it: whether it may be sent.

    A cell taken before (by a runner that stopped half-way) may be taken again: its
    idempotency key keeps it from being paid for twice."""
    with db.write() as session:
        result = session.execute(
            sa.update(GridCell)
            .where(
                col(GridCell.grid_id) == grid_id,
                col(GridCell.position) == position,
                col(GridCell.job_id).is_(None),
                col(GridCell.refused).is_(None),
                col(GridCell.stopped_at).is_(None),
            )
            .values(sent_at=utcnow())
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def stop_grid(db: Database, *, actor: Actor, grid_id: int) -> GridStop:
    """Stop every cell of the grid not yet taken to be sent."""
    with db.write() as session:
        grid = _grid_for(session, actor, grid_id)
        result = session.execute(
            sa.update(GridCell)
            .where(col(GridCell.grid_id) == grid.id, _waiting())
            .values(stopped_at=utcnow())
        )
        stopped = int(result.rowcount)  # type: ignore[attr-defined]
        sent = _count(
            session,
            grid_id,
            sa.or_(col(GridCell.job_id).is_not(None), col(GridCell.sent_at).is_not(None)),
        )
    if stopped:
        _record(db, actor, f"stopped {stopped} cell(s) of grid {grid_id}")
    return GridStop(changed=stopped, sent=sent)


def resume_grid(db: Database, *, actor: Actor, grid_id: int) -> GridStop:
    """Undo a stop: the stopped cells are queued again (the caller starts the runner)."""
    with db.write() as session:
        grid = _grid_for(session, actor, grid_id)
        result = session.execute(
            sa.update(GridCell)
            .where(col(GridCell.grid_id) == grid.id, col(GridCell.stopped_at).is_not(None))
            .values(stopped_at=None)
        )
        resumed = int(result.rowcount)  # type: ignore[attr-defined]
        sent = _count(session, grid_id, col(GridCell.job_id).is_not(None))
    if resumed:
        _record(db, actor, f"resumed {resumed} cell(s) of grid {grid_id}")
    return GridStop(changed=resumed, sent=sent)


def _grid_for(session: sa.orm.Session, actor: Actor, grid_id: int) -> Grid:
    grid = session.get(Grid, grid_id)
    if grid is None:
        raise NotFoundError(f"There is no grid {grid_id}.")
    actor.ensure_may_change(grid.user_id, what=f"grid {grid_id}")
    return grid


def _count(session: sa.orm.Session, grid_id: int, where: sa.ColumnElement[bool]) -> int:
    counted = select(func.count()).select_from(GridCell)
    return int(session.execute(counted.where(col(GridCell.grid_id) == grid_id, where)).scalar_one())


def _record(db: Database, actor: Actor, detail: str) -> None:
    audit.record(db, action=audit.Action.STOP, user=actor.user, ip=actor.ip, detail=detail)
