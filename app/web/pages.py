"""The browser pages: playground, job, gallery. htmx requests get the partial they swap."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.core.errors import InvalidParameters, NotFoundError, SubmissionFailed, UpstreamBusy
from app.core.model_id import ModelId
from app.domain.parameters import NUM_IMAGES_MAX
from app.domain.presets import PRESETS, PRESETS_BY_SLUG
from app.domain.runs import REFERENCES_FIELD
from app.features.gallery import listing as gallery
from app.features.gallery import lookups
from app.features.grids import records as grid_records
from app.features.jobs import reads, timing
from app.features.jobs.submission import submit_job
from app.features.models import team_presets
from app.features.models.key_status import CHECK_MAX_WAIT_SECONDS
from app.features.models.live_rules import RulesInForce
from app.storage.db.tables import ROW_ID_MAX
from app.upstream import AuthenticationFailed, LocalRateLimit, UpstreamError
from app.web import urls
from app.web.deps import ServicesDep, TemplatesDep, client_ip, current_user, is_htmx
from app.web.forms import GenerateForm, new_submission_token
from app.web.redirects import back
from app.web.services import Services

router = APIRouter(include_in_schema=False)

RECENT_JOBS_ON_PLAYGROUND = 12


def _form_for(
    services: ServicesDep,
    preset: str | None,
    team_preset: int | None = None,
    remix: int | None = None,
    image: int | None = None,
    model: str | None = None,
) -> GenerateForm:
    model = model or services.settings.model
    if remix is not None:
        # Remix: the playground filled in with an earlier job's parameters.
        source = _job_or_404(services, remix).job
        if image is not None and image >= source.num_images:
            raise NotFoundError(f"Job {remix} has no image {image + 1}.")
        form = GenerateForm.from_job(source, image_index=image)
    elif team_preset is not None:
        saved = team_presets.get_preset(services.db, preset_id=team_preset)
        form = GenerateForm.from_params(team_presets.preset_params(saved), model=model)
    elif preset is None:
        return GenerateForm.blank(model=model, rules=services.rules.in_force(model).rules)
    elif preset not in PRESETS_BY_SLUG:
        raise NotFoundError(f"There is no preset called {preset!r}.")
    else:
        rules = services.rules.in_force(model).rules
        form = GenerateForm.from_preset(PRESETS_BY_SLUG[preset], model=model, rules=rules)
    # Parameters from before (a remix, a saved preset) may ask what the rules in force no
    # longer allow (a size PixelDojo dropped): say so now, not after pressing Generate.
    with contextlib.suppress(InvalidParameters):
        form.to_run(services.rules.in_force(form.model))
    return form


def _form_context(services: Services, form: GenerateForm) -> dict[str, Any]:
    """What the form partial shows: the form, and the presets that fill it in place."""
    return {
        "form": form,
        "team_presets": team_presets.list_presets(services.db),
        "preset_images": lookups.latest_preset_images(
            services.db, slugs=[preset.slug for preset in PRESETS]
        ),
    }


def _playground_context(services: Services, form: GenerateForm) -> dict[str, Any]:
    recent, _ = reads.list_jobs(services.db, limit=RECENT_JOBS_ON_PLAYGROUND)
    models = sorted({form.model, services.settings.model} | {item.job.model for item in recent})
    return {
        **_form_context(services, form),
        # The newest job shows large in the output; the others go in the strip below.
        "current": recent[0] if recent else None,
        "recent": recent[1:],
        "typical_seconds": timing.typical_seconds(services.db, models=models),
        "try_all_token": new_submission_token(),
    }


@router.get("/", name="playground", response_class=HTMLResponse)
async def playground(
    request: Request,
    services: ServicesDep,
    templates: TemplatesDep,
    preset: Annotated[str | None, Query()] = None,
    team_preset: Annotated[int | None, Query()] = None,
    remix: Annotated[
        int | None, Query(ge=1, le=ROW_ID_MAX, description="Job whose parameters fill the form")
    ] = None,
    image: Annotated[
        int | None,
        Query(ge=0, lt=NUM_IMAGES_MAX, description="With remix: which of its images (from 0)"),
    ] = None,
    model: Annotated[ModelId | None, Query(description="The model picked")] = None,
) -> Response:
    # What is stored only: a GET reads nothing upstream and writes nothing, whatever model it
    # names (a model never read asks for its schema by POST once shown:
    # app/features/models/live_rules.py).
    form = await run_in_threadpool(_form_for, services, preset, team_preset, remix, image, model)
    context = await run_in_threadpool(_playground_context, services, form)
    return templates.TemplateResponse(request, "playground.html", context)


@router.get("/playground/form", response_class=HTMLResponse)
async def playground_form(
    request: Request,
    services: ServicesDep,
    templates: TemplatesDep,
    preset: Annotated[str | None, Query()] = None,
    team_preset: Annotated[int | None, Query()] = None,
    remix: Annotated[int | None, Query(ge=1, le=ROW_ID_MAX)] = None,
    image: Annotated[int | None, Query(ge=0, lt=NUM_IMAGES_MAX)] = None,
    model: Annotated[ModelId | None, Query(description="The model picked")] = None,
    prompt: Annotated[str | None, Query(max_length=100_000)] = None,
) -> Response:
    """The form filled from a preset, a team preset or an earlier job, swapped in place; or
    the form of a model picked, the prompt and the references already given carried over
    (like the page, from what is stored: a model never read asks for its schema by POST)."""
    form = await run_in_threadpool(_form_for, services, preset, team_preset, remix, image, model)
    if preset is None and team_preset is None and remix is None:
        carried = request.query_params.get("param.prompt") or prompt
        if carried:
            form.values["prompt"] = carried
        form.references = [
            value for value in request.query_params.getlist(REFERENCES_FIELD) if value.strip()
        ]
    context = await run_in_threadpool(_form_context, services, form)
    return templates.TemplateResponse(request, "partials/_generate_form.html", context)


@router.post("/jobs", response_class=HTMLResponse)
async def submit_form(request: Request, services: ServicesDep, templates: TemplatesDep) -> Response:
    form = GenerateForm.from_post(await request.form(), model=services.settings.model)
    try:
        # Checked here too (submit_job checks again), so every wrong field shows at once.
        params = form.to_run(await _rules_for_form(services, form))
        remix_of = form.remix_source()
        job, created = await submit_job(
            services.submitter,
            params=params,
            model=form.model,
            preset=form.preset,
            idempotency_key=form.idempotency_key,
            user=current_user(request),
            ip=client_ip(request),
            remix_of=remix_of,
            reference_images=form.reference_ids(),
        )
        job_id = job.id
    except InvalidParameters as invalid:
        form.errors = {**invalid.field_errors, **form.errors}
        return await run_in_threadpool(_form_with_errors, request, services, templates, form)
    except SubmissionFailed as failure:
        created = True
        # The job exists and says what went wrong; show it like any other.
        job_id = failure.job_id
    assert job_id is not None
    if not is_htmx(request):
        return RedirectResponse(urls.job_page(job_id), status_code=303)
    headers = {} if created else {"HX-Reswap": "none"}
    item = await run_in_threadpool(lambda: reads.get_job(services.db, job_id=job_id))
    return templates.TemplateResponse(
        request,
        "partials/_submitted.html",
        {"item": item, "next_token": new_submission_token()},
        headers=headers,
    )


async def _rules_for_form(services: Services, form: GenerateForm) -> RulesInForce:
    model = form.model if form.model_id_is_valid() else services.settings.model
    return await services.rules.for_submission(model)


def _form_with_errors(
    request: Request, services: ServicesDep, templates: TemplatesDep, form: GenerateForm
) -> Response:
    if is_htmx(request):
        return templates.TemplateResponse(
            request,
            "partials/_generate_form.html",
            _form_context(services, form),
            status_code=422,
            headers={"HX-Retarget": "#generate-form", "HX-Reswap": "outerHTML"},
        )
    return templates.TemplateResponse(
        request, "playground.html", _playground_context(services, form), status_code=422
    )


def _job_or_404(services: ServicesDep, job_id: int) -> gallery.JobWithImages:
    item = reads.get_job(services.db, job_id=job_id)
    if item is None:
        raise NotFoundError(f"There is no job {job_id}.")
    return item


@router.get("/jobs/{job_id}", name="job_page", response_class=HTMLResponse)
def job_page(
    job_id: int, request: Request, services: ServicesDep, templates: TemplatesDep
) -> Response:
    item = _job_or_404(services, job_id)
    grid_cell = grid_records.grid_of_job(services.db, job_id=job_id)
    return templates.TemplateResponse(request, "job.html", {"item": item, "grid_cell": grid_cell})


@router.get("/jobs/{job_id}/card", response_class=HTMLResponse)
def job_card(
    job_id: int, request: Request, services: ServicesDep, templates: TemplatesDep
) -> Response:
    item = _job_or_404(services, job_id)
    return templates.TemplateResponse(request, "partials/_job_card.html", {"item": item})


@router.post("/upstream/rules/refresh", response_class=HTMLResponse)
async def refresh_rules(
    request: Request, services: ServicesDep, templates: TemplatesDep
) -> Response:
    """Read PixelDojo's schema for the form's model now; answers the form under the new rules.
    The form asks on its own for a model never read (a model the catalogue does not list is
    not read: app/features/models/live_rules.py)."""
    form = GenerateForm.from_post(await request.form(), model=services.settings.model)
    if not form.model_id_is_valid():
        form.model = services.settings.model
    await services.rules.read_on_request(form.model)
    if not is_htmx(request):
        back = request.headers.get("referer") or "/"
        return RedirectResponse(back if back.startswith(str(request.base_url)) else "/", 303)
    context = await run_in_threadpool(_form_context, services, form)
    # Asked once: a read that did not finish in time is not asked for again in a loop.
    context["rules_asked"] = True
    return templates.TemplateResponse(request, "partials/_generate_form.html", context)


@router.post("/upstream/check-key", response_class=HTMLResponse)
async def check_key(request: Request, services: ServicesDep) -> Response:
    """Ask PixelDojo whether the key works now; lifts the block on submissions if so. The
    check spends the key's rate budget like any call: with no room soon, nothing is sent."""
    try:
        await services.client.check_key(max_wait=CHECK_MAX_WAIT_SECONDS)
    except LocalRateLimit as busy:
        raise UpstreamBusy(busy.message, retry_after=busy.retry_after) from None
    except AuthenticationFailed as refused:
        message = refused.message
        await run_in_threadpool(lambda: services.key_health.refused(message))
    except UpstreamError:
        pass  # PixelDojo is unreachable or unwell: that says nothing about the key
    else:
        await run_in_threadpool(services.key_health.accepted)
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Refresh": "true"})
    return RedirectResponse(back(request, None), 303)
