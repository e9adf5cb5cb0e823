"""Submitting a grid's cells in the background, one by one, through the one submission path.

A grid is answered as soon as it is written; its cells are then submitted here in
order, each as an ordinary job with an idempotency key of its own
(`grid:<grid id>:<cell>`), so a cell is paid for at most once whoever submits it.
One at a time: the upstream's rate limit is then a short wait per cell, never a
refusal, and the grid's first cells are already running while the last are sent.

The worker submitting a grid holds it (`grids.runner`). A grid whose worker stopped
(a restart, a crash: its heartbeat ends) is taken up again by the next worker to
start, or to show it. What cannot be submitted says why, in its cell: a refused
key or a budget reached stops the cells left; one invalid cell stops only itself. The
person can stop the cells left at any time (app/features/grids/stopping.py): each cell is
taken before it is sent, so a stopped one is never sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging

import anyio

from app.core.errors import (
    IdempotencyKeyReused,
    InvalidParameters,
    KeyRefused,
    OverBudget,
    PlaygroundError,
    SubmissionFailed,
)
from app.domain.runs import validate_parameters
from app.features.grids import records as grid_records
from app.features.grids import stopping
from app.features.jobs.submission import Submitter, submit_job
from app.features.models.live_rules import LiveRules
from app.storage.db.engine import Database
from app.storage.db.tables import Grid, GridCell, User

log = logging.getLogger(__name__)

# Answers that stop every cell left, not only the one that got it.
STOPPING_CODES = frozenset({"insufficient_credits", "api_key_refused"})
# At shutdown, how long a cell's submission under way may take to finish.
STOP_GRACE_SECONDS = 5.0


def cell_key(grid_id: int, position: int) -> str:
    return f"grid:{grid_id}:{position}"


class GridRunner:
    """This process's grid submitters: at most one task per grid."""

    def __init__(
        self,
        *,
        db: Database,
        worker_id: str,
        lease_seconds: float,
        rules: LiveRules,
        submitter: Submitter,
    ) -> None:
        self.db = db
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.rules = rules
        self.submitter = submitter
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._stopping = False

    def start(self, grid_id: int) -> None:
        """Submit the grid's cells left, unless this process or a live one already does."""
        if self._stopping or grid_id in self._tasks:
            return
        task = asyncio.create_task(self._run(grid_id), name=f"grid {grid_id}")
        self._tasks[grid_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(grid_id, None))

    async def resume(self) -> None:
        """Take up the grids whose submitting stopped with their worker."""
        grid_ids = await anyio.to_thread.run_sync(
            lambda: grid_records.grids_to_resume(self.db, lease_seconds=self.lease_seconds)
        )
        for grid_id in grid_ids:
            self.start(grid_id)

    async def wait(self, grid_id: int) -> None:
        """Until this process has submitted the grid's cells (tests, the command line)."""
        task = self._tasks.get(grid_id)
        if task is not None:
            await asyncio.shield(task)

    async def stop(self) -> None:
        """Start no further cell; give the ones under way a moment, then cancel them.

        A cancelled submission is no loss: its job is left `submitting` and the poller
        settles it as it settles any submitter that died, never sending it twice.
        """
        self._stopping = True
        tasks = list(self._tasks.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=STOP_GRACE_SECONDS)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, grid_id: int) -> None:
        db, worker_id = self.db, self.worker_id
        claimed = await anyio.to_thread.run_sync(
            lambda: grid_records.claim_runner(
                db, grid_id=grid_id, worker_id=worker_id, lease_seconds=self.lease_seconds
            )
        )
        if not claimed:
            return
        try:
            await self._submit_cells(grid_id)
        except Exception:
            log.exception("grid %s: submitting its cells failed", grid_id)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(
                    lambda: grid_records.release_runner(db, grid_id=grid_id, worker_id=worker_id)
                )

    async def _submit_cells(self, grid_id: int) -> None:
        view = await anyio.to_thread.run_sync(
            lambda: grid_records.get_grid(self.db, grid_id=grid_id)
        )
        if view is None:
            return
        grid = view.grid
        user = await anyio.to_thread.run_sync(lambda: grid_records.owner_of(self.db, grid=grid))
        # Again until none is left: a stop undone meanwhile queues cells this pass skipped.
        while True:
            cells = await anyio.to_thread.run_sync(
                lambda: grid_records.queued_cells(self.db, grid_id=grid_id)
            )
            sent_any = False
            for cell in cells:
                if self._stopping:
                    return
                taken = await anyio.to_thread.run_sync(
                    functools.partial(
                        stopping.take_cell, self.db, grid_id=grid_id, position=cell.position
                    )
                )
                if not taken:
                    continue  # the person stopped it (or it was settled meanwhile)
                sent_any = True
                if not await self._submit_cell(grid, cell, user):
                    return
            if not sent_any:
                return

    async def _submit_cell(self, grid: Grid, cell: GridCell, user: User | None) -> bool:
        """Submit one cell and record its job; False when the cells left must not be sent."""
        assert grid.id is not None
        grid_id, position = grid.id, cell.position
        try:
            # Validated again: the rules may have changed since the grid was planned.
            in_force = await self.rules.for_submission(grid.model)
            params = validate_parameters(cell.parameters, in_force.rules)
            job, _ = await submit_job(
                self.submitter,
                params=params,
                model=grid.model,
                preset=cell.preset,
                idempotency_key=cell_key(grid_id, position),
                user=user,
            )
            assert job.id is not None
            job_id, stop_reason = job.id, None
        except SubmissionFailed as failure:
            # The job exists and says what went wrong; some answers stop the cells left.
            job_id = failure.job_id
            stop_reason = failure.message if failure.code in STOPPING_CODES else None
        except (KeyRefused, OverBudget) as refused:
            await self._refuse(grid_id, refused.message)
            return False
        except (InvalidParameters, IdempotencyKeyReused) as invalid:
            await self._refuse(grid_id, invalid.message, position=position)
            return True
        except PlaygroundError as error:
            await self._refuse(grid_id, error.message, position=position)
            return True
        await anyio.to_thread.run_sync(
            functools.partial(
                grid_records.record_cell_job,
                self.db,
                grid_id=grid_id,
                position=position,
                job_id=job_id,
            )
        )
        if stop_reason is not None:
            await self._refuse(grid_id, f"Not submitted: {stop_reason}")
            return False
        return True

    async def _refuse(self, grid_id: int, reason: str, *, position: int | None = None) -> None:
        await anyio.to_thread.run_sync(
            lambda: grid_records.refuse_queued(
                self.db, grid_id=grid_id, reason=reason, position=position
            )
        )
