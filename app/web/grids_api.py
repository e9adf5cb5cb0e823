"""Grids in the JSON API: plan one (count and cost, nothing sent), make one, follow it,
take it away as a zip or as one contact-sheet PNG."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from app.core.errors import InvalidParameters
from app.core.text import Line
from app.domain import grid_plans as grids
from app.domain.grid_plans import GridPlan, GridRequest, cell_records, plan_summary
from app.features.gallery import lookups
from app.features.gallery.downloads import jobs_for, zip_stream
from app.features.grids import records as grid_records
from app.features.grids.contact_sheet import render_contact_sheet
from app.features.jobs import reads
from app.storage.db.tables import JobStatus
from app.web import urls
from app.web.deps import CurrentUser, ServicesDep
from app.web.paging import IdCursorQuery, id_cursor, link_next
from app.web.schemas import ImagePublic
from app.web.services import Services
from app.web.views import image_public

router = APIRouter(prefix="/api", tags=["grids"])

IDEMPOTENCY_KEY_MAX = 190

KeyHeader = Annotated[
    Line | None,
    Header(
        min_length=1,
        max_length=IDEMPOTENCY_KEY_MAX,
        description="Send the same key again and you get the same grid, and pay once; "
        "it also draws the random seeds, so a plan asked with it is the grid made with it",
    ),
]


class AxisPublic(BaseModel):
    name: str
    param: str
    title: str
    values: list[Any]
    labels: list[str]


class PlannedCellPublic(BaseModel):
    position: int
    x: int
    y: int
    z: int
    preset: str | None
    parameters: dict[str, Any]
    estimated_credits: float


class GridPlanPublic(BaseModel):
    model: str
    columns: int
    rows: int
    tabs: int
    jobs: int
    images: int
    estimated_credits: float
    axes: list[AxisPublic]
    notes: list[str] = []
    cells: list[PlannedCellPublic]


class GridCellPublic(BaseModel):
    position: int
    x: int
    y: int
    z: int
    preset: str | None
    parameters: dict[str, Any]
    job_id: int | None
    status: JobStatus | None
    status_label: str
    finished: bool
    error: str | None
    credit_cost: float | None
    images: list[ImagePublic]


class GridPublic(BaseModel):
    id: int
    author: str | None
    model: str
    prompt: str
    axes: list[AxisPublic]
    columns: int
    rows: int
    tabs: int
    estimated_credits: float
    credit_cost: float
    finished: bool
    done: int
    cells: list[GridCellPublic]
    remix_of: int | None
    url: str
    zip_url: str
    contact_sheet_url: str
    created_at: datetime


class GridSummaryPublic(BaseModel):
    id: int
    model: str
    prompt: str
    axes: list[AxisPublic]
    cells: int
    done: int
    estimated_credits: float
    url: str
    created_at: datetime


class GridPage(BaseModel):
    items: list[GridSummaryPublic]
    next_cursor: str | None


def plan_public(plan: GridPlan) -> GridPlanPublic:
    return GridPlanPublic.model_validate({**plan_summary(plan), "cells": cell_records(plan)})


def cell_public(view: grid_records.CellView) -> GridCellPublic:
    cell, job = view.cell, view.job
    if cell.refused is not None:
        label = "Not submitted"
    elif view.stopped:
        label = "Stopped: not sent"
    elif job is None:
        label = "Queued"
    else:
        label = job.state_label
    return GridCellPublic(
        position=cell.position,
        x=cell.x,
        y=cell.y,
        z=cell.z,
        preset=cell.preset,
        parameters=cell.parameters,
        job_id=cell.job_id,
        status=job.status if job is not None else None,
        status_label=label,
        finished=view.finished,
        error=cell.refused if cell.refused is not None else (job.error if job else None),
        credit_cost=job.credit_cost if job is not None else None,
        images=[image_public(image) for image in view.images],
    )


def grid_public(view: grid_records.GridView) -> GridPublic:
    grid = view.grid
    assert grid.id is not None
    columns, rows, tabs = grids.shape(grid.axes)
    return GridPublic(
        id=grid.id,
        author=view.author,
        model=grid.model,
        prompt=grid.prompt,
        axes=[AxisPublic(**axis) for axis in grid.axes],
        columns=columns,
        rows=rows,
        tabs=tabs,
        estimated_credits=grid.estimated_credits,
        credit_cost=view.credit_cost,
        finished=view.finished,
        done=view.done_count,
        cells=[cell_public(cell) for cell in view.cells],
        remix_of=grid.remix_of_grid_id,
        url=urls.grid_page(grid.id),
        zip_url=urls.grid_zip(grid.id),
        contact_sheet_url=urls.contact_sheet(grid.id),
        created_at=grid.created_at,
    )


def grid_or_404(services: Services, grid_id: int) -> grid_records.GridView:
    return grid_records.require_grid(services.db, grid_id=grid_id)


@router.post("/grids/plan", response_model=GridPlanPublic)
def plan_grid(
    body: GridRequest, services: ServicesDep, idempotency_key: KeyHeader = None
) -> GridPlanPublic:
    """Every cell's parameters, the number of jobs and their cost; nothing is sent."""
    return plan_public(services.grids.plan(body, token=idempotency_key))


@router.post("/grids", status_code=202, response_model=GridPublic)
async def create_grid(
    body: GridRequest,
    services: ServicesDep,
    user: CurrentUser,
    response: Response,
    idempotency_key: KeyHeader = None,
) -> GridPublic:
    """Make the grid: answered at once, its cells are submitted one by one after."""
    grid, created = await services.grids.make(
        body,
        token=idempotency_key,
        idempotency_key=f"api:{idempotency_key}" if idempotency_key else None,
        user=user,
    )
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    assert grid.id is not None
    response.headers["Location"] = urls.grid_api(grid.id)
    view = await run_in_threadpool(grid_or_404, services, grid.id)
    return grid_public(view)


@router.get("/grids", response_model=GridPage)
def list_grids(
    request: Request,
    response: Response,
    services: ServicesDep,
    cursor: IdCursorQuery = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> GridPage:
    page, next_cursor = grid_records.list_grids(
        services.db, before_id=id_cursor(cursor), limit=limit
    )
    link_next(response, request, next_cursor)
    return GridPage(
        items=[
            GridSummaryPublic(
                id=item.grid.id or 0,
                model=item.grid.model,
                prompt=item.grid.prompt,
                axes=[AxisPublic(**axis) for axis in item.grid.axes],
                cells=item.cells,
                done=item.done,
                estimated_credits=item.grid.estimated_credits,
                url=urls.grid_page(item.grid.id or 0),
                created_at=item.grid.created_at,
            )
            for item in page
        ],
        next_cursor=str(next_cursor) if next_cursor is not None else None,
    )


# `:int`: /api/grids/plan is another address, whatever the method asked of it.
@router.get("/grids/{grid_id:int}", name="get_grid", response_model=GridPublic)
async def get_grid(grid_id: int, services: ServicesDep) -> GridPublic:
    """The grid, every cell with its job's state and images."""
    view = await run_in_threadpool(grid_or_404, services, grid_id)
    services.grids.keep_going(view)
    return grid_public(view)


def grid_images(view: grid_records.GridView) -> list[int]:
    return [image.id for cell in view.cells for image in cell.images if image.id is not None]


@router.get(
    "/grids/{grid_id}/zip",
    name="download_grid_zip",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/zip": {}}}},
)
def download_grid_zip(grid_id: int, services: ServicesDep) -> Response:
    """Every image of the grid with its parameters embedded, a sidecar each, and a manifest
    that says which cell each image fills."""
    view = grid_or_404(services, grid_id)
    entries = lookups.get_entries(services.db, image_ids=grid_images(view))
    if not entries:
        raise InvalidParameters({"grid": "none of its images is stored yet"})
    selection = {
        "grid": grid_id,
        "axes": view.grid.axes,
        "cells": [
            {"x": c.cell.x, "y": c.cell.y, "z": c.cell.z, "job_id": c.cell.job_id}
            for c in view.cells
        ],
    }
    return StreamingResponse(
        zip_stream(
            services.blobs,
            entries,
            jobs_for(services.db, entries),
            base_url=services.settings.pixeldojo_base_url,
            selection=selection,
        ),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="seedream-grid-{grid_id}.zip"'},
    )


@router.get(
    "/grids/{grid_id}/contact-sheet.png",
    name="contact_sheet",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
def contact_sheet(
    grid_id: int,
    services: ServicesDep,
    tab: Annotated[int | None, Query(ge=0, description="Only this tab (z), from 0")] = None,
) -> Response:
    """The grid as one PNG: images in rows and columns, labelled; every tab, or one."""
    view = grid_or_404(services, grid_id)
    _, _, tabs = grids.shape(view.grid.axes)
    if tab is not None and tab >= tabs:
        raise InvalidParameters({"tab": f"the grid has tabs 0 to {tabs - 1}"})

    def thumbnail(image_id: int) -> bytes | None:
        stored = reads.get_image(services.db, image_id=image_id)
        if stored is None:
            return None
        return services.thumbnails.data_for(image_id=image_id, sha256=stored.sha256)

    png = render_contact_sheet(view, thumbnail, tab=tab)
    name = f"seedream-grid-{grid_id}" + (f"-tab-{tab + 1}" if tab is not None else "") + ".png"
    return Response(
        png,
        media_type="image/png",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            # A grid still filling in draws differently a moment later.
            "Cache-Control": "no-store" if not view.finished else "private, max-age=60",
        },
    )
