"""Planning and making a grid, for the browser and the API alike.

Making one writes the grid and every cell at once and answers; its cells are then
submitted by the grid runner (app/features/grids/runner.py), each through the one submission
path (app/features/jobs/submission.py). Before anything is written: a refused API key, any cell
the rules refuse, or a grid the person's budget cannot pay for as a whole, stops it.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio

from app.core.errors import KeyRefused, NotFoundError, OverBudget
from app.domain.grid_plans import GridPlan, GridRequest, plan_grid
from app.domain.grid_presets import PresetChoice
from app.features.grids import records as grid_records
from app.features.grids.runner import GridRunner
from app.features.jobs.submission import Submitter, rules_for_run
from app.features.models import team_presets
from app.features.models.key_status import KeyHealth
from app.features.models.live_rules import LiveRules
from app.features.people.budgets import BudgetExceeded
from app.storage.db.engine import Database
from app.storage.db.tables import Grid, User


@dataclass(frozen=True)
class Grids:
    """Grids for the browser and the API: what planning and making one needs, handed in."""

    db: Database
    default_model: str
    rules: LiveRules
    submitter: Submitter
    key_health: KeyHealth
    runner: GridRunner
    # Demo mode: nothing is charged, so a plan estimates nothing either.
    free: bool = False

    def _team_preset(self, preset_id: int) -> PresetChoice | None:
        try:
            saved = team_presets.get_preset(self.db, preset_id=preset_id)
        except NotFoundError:
            return None
        params = team_presets.preset_params(saved)
        return PresetChoice(
            value=f"team:{preset_id}",
            label=saved.name,
            slug=None,
            prompt=params.prompt,
            image_size=params.image_size,
            custom_width=params.customWidth,
            custom_height=params.customHeight,
        )

    def plan(self, request: GridRequest, *, token: str | None) -> GridPlan:
        """The grid's cells and cost, validated; nothing is written or sent."""
        return plan_grid(
            request,
            default_model=self.default_model,
            token=token,
            team_preset=self._team_preset,
            rules=self.rules.in_force(request.model or self.default_model).rules,
            free=self.free,
        )

    async def make(
        self,
        request: GridRequest,
        *,
        token: str | None,
        idempotency_key: str | None,
        user: User | None,
    ) -> tuple[Grid, bool]:
        """Write the grid and start submitting its cells; returns it and whether it is new.

        The same key again gives the same grid back (and takes up its submitting, if the
        worker that had it stopped), paid for once.
        """
        await rules_for_run(self.submitter, request.model or self.default_model)
        problem = await anyio.to_thread.run_sync(self.key_health.problem)
        if problem is not None:
            raise KeyRefused(problem)
        if idempotency_key is not None and user is not None:
            # Keys are each person's own, as for jobs.
            idempotency_key = f"u{user.id}:{idempotency_key}"
        planned = await anyio.to_thread.run_sync(lambda: self.plan(request, token=token))
        record = request.model_dump(mode="json")
        try:
            grid, created = await anyio.to_thread.run_sync(
                lambda: grid_records.create_grid(
                    self.db,
                    plan=planned,
                    request=record,
                    user=user,
                    idempotency_key=idempotency_key,
                    remix_of=request.remix_of,
                )
            )
        except BudgetExceeded as over:
            raise OverBudget(over.message) from None
        assert grid.id is not None
        self.runner.start(grid.id)
        return grid, created

    def keep_going(self, view: grid_records.GridView) -> None:
        """A grid looked at with cells left and nobody submitting them: take it up here.

        Call it on the event loop (from an async route): the runner starts a task there."""
        if any(cell.queued for cell in view.cells) and view.grid.id is not None:
            self.runner.start(view.grid.id)
