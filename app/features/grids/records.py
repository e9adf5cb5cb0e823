"""Reads and writes of grids and their cells (the plans themselves are app/domain/grid_plans.py).

A grid is written whole, every cell with its parameters, before any cell is
submitted; each cell then gets its job as it is submitted, so a grid whose
submitting stopped half-way (a restart) knows exactly which cells are left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.core.errors import InvalidParameters, NotFoundError
from app.domain.grid_plans import GridPlan, cell_records
from app.features.people.budgets import check_budget
from app.storage.db.engine import Database
from app.storage.db.tables import (
    FINISHED_STATUSES,
    ROW_ID_MAX,
    Grid,
    GridCell,
    Image,
    Job,
    JobStatus,
    User,
    Worker,
    utcnow,
)
from app.storage.db.upsert import upsert


def create_grid(
    db: Database,
    *,
    plan: GridPlan,
    request: dict[str, Any],
    user: User | None,
    idempotency_key: str | None,
    remix_of: int | None = None,
) -> tuple[Grid, bool]:
    """Write the grid and its cells; returns it and whether it is new.

    A key used before for the same request gives the earlier grid back. The whole
    grid's cost is checked against the person's budget first (BudgetExceeded), so a
    grid that cannot be paid for is refused before any of its jobs, not half-way.
    """
    now = utcnow()

    def write(session: Session) -> tuple[Grid, bool]:
        earlier = _earlier_grid(session, idempotency_key, request=request, model=plan.model)
        if earlier is not None:
            return earlier, False
        if remix_of is not None and session.get(Grid, remix_of) is None:
            raise InvalidParameters({"remix_of": f"there is no grid {remix_of}"})
        if user is not None and user.id is not None:
            # Locked (on PostgreSQL) until the grid is written: one person's grids and
            # jobs are checked against their budget one at a time.
            current = session.get(User, user.id, with_for_update=True)
            if current is not None:
                check_budget(session, user=current, cost=plan.credits, now=now, what="This grid")
        grid = Grid(
            created_at=now,
            user_id=user.id if user is not None else None,
            model=plan.model,
            prompt=plan.prompt,
            request=request,
            axes=[axis.record() for axis in plan.axes],
            estimated_credits=plan.credits,
            idempotency_key=idempotency_key,
            remix_of_grid_id=remix_of,
        )
        session.add(grid)
        session.flush()
        assert grid.id is not None
        for cell in cell_records(plan):
            session.add(
                GridCell(
                    grid_id=grid.id,
                    position=cell["position"],
                    x=cell["x"],
                    y=cell["y"],
                    z=cell["z"],
                    preset=cell["preset"],
                    parameters=cell["parameters"],
                )
            )
        return grid, True

    # Two requests with one key may both find none (on a server database): the unique key
    # lets one in, and the other, written again, gets its grid.
    return upsert(db, write)


def _earlier_grid(
    session: Session, idempotency_key: str | None, *, request: dict[str, Any], model: str
) -> Grid | None:
    """The grid made before with this key, if the repeat asks for the same one."""
    if idempotency_key is None:
        return None
    earlier = session.exec(select(Grid).where(Grid.idempotency_key == idempotency_key)).first()
    if earlier is not None and (earlier.request != request or earlier.model != model):
        raise InvalidParameters(
            {
                "Idempotency-Key": f"was used for grid {earlier.id} with other "
                "parameters; use a new key for a new grid"
            }
        )
    return earlier


@dataclass(frozen=True)
class CellView:
    cell: GridCell
    job: Job | None
    images: list[Image]

    @property
    def finished(self) -> bool:
        return (
            self.cell.refused is not None
            or self.stopped
            or (self.job is not None and self.job.status in FINISHED_STATUSES)
        )

    @property
    def stopped(self) -> bool:
        """Stopped by the person before it was sent (app/features/grids/stopping.py)."""
        return self.job is None and self.cell.stopped_at is not None

    @property
    def queued(self) -> bool:
        return self.job is None and self.cell.refused is None and self.cell.stopped_at is None


@dataclass(frozen=True)
class GridView:
    grid: Grid
    cells: list[CellView]
    author: str | None = None

    @property
    def finished(self) -> bool:
        return all(cell.finished for cell in self.cells)

    @property
    def done_count(self) -> int:
        return sum(1 for cell in self.cells if cell.finished)

    @property
    def stopped_count(self) -> int:
        return sum(1 for cell in self.cells if cell.stopped)

    @property
    def sending(self) -> bool:
        """Whether cells are still waiting to be sent (the page offers to stop them)."""
        return any(cell.queued for cell in self.cells)

    def cell_at(self, x: int, y: int, z: int) -> CellView | None:
        for cell in self.cells:
            if (cell.cell.x, cell.cell.y, cell.cell.z) == (x, y, z):
                return cell
        return None

    @property
    def credit_cost(self) -> float:
        """What its jobs cost as reported, refunded failures left out (as budgets count)."""
        return sum(
            cell.job.credit_cost or 0.0
            for cell in self.cells
            if cell.job is not None
            and not (cell.job.status is JobStatus.FAILED and cell.job.upstream_completed_at is None)
        )


def require_grid(db: Database, *, grid_id: int) -> GridView:
    """The grid (as `get_grid`), or NotFoundError."""
    view = get_grid(db, grid_id=grid_id)
    if view is None:
        raise NotFoundError(f"There is no grid {grid_id}.")
    return view


def get_grid(db: Database, *, grid_id: int) -> GridView | None:
    """The grid, each cell with its job and the job's images not in the trash."""
    with db.read() as session:
        grid = session.get(Grid, grid_id)
        if grid is None:
            return None
        cells = session.exec(
            select(GridCell).where(GridCell.grid_id == grid_id).order_by(col(GridCell.position))
        ).all()
        job_ids = [cell.job_id for cell in cells if cell.job_id is not None]
        jobs = {
            job.id: job for job in session.exec(select(Job).where(col(Job.id).in_(job_ids))).all()
        }
        images: dict[int, list[Image]] = {}
        for image in session.exec(
            select(Image)
            .where(col(Image.job_id).in_(job_ids), col(Image.deleted_at).is_(None))
            .order_by(col(Image.job_id), col(Image.index))
        ).all():
            images.setdefault(image.job_id, []).append(image)
        author = _author(session, grid.user_id)
    views = [
        CellView(
            cell,
            jobs.get(cell.job_id) if cell.job_id is not None else None,
            images.get(cell.job_id, []) if cell.job_id is not None else [],
        )
        for cell in cells
    ]
    return GridView(grid, views, author)


def _author(session: Session, user_id: int | None) -> str | None:
    if user_id is None:
        return None
    user = session.get(User, user_id)
    return user.name if user is not None else None


@dataclass(frozen=True)
class GridListItem:
    grid: Grid
    cells: int
    done: int
    # A few images to show it by, in cell order.
    image_ids: list[int]


def list_grids(
    db: Database, *, before_id: int | None = None, limit: int = 24, previews: int = 4
) -> tuple[list[GridListItem], int | None]:
    """Newest first, keyset-paginated by id; returns the page and the next cursor."""
    with db.read() as session:
        grids = session.exec(
            select(Grid)
            .where(col(Grid.id) < (ROW_ID_MAX if before_id is None else before_id))
            .order_by(col(Grid.id).desc())
            .limit(limit + 1)
        ).all()
        page = list(grids[:limit])
        ids = [grid.id for grid in page]
        rows = session.execute(
            sa.select(
                col(GridCell.grid_id),
                col(GridCell.position),
                col(GridCell.refused),
                col(GridCell.stopped_at),
                col(Job.status),
                col(Image.id),
            )
            .outerjoin(Job, col(Job.id) == col(GridCell.job_id))
            .outerjoin(
                Image,
                sa.and_(
                    col(Image.job_id) == col(Job.id),
                    col(Image.index) == 0,
                    col(Image.deleted_at).is_(None),
                ),
            )
            .where(col(GridCell.grid_id).in_(ids))
            .order_by(col(GridCell.grid_id), col(GridCell.position))
        ).all()
    counts: dict[int, list[int]] = {grid_id: [0, 0] for grid_id in ids if grid_id is not None}
    pictures: dict[int, list[int]] = {}
    for grid_id, _, refused, stopped, status, image_id in rows:
        counts[grid_id][0] += 1
        if (
            refused is not None
            or (stopped is not None and status is None)
            or (status is not None and JobStatus(status) in FINISHED_STATUSES)
        ):
            counts[grid_id][1] += 1
        if image_id is not None and len(pictures.setdefault(grid_id, [])) < previews:
            pictures[grid_id].append(image_id)
    items = [
        GridListItem(grid, counts[grid.id][0], counts[grid.id][1], pictures.get(grid.id, []))
        for grid in page
        if grid.id is not None
    ]
    next_cursor = page[-1].id if len(grids) > limit else None
    return items, next_cursor


def queued_cells(db: Database, *, grid_id: int) -> list[GridCell]:
    """Cells not yet submitted (nor refused, nor stopped), in the order they are submitted."""
    with db.read() as session:
        return list(
            session.exec(
                select(GridCell)
                .where(
                    GridCell.grid_id == grid_id,
                    col(GridCell.job_id).is_(None),
                    col(GridCell.refused).is_(None),
                    col(GridCell.stopped_at).is_(None),
                )
                .order_by(col(GridCell.position))
            ).all()
        )


def record_cell_job(db: Database, *, grid_id: int, position: int, job_id: int) -> None:
    with db.write() as session:
        session.execute(
            sa.update(GridCell)
            .where(col(GridCell.grid_id) == grid_id, col(GridCell.position) == position)
            .values(job_id=job_id)
        )


def refuse_queued(db: Database, *, grid_id: int, reason: str, position: int | None = None) -> None:
    """Say why a cell (or, without `position`, every cell left) will not be submitted."""
    statement = sa.update(GridCell).where(
        col(GridCell.grid_id) == grid_id,
        col(GridCell.job_id).is_(None),
        col(GridCell.refused).is_(None),
    )
    if position is not None:
        statement = statement.where(col(GridCell.position) == position)
    with db.write() as session:
        session.execute(statement.values(refused=reason))


def _live_workers(now: datetime, lease_seconds: float) -> sa.Select[Any]:
    return sa.select(col(Worker.id)).where(
        col(Worker.heartbeat_at) >= now - timedelta(seconds=lease_seconds)
    )


def claim_runner(db: Database, *, grid_id: int, worker_id: str, lease_seconds: float) -> bool:
    """Make this worker the one submitting the grid's cells, unless a live one is.

    A compare-and-set, so two workers racing for one grid cannot both win. (This
    worker's own claim is kept from running twice by the runner, app/features/grids/runner.py.)
    """
    now = utcnow()
    free = sa.or_(
        col(Grid.runner).is_(None),
        col(Grid.runner).not_in(_live_workers(now, lease_seconds)),
    )
    with db.write() as session:
        result = session.execute(
            sa.update(Grid).where(col(Grid.id) == grid_id, free).values(runner=worker_id)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def release_runner(db: Database, *, grid_id: int, worker_id: str) -> None:
    with db.write() as session:
        session.execute(
            sa.update(Grid)
            .where(col(Grid.id) == grid_id, col(Grid.runner) == worker_id)
            .values(runner=None)
        )


def grids_to_resume(db: Database, *, lease_seconds: float, limit: int = 100) -> list[int]:
    """Grids with cells left to submit and no live worker submitting them."""
    now = utcnow()
    with db.read() as session:
        rows = session.exec(
            select(Grid.id)
            .where(
                sa.or_(
                    col(Grid.runner).is_(None),
                    col(Grid.runner).not_in(_live_workers(now, lease_seconds)),
                ),
                sa.exists().where(
                    col(GridCell.grid_id) == col(Grid.id),
                    col(GridCell.job_id).is_(None),
                    col(GridCell.refused).is_(None),
                    col(GridCell.stopped_at).is_(None),
                ),
            )
            .order_by(col(Grid.id))
            .limit(limit)
        ).all()
    return [grid_id for grid_id in rows if grid_id is not None]


def owner_of(db: Database, *, grid: Grid) -> User | None:
    if grid.user_id is None:
        return None
    with db.read() as session:
        return session.get(User, grid.user_id)


# What a grid page shows of a cell; a change in any of these is worth sending.
CellState = tuple[int | None, str | None, str | None, float | None, str | None, int, bool]


def cell_states(db: Database, *, grid_id: int) -> dict[int, CellState]:
    """Position → (job id, status, error, cost, refusal, stored images, stopped): one query."""
    image_count = (
        sa.select(sa.func.count())
        .where(col(Image.job_id) == col(GridCell.job_id), col(Image.deleted_at).is_(None))
        .scalar_subquery()
    )
    with db.read() as session:
        rows = session.execute(
            sa.select(
                col(GridCell.position),
                col(GridCell.job_id),
                col(Job.status),
                col(Job.error),
                col(Job.credit_cost),
                col(GridCell.refused),
                image_count,
                col(GridCell.stopped_at),
            )
            .outerjoin(Job, col(Job.id) == col(GridCell.job_id))
            .where(col(GridCell.grid_id) == grid_id)
        ).all()
    return {
        position: (
            job_id,
            None if status is None else str(status),
            error,
            cost,
            refused,
            count,
            stopped is not None and job_id is None,
        )
        for position, job_id, status, error, cost, refused, count, stopped in rows
    }


def state_finished(state: CellState) -> bool:
    _, status, _, _, refused, _, stopped = state
    return (
        refused is not None
        or stopped
        or (status is not None and JobStatus(status) in FINISHED_STATUSES)
    )


def grid_of_job(db: Database, *, job_id: int) -> GridCell | None:
    """The grid cell a job fills, if it was made as part of a grid."""
    with db.read() as session:
        return session.exec(select(GridCell).where(GridCell.job_id == job_id)).first()
