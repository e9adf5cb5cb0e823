"""The gallery's JSON API: search, images, favourites, downloads, usage (collections and
the trash have routers of their own: app/web/collections_api.py, app/web/trash_api.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from app.core.errors import InvalidParameters, NotFoundError
from app.domain.code_examples import code_examples, run_url
from app.features.gallery import boards, lookups
from app.features.gallery import listing as gallery
from app.features.gallery.compare import COMPARE_MAX, compare_entries, compare_rows
from app.features.gallery.downloads import (
    ZIP_MAX_IMAGES,
    image_download,
    jobs_for,
    zip_selection,
    zip_stream,
)
from app.features.gallery.image_metadata import file_stem, sidecar_bytes
from app.features.gallery.listing import GalleryEntry
from app.features.gallery.usage import usage, usage_range
from app.features.jobs import reads
from app.features.jobs.again import submit_new_seed
from app.storage.db.tables import Job
from app.web import urls
from app.web.conditional import bytes_answer
from app.web.deps import ClientIP, CurrentUser, ServicesDep
from app.web.errors import SUBMISSION_ERRORS
from app.web.gallery_params import (
    DAY_SCHEMA,
    FILTERS_OPENAPI,
    PAGE_OPENAPI,
    FiltersDep,
    GalleryQueryDep,
    ImageIdItem,
    optional_day,
)
from app.web.gallery_views import (
    CollectionRef,
    ComparePublic,
    CountAnswer,
    FavouriteUpdate,
    GalleryImage,
    GalleryImageDetail,
    GalleryImagePage,
    ReproducePublic,
    UsagePublic,
    compare_row_public,
    gallery_image,
    gallery_page_json,
    usage_public,
)
from app.web.paging import IdCursorQuery, id_cursor, next_link
from app.web.schemas import JobPage, JobPublic
from app.web.services import Services
from app.web.views import image_headers, job_page_json, job_public

router = APIRouter(prefix="/api", tags=["gallery"])


def _image(services: Services, entry: GalleryEntry) -> GalleryImage:
    return gallery_image(entry, trash_days=services.settings.trash_days)


def _entry_or_404(services: Services, image_id: int) -> GalleryEntry:
    entry = lookups.get_entry(services.db, image_id=image_id)
    if entry is None:
        raise NotFoundError(f"There is no image {image_id}.")
    return entry


def _job_or_404(services: Services, job_id: int) -> Job:
    job = lookups.get_job_detail(services.db, job_id=job_id)
    if job is None:
        raise NotFoundError(f"There is no job {job_id}.")
    return job


def reproduce_for(services: Services, job: Job) -> ReproducePublic:
    base_url = services.settings.pixeldojo_base_url
    examples = {
        example.slug: example.code
        for example in code_examples(base_url=base_url, model=job.model, body=job.request_body)
    }
    return ReproducePublic(
        url=run_url(base_url, job.model),
        body=job.request_body,
        curl=examples["curl"],
        python=examples["python"],
        javascript=examples["javascript"],
    )


def image_detail(services: Services, entry: GalleryEntry) -> GalleryImageDetail:
    job = _job_or_404(services, entry.job_id)
    summary = _image(services, entry)
    return GalleryImageDetail(
        **summary.model_dump(),
        author=lookups.author_of(services.db, user_id=job.user_id),
        upstream_job_id=job.upstream_job_id,
        submitted_at=job.submitted_at,
        finished_at=job.finished_at,
        collections=[
            CollectionRef(id=cid, name=name)
            for cid, name in boards.boards_of(services.db, image_id=entry.image_id)
        ],
        reproduce=reproduce_for(services, job),
    )


# --- Finding -----------------------------------------------------------------------------


@router.get("/gallery", response_model=GalleryImagePage, openapi_extra=PAGE_OPENAPI)
def search(request: Request, services: ServicesDep, query: GalleryQueryDep) -> Response:
    """Images newest first, narrowed by the filters; pass `next_cursor` for the next page."""
    page = gallery.search_images(
        services.db, filters=query.filters, cursor=query.cursor, limit=query.limit
    )
    answer = gallery_page_json(
        page.items,
        str(page.next_cursor) if page.next_cursor else None,
        trash_days=services.settings.trash_days,
    )
    # Serialised here, in the worker thread the query ran in (app/web/views.py).
    return Response(
        answer, media_type="application/json", headers=next_link(request, page.next_cursor)
    )


@router.get("/gallery/jobs", response_model=JobPage, openapi_extra=FILTERS_OPENAPI)
def search_jobs(
    request: Request,
    services: ServicesDep,
    filters: FiltersDep,
    cursor: IdCursorQuery = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Response:
    """Jobs (any status) narrowed by the same filters: failed, unknown and running ones too."""
    page, next_cursor = gallery.search_jobs(
        services.db, filters=filters, before_id=id_cursor(cursor), limit=limit
    )
    return Response(
        job_page_json(page, next_cursor),
        media_type="application/json",
        headers=next_link(request, next_cursor),
    )


@router.get("/gallery/images/{image_id}", response_model=GalleryImageDetail)
def get_image_detail(image_id: int, services: ServicesDep) -> GalleryImageDetail:
    """An image with every parameter, its run, its collections and the request that made it."""
    return image_detail(services, _entry_or_404(services, image_id))


# --- Favourites --------------------------------------------------------------------------


@router.put("/gallery/images/{image_id}/favourite", response_model=GalleryImage)
def star(image_id: int, services: ServicesDep) -> GalleryImage:
    _entry_or_404(services, image_id)
    lookups.set_favourite(services.db, image_ids=[image_id], favourite=True)
    return _image(services, _entry_or_404(services, image_id))


@router.delete("/gallery/images/{image_id}/favourite", response_model=GalleryImage)
def unstar(image_id: int, services: ServicesDep) -> GalleryImage:
    _entry_or_404(services, image_id)
    lookups.set_favourite(services.db, image_ids=[image_id], favourite=False)
    return _image(services, _entry_or_404(services, image_id))


@router.post("/gallery/favourites", response_model=CountAnswer)
def star_many(body: FavouriteUpdate, services: ServicesDep) -> CountAnswer:
    """Star (or with `favourite: false` unstar) several images at once."""
    count = lookups.set_favourite(services.db, image_ids=body.image_ids, favourite=body.favourite)
    return CountAnswer(count=count)


# --- Reuse -------------------------------------------------------------------------------


@router.get("/jobs/{job_id}/request", response_model=ReproducePublic)
def reproduce(job_id: int, services: ServicesDep) -> ReproducePublic:
    """The upstream request that made the job, as curl and Python; the key is a placeholder."""
    return reproduce_for(services, _job_or_404(services, job_id))


@router.post(
    "/jobs/{job_id}/new-seed",
    status_code=202,
    response_model=JobPublic,
    responses=SUBMISSION_ERRORS,
)
async def same_prompt_new_seed(
    job_id: int,
    services: ServicesDep,
    response: Response,
    user: CurrentUser,
    ip: ClientIP,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=100,
            description="Send the same key again and you get the same job, and pay once",
        ),
    ] = None,
) -> JobPublic:
    """Submit the job's parameters again at once, with a new random seed (recorded)."""
    job, created = await submit_new_seed(
        services.submitter, job_id, token=idempotency_key, user=user, ip=ip
    )
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    assert job.id is not None
    new_id = job.id
    response.headers["Location"] = urls.job_api(new_id)

    def load() -> JobPublic:
        item = reads.get_job(services.db, job_id=new_id)
        assert item is not None
        return job_public(item)

    return await run_in_threadpool(load)


# --- Compare -----------------------------------------------------------------------------


def _unique(ids: list[int]) -> list[int]:
    if len(set(ids)) != len(ids):
        raise InvalidParameters({"ids": "name each image once"})
    return ids


@router.get("/compare", response_model=ComparePublic)
def compare(
    services: ServicesDep,
    ids: Annotated[
        list[ImageIdItem],
        Query(
            min_length=2,
            max_length=COMPARE_MAX,
            description="Two or more image ids, each once",
            json_schema_extra={"uniqueItems": True},
        ),
    ],
) -> ComparePublic:
    """Images side by side, with the parameters that differ between them marked."""
    entries = compare_entries(services.db, _unique(ids))
    jobs = jobs_for(services.db, entries)
    return ComparePublic(
        images=[_image(services, entry) for entry in entries],
        rows=[compare_row_public(row) for row in compare_rows(entries, jobs)],
    )


# --- Taking images away ------------------------------------------------------------------


def _attachment(name: str) -> str:
    return f'attachment; filename="{name}"'


@router.get(
    "/images/{image_id}/download",
    name="download_image",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}}},
        206: {"description": "The bytes the Range asked for"},
        304: {"description": "Not modified: the If-None-Match ETag is this download's"},
        416: {"description": "The Range names no byte of the download"},
    },
)
def download_image(image_id: int, request: Request, services: ServicesDep) -> Response:
    """The image as a file, its parameters embedded (PNG text chunks `parameters`, `seedream`)."""
    entry = _entry_or_404(services, image_id)
    job = _job_or_404(services, entry.job_id)
    download = image_download(
        services.blobs, entry, job, base_url=services.settings.pixeldojo_base_url
    )
    return bytes_answer(
        request,
        etag=download.etag,
        length=download.length,
        chunks=lambda: download.chunks,
        headers={
            **image_headers(image_id, download.content_type),
            "Content-Disposition": _attachment(download.name),
        },
    )


@router.get(
    "/images/{image_id}/sidecar",
    name="download_sidecar",
    responses={200: {"content": {"application/json": {}}}},
)
def download_sidecar(image_id: int, services: ServicesDep) -> Response:
    """The image's parameters and provenance as a JSON file."""
    entry = _entry_or_404(services, image_id)
    job = _job_or_404(services, entry.job_id)
    return Response(
        sidecar_bytes(entry, job, base_url=services.settings.pixeldojo_base_url),
        media_type="application/json",
        headers={"Content-Disposition": _attachment(f"{file_stem(entry)}.json")},
    )


@router.get(
    "/zip",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/zip": {}}}},
    openapi_extra=FILTERS_OPENAPI,
)
def download_zip(
    services: ServicesDep,
    filters: FiltersDep,
    ids: Annotated[
        list[ImageIdItem] | None,
        Query(max_length=ZIP_MAX_IMAGES, description="Image ids; without them, the filters"),
    ] = None,
) -> Response:
    """A zip of a selection (`ids`), a collection or a search result (the filters), with
    each image's parameters embedded, a JSON sidecar each, and `manifest.json`."""
    chosen = zip_selection(services.db, ids or [], filters)
    jobs = jobs_for(services.db, chosen.entries)
    return StreamingResponse(
        zip_stream(
            services.blobs,
            chosen.entries,
            jobs,
            base_url=services.settings.pixeldojo_base_url,
            selection=chosen.selection,
        ),
        media_type="application/zip",
        headers={"Content-Disposition": _attachment(chosen.name)},
    )


# --- Usage -------------------------------------------------------------------------------


@router.get("/usage", response_model=UsagePublic)
def get_usage(
    services: ServicesDep,
    since: Annotated[
        str | None, Query(description="First day, YYYY-MM-DD (UTC)", json_schema_extra=DAY_SCHEMA)
    ] = None,
    until: Annotated[
        str | None, Query(description="Last day, YYYY-MM-DD (UTC)", json_schema_extra=DAY_SCHEMA)
    ] = None,
) -> UsagePublic:
    """Credits spent per day, per preset and per model, and the balance last reported."""
    first, last = usage_range(optional_day("since", since), optional_day("until", until))
    return usage_public(usage(services.db, since=first, until=last))
