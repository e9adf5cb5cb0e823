"""Job cards and grid cells rendered for an out-of-band swap: each replaces its namesake
(by id) wherever it sits on the page. The live streams, their polling fallbacks and the
stop buttons' answers all send them."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi.templating import Jinja2Templates

from app.domain.parameters import DEFAULT_IMAGE_SIZE, pixel_size
from app.features.grids import records as grid_records
from app.features.jobs import reads
from app.web.services import Services


def sheet_shape(view: grid_records.GridView) -> tuple[int, int]:
    """The shape every cell of a grid's sheet is drawn in: its cells' size when they all ask
    for one (a sheet of portraits is portrait), else square."""
    shapes = {
        pixel_size(
            cell.cell.parameters.get("image_size") or DEFAULT_IMAGE_SIZE,
            cell.cell.parameters.get("customWidth"),
            cell.cell.parameters.get("customHeight"),
        )
        for cell in view.cells
    }
    return shapes.pop() if len(shapes) == 1 else (1, 1)


def render_cards(services: Services, templates: Jinja2Templates, job_ids: Sequence[int]) -> str:
    """The cards of these jobs (those that exist), each swapping out its namesake on the page."""
    template = templates.get_template("partials/_job_card.html")
    cards = []
    for job_id in job_ids:
        item = reads.get_job(services.db, job_id=job_id)
        if item is not None:
            cards.append(template.render(item=item, oob=True))
    return "".join(cards)


def render_cells(
    services: Services, templates: Jinja2Templates, grid_id: int, positions: set[int] | None
) -> str:
    """The grid's cells (those in `positions`, or all) and its progress, each swapping out
    its namesake on the page."""
    view = grid_records.require_grid(services.db, grid_id=grid_id)
    cell_template = templates.get_template("partials/_grid_cell.html")
    progress = templates.get_template("partials/_grid_progress.html")
    parts = [
        cell_template.render(view=view, item=cell, oob=True)
        for cell in view.cells
        if positions is None or cell.cell.position in positions
    ]
    parts.append(progress.render(view=view, oob=True))
    return "".join(parts)
