"""Stop, undo a stop, retry: the buttons on a running job, a try-all comparison, a grid, and
a failed job. A page with htmx gets the changed cards (or cells) back to swap in place and a
toast with Undo; without it, the form goes back to the page it came from."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import escape

from app.core.errors import InvalidParameters, SubmissionFailed
from app.features.grids import records as grid_records
from app.features.grids import stopping as grid_stopping
from app.features.jobs import reads, stopping
from app.features.jobs.again import submit_again
from app.web import urls
from app.web.cards import render_cards, render_cells
from app.web.deps import ActorDep, ClientIP, CurrentUser, ServicesDep, TemplatesDep, is_htmx
from app.web.redirects import back

router = APIRouter(include_in_schema=False)

JobIds = Annotated[list[int] | None, Form(description="the jobs, by id")]


def _jobs(count: int) -> str:
    return f"{count} job{'' if count == 1 else 's'}"


def _toast(message: str, undo_url: str | None = None, ids: list[int] | None = None) -> str:
    """The toast that answers the button, as markup swapped into the page's toasts.

    Not an HX-Trigger header: that event starts at the button, and the live stream may have
    replaced the card holding it (with the same change) before this answer arrives; an event
    on a button no longer in the page reaches nobody. static/toasts.js shows it.
    """
    toast: dict[str, Any] = {"message": message}
    if undo_url is not None:
        toast["undo"] = {"url": undo_url, "ids": ids or []}
    return (
        '<div hx-swap-oob="beforeend:#toasts">'
        f'<p hidden data-toast="{escape(json.dumps(toast))}"></p></div>'
    )


def _ids(ids: list[int] | None) -> list[int]:
    chosen = list(dict.fromkeys(ids or []))
    if not chosen:
        raise InvalidParameters({"ids": "name at least one job"})
    return chosen


@router.post("/jobs/stop", response_class=HTMLResponse)
async def stop_jobs(
    request: Request,
    services: ServicesDep,
    templates: TemplatesDep,
    actor: ActorDep,
    ids: JobIds = None,
) -> Response:
    """Stop waiting for these jobs (one, or a try-all's eight); those not yet sent never are."""
    job_ids = _ids(ids)
    stopped = await run_in_threadpool(
        lambda: stopping.stop_jobs(services.db, actor=actor, job_ids=job_ids)
    )
    if not is_htmx(request):
        return RedirectResponse(back(request, None), status_code=303)
    if not stopped:
        toast = _toast("Nothing left to stop: they had finished.")
    else:
        named = f"job #{stopped[0]}" if len(stopped) == 1 else _jobs(len(stopped))
        message = (
            f"Stopped {named}. PixelDojo cannot cancel what it has begun: "
            "its images are still kept if they come"
        )
        toast = _toast(message, urls.resume_jobs(), stopped)
    cards = await run_in_threadpool(render_cards, services, templates, job_ids)
    return HTMLResponse(cards + toast)


@router.post("/jobs/resume", name="resume_jobs", response_class=HTMLResponse)
async def resume_jobs(
    request: Request,
    services: ServicesDep,
    templates: TemplatesDep,
    actor: ActorDep,
    ids: JobIds = None,
) -> Response:
    """Undo a stop: wait for the jobs again (those stopped before they were sent stay so)."""
    job_ids = _ids(ids)
    resumed = await run_in_threadpool(
        lambda: stopping.resume_jobs(services.db, actor=actor, job_ids=job_ids)
    )
    if not is_htmx(request):
        return RedirectResponse(back(request, None), status_code=303)
    if resumed:
        named = f"job #{resumed[0]}" if len(resumed) == 1 else _jobs(len(resumed))
        message = f"Waiting for {named} again"
    else:
        message = "Nothing to wait for again: those jobs were stopped before they were sent."
    cards = await run_in_threadpool(render_cards, services, templates, job_ids)
    return HTMLResponse(cards + _toast(message))


@router.post("/jobs/{job_id}/retry", response_class=HTMLResponse)
async def retry_job(
    job_id: int,
    request: Request,
    services: ServicesDep,
    templates: TemplatesDep,
    user: CurrentUser,
    ip: ClientIP,
    token: Annotated[str | None, Form(max_length=100)] = None,
) -> Response:
    """Submit a failed job's parameters again, seed included; at most once per token."""
    created = True
    try:
        job, created = await submit_again(
            services.submitter,
            job_id,
            new_seed=False,
            token=f"form:{token}" if token else None,
            user=user,
            ip=ip,
        )
        new_id = job.id
    except SubmissionFailed as failure:
        new_id = failure.job_id
    assert new_id is not None
    url = urls.job_page(new_id)
    if is_htmx(request) and urlsplit(request.headers.get("HX-Current-URL", "")).path == "/":
        # From the playground: the new job takes the output, as a new seed's does.
        item = await run_in_threadpool(lambda: reads.get_job(services.db, job_id=new_id))
        return templates.TemplateResponse(
            request,
            "partials/_job_card.html",
            {"item": item},
            headers={"HX-Retarget": "#output", "HX-Reswap": "innerHTML" if created else "none"},
        )
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


@router.post("/grids/{grid_id}/stop", response_class=HTMLResponse)
async def stop_grid(
    grid_id: int,
    request: Request,
    services: ServicesDep,
    templates: TemplatesDep,
    actor: ActorDep,
) -> Response:
    """Stop the grid's cells not yet sent; those sent run on."""
    stop = await run_in_threadpool(
        lambda: grid_stopping.stop_grid(services.db, actor=actor, grid_id=grid_id)
    )
    if not is_htmx(request):
        return RedirectResponse(urls.grid_page(grid_id), status_code=303)
    if stop.changed:
        message = (
            f"Stopped: {stop.changed} cell{'' if stop.changed == 1 else 's'} will not be sent "
            f"({stop.sent} sent before)"
        )
        toast = _toast(message, urls.resume_grid(grid_id))
    else:
        toast = _toast("Nothing left to stop: every cell was sent.")
    cells = await run_in_threadpool(render_cells, services, templates, grid_id, None)
    return HTMLResponse(cells + toast)


@router.post("/grids/{grid_id}/resume", name="resume_grid", response_class=HTMLResponse)
async def resume_grid(
    grid_id: int,
    request: Request,
    services: ServicesDep,
    templates: TemplatesDep,
    actor: ActorDep,
) -> Response:
    """Undo a stop: the stopped cells are sent after all."""
    resumed = await run_in_threadpool(
        lambda: grid_stopping.resume_grid(services.db, actor=actor, grid_id=grid_id)
    )
    if resumed.changed:
        services.grids.runner.start(grid_id)
    if not is_htmx(request):
        return RedirectResponse(urls.grid_page(grid_id), status_code=303)
    count = resumed.changed
    message = (
        f"Sending the {count} stopped cell{'' if count == 1 else 's'}"
        if count
        else "Nothing was stopped."
    )
    view = await run_in_threadpool(lambda: grid_records.require_grid(services.db, grid_id=grid_id))
    cells = await run_in_threadpool(render_cells, services, templates, grid_id, None)
    # The page's live stream ended with the stop: this one follows the cells sent now.
    stream = templates.get_template("partials/_grid_stream.html").render(view=view, oob=True)
    return HTMLResponse(cells + stream + _toast(message))
