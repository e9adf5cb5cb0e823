"""Grids in the browser: build one (its cost shown before anything is sent), watch it
fill in live, find it again among the grids, remix it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from app.core.errors import InvalidParameters, NotFoundError
from app.domain import grid_plans as grids
from app.domain.grid_axes import axis_parameters
from app.domain.grid_plans import MAX_CELLS
from app.domain.presets import PRESETS_BY_SLUG
from app.domain.rules import default_size
from app.features.grids import records as grid_records
from app.features.jobs.events import format_event
from app.features.models import team_presets
from app.storage.db.tables import ROW_ID_MAX
from app.web import sse, urls
from app.web.cards import render_cells, sheet_shape
from app.web.deps import ServicesDep, TemplatesDep, current_user, is_htmx
from app.web.grid_form import GridForm
from app.web.services import Services

router = APIRouter(include_in_schema=False)

GRIDS_PER_PAGE = 24
PARAM_LABELS = {
    "preset": "Presets",
    "seed": "Seeds",
    "image_size": "Sizes",
    "prompt": "Prompt search and replace",
    "num_images": "Number of images",
    "customWidth": "Width (custom size)",
    "customHeight": "Height (custom size)",
}
PARAM_HINTS = {
    "preset": "tick the presets",
    "seed": "1, 2, 3 — or random 4",
    "image_size": "square_hd, landscape_16_9, 2560x1440",
    "prompt": "the word to find, then what replaces it: cat, dog, fox",
    "num_images": "1, 2, 4",
    "customWidth": "2560, 3072",
    "customHeight": "1440, 2048",
}


def _form_context(services: Services, form: GridForm) -> dict[str, Any]:
    return {
        "form": form,
        "axis_params": [(name, PARAM_LABELS.get(name, name)) for name in axis_parameters()],
        "param_hints": PARAM_HINTS,
        "team_presets": team_presets.list_presets(services.db),
        "max_cells": MAX_CELLS,
    }


@router.get("/grids", response_class=HTMLResponse)
def grids_page(
    request: Request,
    services: ServicesDep,
    templates: TemplatesDep,
    cursor: Annotated[int | None, Query(ge=1, le=ROW_ID_MAX)] = None,
) -> Response:
    items, next_cursor = grid_records.list_grids(
        services.db, before_id=cursor, limit=GRIDS_PER_PAGE
    )
    return templates.TemplateResponse(
        request,
        "grids.html",
        {"items": items, "next_cursor": next_cursor},
    )


@router.get("/grids/new", response_class=HTMLResponse)
def new_grid_page(
    request: Request,
    services: ServicesDep,
    templates: TemplatesDep,
    preset: Annotated[str | None, Query()] = None,
    remix: Annotated[
        int | None, Query(ge=1, le=ROW_ID_MAX, description="Grid to start from")
    ] = None,
) -> Response:
    if remix is not None:
        form = GridForm.from_grid(grid_records.require_grid(services.db, grid_id=remix).grid)
    elif preset is not None:
        if preset not in PRESETS_BY_SLUG:
            raise NotFoundError(f"There is no preset called {preset!r}.")
        form = GridForm.from_preset(PRESETS_BY_SLUG[preset], size=_default_size(services))
    else:
        form = GridForm.blank(size=_default_size(services))
    context = _form_context(services, form)
    context["plan"] = _plan_or_errors(services, form)
    return templates.TemplateResponse(request, "grid_new.html", context)


def _default_size(services: Services) -> str | None:
    return default_size(services.rules.in_force().rules)


def _plan_or_errors(services: Services, form: GridForm) -> Any:
    """The plan of what the form asks for; its problems go to `form.errors` instead."""
    try:
        return services.grids.plan(form.to_request(), token=form.token)
    except InvalidParameters as invalid:
        form.errors = {**invalid.field_errors, **form.errors}
        return None


@router.post("/grids/plan", response_class=HTMLResponse)
async def plan_fragment(
    request: Request, services: ServicesDep, templates: TemplatesDep
) -> Response:
    """The count and the cost of what the form asks for, as it is typed: nothing is sent."""
    posted = await request.form()
    form = GridForm.from_post(posted, getlist=posted.getlist)
    plan = await run_in_threadpool(_plan_or_errors, services, form)
    return templates.TemplateResponse(
        request, "partials/_grid_plan.html", {"form": form, "plan": plan}
    )


@router.post("/grids", response_class=HTMLResponse)
async def create_grid(request: Request, services: ServicesDep, templates: TemplatesDep) -> Response:
    posted = await request.form()
    form = GridForm.from_post(posted, getlist=posted.getlist)
    try:
        grid, _ = await services.grids.make(
            form.to_request(),
            token=form.token,
            idempotency_key=form.idempotency_key,
            user=current_user(request),
        )
    except InvalidParameters as invalid:
        form.errors = {**invalid.field_errors, **form.errors}
        context = await run_in_threadpool(_form_context, services, form)
        context.update(plan=None)
        if is_htmx(request):
            return templates.TemplateResponse(
                request,
                "partials/_grid_form.html",
                context,
                status_code=422,
                headers={"HX-Retarget": "#grid-form", "HX-Reswap": "outerHTML"},
            )
        return templates.TemplateResponse(request, "grid_new.html", context, status_code=422)
    assert grid.id is not None
    url = urls.grid_page(grid.id)
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


@router.get("/grids/{grid_id}", name="grid_page", response_class=HTMLResponse)
async def grid_page(
    grid_id: int, request: Request, services: ServicesDep, templates: TemplatesDep
) -> Response:
    view = await run_in_threadpool(lambda: grid_records.require_grid(services.db, grid_id=grid_id))
    services.grids.keep_going(view)
    columns, rows, tabs = grids.shape(view.grid.axes)
    return templates.TemplateResponse(
        request,
        "grid.html",
        {
            "view": view,
            "columns": columns,
            "rows": rows,
            "tabs": tabs,
            "sheet_shape": sheet_shape(view),
        },
    )


@router.get("/events/grids/{grid_id}")
async def grid_events(
    grid_id: int, services: ServicesDep, templates: TemplatesDep
) -> StreamingResponse:
    """The grid's cells as they change, until every one has finished."""
    await run_in_threadpool(lambda: grid_records.require_grid(services.db, grid_id=grid_id))
    sent: dict[int, grid_records.CellState] = {}

    async def send(states: dict[int, grid_records.CellState]) -> AsyncIterator[str]:
        changed = {position for position, state in states.items() if sent.get(position) != state}
        if changed:
            cells = await run_in_threadpool(render_cells, services, templates, grid_id, changed)
            sent.update((position, states[position]) for position in changed)
            yield format_event("cells", cells)

    return sse.event_stream(
        sse.follow(
            services.events,
            read=lambda: grid_records.cell_states(services.db, grid_id=grid_id),
            send=send,
            finished=lambda states: all(
                grid_records.state_finished(state) for state in states.values()
            ),
            closing=format_event("done", ""),
        )
    )


@router.get("/grids/{grid_id}/cells", response_class=HTMLResponse)
def grid_cells(grid_id: int, services: ServicesDep, templates: TemplatesDep) -> HTMLResponse:
    """The fallback when a page cannot stream: every cell and the progress, in one answer."""
    return HTMLResponse(render_cells(services, templates, grid_id, None))
