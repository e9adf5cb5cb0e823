"""Presets beyond loading one: the team's own (pages and JSON API), and trying all eight at once."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import anyio
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field

from app.core.errors import InvalidParameters, PlaygroundError, SubmissionFailed
from app.core.text import Line
from app.domain.parameters import GenerationParams
from app.domain.presets import PRESETS, Preset, preset_run
from app.features.jobs import reads
from app.features.jobs.submission import submit_job
from app.features.models import team_presets
from app.storage.db.tables import TeamPreset, User
from app.web import urls
from app.web.deps import (
    ActorDep,
    ServicesDep,
    TemplatesDep,
    client_ip,
    current_user,
    is_htmx,
)
from app.web.forms import GenerateForm, new_submission_token, posted_token
from app.web.schemas import TeamPresetPublic
from app.web.services import Services

router = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/api", tags=["api"])


# --- Try all presets -------------------------------------------------------------


@router.post("/playground/try-all", response_class=HTMLResponse)
async def try_all_presets(
    request: Request, services: ServicesDep, templates: TemplatesDep
) -> Response:
    """Submit every preset the rules in force allow at once; the answer is their comparison
    grid, and a message naming the presets skipped or run at another size.

    The confirming form carries a one-time token: confirming twice (or a resent
    request) gives back the same jobs, paid for once.
    """
    posted = await request.form()
    token = posted_token(posted)
    tried = await submit_all_presets(
        services, token=token, user=current_user(request), ip=client_ip(request)
    )
    if not is_htmx(request):
        return RedirectResponse(urls.playground() + "#comparison", status_code=303)
    items = await run_in_threadpool(
        lambda: [reads.get_job(services.db, job_id=job_id) for job_id in tried.job_ids]
    )
    headers: dict[str, str] = {} if tried.any_new else {"HX-Reswap": "none"}
    if tried.notes:
        # ASCII JSON: a header carries Latin-1 at most.
        headers["HX-Trigger"] = json.dumps(
            {"toast": {"message": " ".join(tried.notes), "kind": "info"}}
        )
    return templates.TemplateResponse(
        request,
        "partials/_comparison.html",
        {
            "entries": list(zip(tried.presets, items, strict=True)),
            "try_all_token": new_submission_token(),
            "refresh_token": True,
        },
        headers=headers,
    )


@dataclass
class TriedPresets:
    """What trying every preset made: a job for each preset that could run (in order), and
    a sentence for each one skipped or run at another size than its own."""

    presets: list[Preset] = field(default_factory=list)
    job_ids: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    any_new: bool = False


async def submit_all_presets(
    services: Services, *, token: str, user: User | None = None, ip: str | None = None
) -> TriedPresets:
    """One job per preset the rules in force allow, submitted side by side; a refused one
    still has its (failed) job. A preset those rules leave no run (a live schema with none
    of the sizes, or a prompt too long for it) is skipped and named: the others still run.
    """
    model = services.settings.model
    rules = (await services.rules.for_submission(model)).rules
    tried = TriedPresets()
    runs: list[tuple[Preset, GenerationParams]] = []
    for preset in PRESETS:
        run = preset_run(preset, rules)
        if run.params is None:
            tried.notes.append(f"Skipped {run.note}.")
            continue
        problems = rules.check(run.params.values())
        if problems:
            field_name, problem = next(iter(problems.items()))
            tried.notes.append(f"Skipped {preset.name}: its {field_name} {problem}.")
            continue
        if run.note:
            tried.notes.append(f"{run.note}.")
        runs.append((preset, run.params))
    if not runs:
        raise InvalidParameters({"presets": "the rules in force allow none of the presets"})
    job_ids = [0] * len(runs)
    created = [False] * len(runs)
    # A refused key or a budget: kept, not raised in the task group, where it would become
    # an ExceptionGroup that no error handler answers (a 500).
    refusals: list[PlaygroundError] = []

    async def submit(index: int) -> None:
        preset, params = runs[index]
        try:
            job, created[index] = await submit_job(
                services.submitter,
                params=params,
                model=model,
                preset=preset.slug,
                idempotency_key=f"form:try-all:{token}:{preset.slug}",
                user=user,
                ip=ip,
            )
            assert job.id is not None
            job_ids[index] = job.id
        except SubmissionFailed as failure:
            job_ids[index] = failure.job_id
            created[index] = True
        except PlaygroundError as refused:
            refusals.append(refused)

    async with anyio.create_task_group() as group:
        for index in range(len(runs)):
            group.start_soon(submit, index)
    if refusals:
        raise refusals[0]
    tried.presets = [preset for preset, _ in runs]
    tried.job_ids = job_ids
    tried.any_new = any(created)
    return tried


# --- Team presets, for people ----------------------------------------------------


@router.post("/presets", response_class=HTMLResponse)
async def save_team_preset(
    request: Request, services: ServicesDep, templates: TemplatesDep
) -> Response:
    posted = await request.form()
    name = str(posted.get("name", "") or "")
    description = str(posted.get("description", "") or "")
    *_, errors = team_presets.clean_labels(name=name, description=description)
    form = GenerateForm.from_post(posted, model=services.settings.model)
    model = form.model if form.model_id_is_valid() else services.settings.model
    rules = (await services.rules.for_submission(model)).rules
    try:
        body = form.to_params(rules).upstream_body()
    except InvalidParameters as exc:
        errors = {**errors, **exc.field_errors}
    if not errors:
        try:
            preset = await run_in_threadpool(
                lambda: team_presets.create_preset(
                    services.db,
                    name=name,
                    description=description,
                    parameters=body,
                    created_by=_user_id(request),
                    rules=rules,
                )
            )
        except InvalidParameters as exc:
            errors = exc.field_errors
    if errors:
        return templates.TemplateResponse(
            request,
            "partials/_save_preset_form.html",
            {"errors": errors, "name": name, "description": description},
            status_code=422,
            headers={"HX-Retarget": "#save-preset-form", "HX-Reswap": "outerHTML"},
        )
    trigger = {"preset-saved": {"name": preset.name}}
    return await _team_presets_fragment(
        request, services, templates, headers={"HX-Trigger": json.dumps(trigger)}
    )


@router.delete("/presets/{preset_id}", response_class=HTMLResponse)
async def delete_team_preset(
    preset_id: int,
    request: Request,
    services: ServicesDep,
    templates: TemplatesDep,
    actor: ActorDep,
) -> Response:
    await run_in_threadpool(
        lambda: team_presets.delete_preset(services.db, preset_id=preset_id, actor=actor)
    )
    return await _team_presets_fragment(request, services, templates)


def _user_id(request: Request) -> int | None:
    user = current_user(request)
    return user.id if user is not None else None


async def _team_presets_fragment(
    request: Request,
    services: Services,
    templates: Any,
    headers: dict[str, str] | None = None,
) -> Response:
    saved = await run_in_threadpool(lambda: team_presets.list_presets(services.db))
    response: Response = templates.TemplateResponse(
        request, "partials/_team_presets.html", {"team_presets": saved}, headers=headers
    )
    return response


# --- Team presets, JSON API ------------------------------------------------------


class TeamPresetCreate(BaseModel):
    """A name, a one-line description, and the run parameters under the upstream's names."""

    model_config = ConfigDict(extra="forbid")

    name: Line = Field(max_length=team_presets.NAME_MAX_CHARS, description="Shown on its card")
    description: Line = Field("", max_length=team_presets.DESCRIPTION_MAX_CHARS)
    parameters: GenerationParams


def team_preset_public(preset: TeamPreset) -> TeamPresetPublic:
    assert preset.id is not None
    params = team_presets.preset_params(preset)
    return TeamPresetPublic(
        id=preset.id,
        name=preset.name,
        description=preset.description,
        parameters=params,
        estimated_credits=params.estimated_credits,
        created_at=preset.created_at,
    )


@api_router.get("/team-presets", response_model=list[TeamPresetPublic])
def list_team_presets(services: ServicesDep) -> list[TeamPresetPublic]:
    return [team_preset_public(preset) for preset in team_presets.list_presets(services.db)]


@api_router.post("/team-presets", status_code=201, response_model=TeamPresetPublic)
def create_team_preset(
    body: TeamPresetCreate, request: Request, services: ServicesDep
) -> TeamPresetPublic:
    try:
        preset = team_presets.create_preset(
            services.db,
            name=body.name,
            description=body.description,
            parameters=body.parameters.values(),
            created_by=_user_id(request),
            rules=services.rules.in_force().rules,
        )
    except InvalidParameters as exc:
        # Named where the request has them, under `parameters`; a clash stays a clash (409).
        labels = ("name", "description")
        raise type(exc)(
            {
                name if name in labels else f"parameters.{name}": message
                for name, message in exc.field_errors.items()
            }
        ) from None
    return team_preset_public(preset)


@api_router.get("/team-presets/{preset_id}", response_model=TeamPresetPublic)
def get_team_preset(preset_id: int, services: ServicesDep) -> TeamPresetPublic:
    return team_preset_public(team_presets.get_preset(services.db, preset_id=preset_id))


@api_router.delete("/team-presets/{preset_id}", status_code=204)
def remove_team_preset(preset_id: int, services: ServicesDep, actor: ActorDep) -> Response:
    team_presets.delete_preset(services.db, preset_id=preset_id, actor=actor)
    return Response(status_code=204)
