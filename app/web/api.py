"""The JSON API, under /api, described in the OpenAPI schema at /docs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.core.errors import InvalidParameters, NotFoundError, OverBudget
from app.core.model_id import ModelId
from app.core.text import Line, Text
from app.domain.model_params import RunParams
from app.domain.parameters import NUM_IMAGES_MAX, UPSTREAM_FIELDS, GenerationParams
from app.domain.presets import PRESETS, PRESETS_BY_SLUG, preset_run
from app.domain.rules import form_limits, offered_sizes
from app.domain.runs import REFERENCES_MAX, check_run, parse_run
from app.features.jobs import creation, reads, timing
from app.features.jobs.submission import rules_for_run, submit_job
from app.features.models.live_rules import RulesInForce
from app.features.people.budgets import BudgetExceeded, check_budget_before
from app.storage.db.tables import ROW_ID_MAX
from app.web import urls
from app.web.deps import ClientIP, CurrentUser, ServicesDep
from app.web.errors import SUBMISSION_ERRORS
from app.web.paging import IdCursorQuery, id_cursor, next_link
from app.web.schemas import JobPage, JobPublic, PresetPublic
from app.web.services import Services
from app.web.views import job_page_json, job_public, preset_public

router = APIRouter(prefix="/api", tags=["api"])

IDEMPOTENCY_KEY_MAX = 190  # stored with a short prefix in a 200-character column


class JobCreate(GenerationParams):
    """A run: its parameters, plus which model, preset and references to record.

    For Seedream (`seedream-4`) the parameters are the fields below; the limits shown
    are the built-in rules, and PixelDojo's live schema wins where it speaks (GET
    /api/rules says what is in force). Any other model takes the fields its own schema
    names, as they are (GET /api/models lists the models, GET /api/rules?model= their
    fields).
    """

    model_config = ConfigDict(extra="allow")

    prompt: Text | None = Field(  # type: ignore[assignment]
        None, description="What to draw; required by Seedream (and most models)"
    )
    model: ModelId | None = Field(None, description="Model apiId; default: the configured one")
    preset: str | None = Field(
        None,
        description="Slug of the preset the request came from",
        json_schema_extra={"enum": [*PRESETS_BY_SLUG, None]},
    )
    remix_of: int | None = Field(
        None, ge=1, le=ROW_ID_MAX, description="The job this one is a remix of"
    )
    remix_image: int | None = Field(
        None, ge=0, lt=NUM_IMAGES_MAX, description="With remix_of: which of its images (from 0)"
    )
    reference_images: list[Annotated[int, Field(ge=1, le=ROW_ID_MAX)]] = Field(
        default_factory=list,
        max_length=REFERENCES_MAX,
        description="Gallery image ids sent as reference images, in order, through the "
        "model's image input (refused for a model that has none; the number allowed is its "
        "schema's maxItems)",
    )

    @field_validator("prompt")
    @classmethod
    def _prompt_trimmed(cls, prompt: str | None) -> str | None:  # type: ignore[override]
        return prompt.strip() if prompt is not None else None

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, slug: str | None) -> str | None:
        if slug is not None and slug not in PRESETS_BY_SLUG:
            raise ValueError(f"unknown preset; one of: {', '.join(PRESETS_BY_SLUG)}")
        return slug

    def run_values(self) -> dict[str, Any]:
        """The run's parameters as given: the record's fields that were set, and any other
        field (another model's own)."""
        given = {
            name: getattr(self, name) for name in UPSTREAM_FIELDS if name in self.model_fields_set
        }
        return {**given, **(self.model_extra or {})}


async def run_of(services: Services, body: JobCreate) -> tuple[str, RunParams, RulesInForce]:
    """The model, the run read for it (Seedream's record, or another model's values), and
    the rules it is checked against."""
    model = body.model or services.settings.model
    in_force = await rules_for_run(services.submitter, model)
    params = parse_run(
        body.run_values(), builtin_record=in_force.builtin_form, rules=in_force.rules
    )
    return model, params, in_force


class ImageInputPublic(BaseModel):
    field: str = Field(description="The schema's field the references are sent in")
    min_items: int
    max_items: int
    required: bool


class RulesPublic(BaseModel):
    """The rules a model's runs are checked against, and where they came from."""

    model: str
    source: str = Field(description="live, last good copy, or built-in")
    label: str = Field(description="As the playground shows it")
    fetched_at: datetime | None = Field(description="When the live schema in force was read")
    problem: str | None = Field(description="Why the latest read of the schema failed")
    sizes: list[str] = Field(description="The image sizes a run may ask for")
    limits: dict[str, Any] = Field(description="The form's limits under these rules")
    differences: list[str] = Field(description="How the live schema differs from the built-in")
    form: str = Field(description="seedream: the hand-made form; schema: rendered from its schema")
    fields: dict[str, dict[str, Any]] = Field(
        description="Each field of the run body and its rules, as read from the schema"
    )
    image_input: ImageInputPublic | None = Field(
        description="Where the model takes reference images; None: it takes none"
    )


@router.get("/rules", response_model=RulesPublic)
def rules_in_force(
    services: ServicesDep,
    model: Annotated[ModelId | None, Query(description="Default: the configured model")] = None,
) -> RulesPublic:
    """What is in force now; nothing is read from PixelDojo and nothing is written (a model
    never read answers with the built-in rules: POST reads it first)."""
    return _rules_public(services.rules.in_force(model or services.settings.model))


class RulesAsked(BaseModel):
    model: ModelId | None = Field(None, description="Default: the configured model")


@router.post("/rules", response_model=RulesPublic)
async def rules_read_first(body: RulesAsked, services: ServicesDep) -> RulesPublic:
    """The rules a run of this model would be checked against: a model the catalogue lists
    but never read is read from PixelDojo first, as a run of it would be (a POST, so no
    link or image on another site can make the app read or keep a name)."""
    return _rules_public(await services.rules.for_submission(body.model or services.settings.model))


def _rules_public(in_force: RulesInForce) -> RulesPublic:
    return RulesPublic(
        model=in_force.model,
        source=in_force.source,
        label=in_force.label(),
        fetched_at=in_force.fetched_at,
        problem=in_force.problem,
        sizes=offered_sizes(in_force.rules),
        limits=form_limits(in_force.rules),
        differences=[change.text for change in in_force.differences()],
        form="seedream" if in_force.builtin_form else "schema",
        fields={name: dict(prop) for name, prop in in_force.rules.properties.items()},
        image_input=ImageInputPublic(
            field=found.name,
            min_items=found.min_items,
            max_items=found.max_items,
            required=found.required,
        )
        if (found := in_force.image_input) is not None
        else None,
    )


class ModelPublic(BaseModel):
    api_id: str
    name: str
    description: str
    modality: str | None
    credits: float | None = Field(description="What a run costs, per image unless per_job")
    per_job: bool = Field(description="Whether the cost is per job rather than per image")
    cost: str = Field(description="The cost in words: `1 credit per image`, `cost unknown`")
    default: bool = Field(description="The playground's default model (PLAYGROUND_MODEL)")


class ModelsPublic(BaseModel):
    """The upstream's image models, the default first, then by name."""

    models: list[ModelPublic]
    source: str = Field(description="live, last good copy, or none (never read)")
    fetched_at: datetime | None
    problem: str | None = Field(description="Why the latest read of the catalogue failed")


@router.get("/models", response_model=ModelsPublic)
def list_models(services: ServicesDep) -> ModelsPublic:
    """PixelDojo's image models with their cost (from its `GET /models`, read at start and
    every PLAYGROUND_SCHEMA_REFRESH_MINUTES, the last good copy kept)."""
    catalogue = services.catalogue.in_force()
    default = services.settings.model
    return ModelsPublic(
        models=[
            ModelPublic(
                api_id=model.api_id,
                name=model.name,
                description=model.description,
                modality=model.modality,
                credits=model.credits,
                per_job=model.per_job,
                cost=model.cost_label(),
                default=model.api_id == default,
            )
            for model in catalogue.image_models(first=[default])
        ],
        source=catalogue.source,
        fetched_at=catalogue.fetched_at,
        problem=catalogue.problem,
    )


@router.get("/presets", response_model=list[PresetPublic])
def list_presets(services: ServicesDep) -> list[PresetPublic]:
    """The presets as the rules in force for the configured model let them run."""
    rules = services.rules.in_force().rules
    return [preset_public(preset_run(preset, rules)) for preset in PRESETS]


def _remix_source(body: JobCreate) -> creation.RemixSource | None:
    if body.remix_of is None:
        if body.remix_image is not None:
            raise InvalidParameters({"remix_image": "needs remix_of, the job it belongs to"})
        return None
    return creation.RemixSource(job_id=body.remix_of, image_index=body.remix_image)


@router.post("/jobs", status_code=202, response_model=JobPublic, responses=SUBMISSION_ERRORS)
async def create_job(
    body: JobCreate,
    services: ServicesDep,
    user: CurrentUser,
    ip: ClientIP,
    response: Response,
    idempotency_key: Annotated[
        Line | None,
        Header(
            min_length=1,
            max_length=IDEMPOTENCY_KEY_MAX,
            description="Send the same key again and you get the same job, and pay once",
        ),
    ] = None,
) -> JobPublic:
    model, params, _ = await run_of(services, body)
    job, created = await submit_job(
        services.submitter,
        params=params,
        model=model,
        preset=body.preset,
        idempotency_key=f"api:{idempotency_key}" if idempotency_key else None,
        user=user,
        ip=ip,
        remix_of=_remix_source(body),
        reference_images=body.reference_images,
    )
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    assert job.id is not None
    response.headers["Location"] = urls.job_api(job.id)
    return await run_in_threadpool(_load_job, services, job.id)


# A batch is checked whole before its first job; larger ones are checked in parts.
CHECK_MAX_JOBS = 1000


class JobBatch(BaseModel):
    jobs: list[JobCreate] = Field(min_length=1, max_length=CHECK_MAX_JOBS)


class BatchCheck(BaseModel):
    jobs: int
    images: int
    estimated_credits: float


@router.post("/jobs/check", response_model=BatchCheck)
async def check_jobs(body: JobBatch, services: ServicesDep, user: CurrentUser) -> BatchCheck:
    """Check jobs without submitting any: each against the rules, and all of them together
    against the person's budget. Errors name the job by its place in the list."""
    errors: dict[str, str] = {}
    images, credits = 0, 0.0
    catalogue = await run_in_threadpool(services.catalogue.in_force)
    for number, job in enumerate(body.jobs):
        try:
            model, params, in_force = await run_of(services, job)
            check_run(params, in_force.rules, references=len(job.reference_images))
        except InvalidParameters as invalid:
            errors.update({f"jobs.{number}.{f}": m for f, m in invalid.field_errors.items()})
            continue
        images += params.num_images
        credits += catalogue.estimate(model, params.num_images)
    if errors:
        raise InvalidParameters(errors)
    try:
        await run_in_threadpool(
            lambda: check_budget_before(
                services.db, user=user, cost=credits, what=f"These {len(body.jobs)} jobs"
            )
        )
    except BudgetExceeded as over:
        raise OverBudget(over.message) from None
    return BatchCheck(jobs=len(body.jobs), images=images, estimated_credits=credits)


@router.get("/jobs", response_model=JobPage)
def list_jobs(
    request: Request,
    services: ServicesDep,
    cursor: IdCursorQuery = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Response:
    page, next_cursor = reads.list_jobs(services.db, before_id=id_cursor(cursor), limit=limit)
    # Serialised here, in the worker thread the query ran in: returning a model would
    # have FastAPI check it again, in another thread hop (app/web/views.py).
    return Response(
        job_page_json(page, next_cursor),
        media_type="application/json",
        headers=next_link(request, next_cursor),
    )


# `:int`: /api/jobs/check is another address, whatever the method asked of it.
@router.get("/jobs/{job_id:int}", name="get_job", response_model=JobPublic)
def get_job(job_id: int, services: ServicesDep) -> JobPublic:
    return _load_job(services, job_id)


def _load_job(services: Services, job_id: int) -> JobPublic:
    item = reads.get_job(services.db, job_id=job_id)
    if item is None:
        raise NotFoundError(f"There is no job {job_id}.")
    answer = job_public(item)
    if not answer.finished:
        # What a waiting client shows beside its clock ("0:23 of about 0:30").
        typical = timing.typical_seconds(services.db, models=[answer.model])
        answer.typical_seconds = typical.get(answer.model)
    return answer
