"""The gallery's JSON API: search, images, favourites, collections, trash, downloads, usage."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from app import audit, boards, gallery, jobs, trash
from app.code_examples import code_examples, run_url
from app.compare import compare_rows
from app.downloads import ZIP_MAX_IMAGES, image_download, jobs_for, zip_stream
from app.errors import InvalidParameters, NotFoundError
from app.gallery import GalleryEntry, GalleryFilters
from app.image_metadata import file_stem, sidecar_bytes
from app.models import Job, JobPage, JobPublic, User, utcnow
from app.parameters import GenerationParams
from app.runs import with_known_seed
from app.services import Services
from app.submission import submit_job
from app.usage import usage
from app.web.deps import (
    ClientIP,
    CurrentUser,
    ServicesDep,
    client_ip,
    current_user,
    ensure_may_change,
)
from app.web.gallery_params import DEFAULT_LIMIT, CursorDep, FiltersDep, LimitQuery
from app.web.gallery_views import (
    CollectionCreate,
    CollectionPublic,
    CollectionRef,
    CollectionUpdate,
    ComparePublic,
    CountAnswer,
    FavouriteUpdate,
    GalleryImage,
    GalleryImageDetail,
    GalleryImagePage,
    ImageIds,
    ReproducePublic,
    UsagePublic,
    collection_public,
    compare_row_public,
    gallery_image,
    usage_public,
)
from app.web.views import image_headers, job_public

router = APIRouter(prefix="/api", tags=["gallery"])

USAGE_DEFAULT_DAYS = 30
USAGE_MAX_DAYS = 366


def _image(services: Services, entry: GalleryEntry) -> GalleryImage:
    return gallery_image(entry, trash_days=services.settings.trash_days)


def _entry_or_404(services: Services, image_id: int) -> GalleryEntry:
    entry = gallery.get_entry(services.db, image_id=image_id)
    if entry is None:
        raise NotFoundError(f"There is no image {image_id}.")
    return entry


def _job_or_404(services: Services, job_id: int) -> Job:
    job = gallery.get_job_detail(services.db, job_id=job_id)
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
        author=gallery.author_of(services.db, user_id=job.user_id),
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


@router.get("/gallery", response_model=GalleryImagePage)
def search(
    services: ServicesDep, filters: FiltersDep, cursor: CursorDep, limit: LimitQuery = DEFAULT_LIMIT
) -> Response:
    """Images newest first, narrowed by the filters; pass `next_cursor` for the next page."""
    page = gallery.search_images(services.db, filters=filters, cursor=cursor, limit=limit)
    answer = GalleryImagePage(
        items=[_image(services, entry) for entry in page.items],
        next_cursor=str(page.next_cursor) if page.next_cursor else None,
    )
    # Already validated on construction; serialising directly skips FastAPI's second pass.
    return Response(answer.model_dump_json(), media_type="application/json")


@router.get("/gallery/jobs", response_model=JobPage)
def search_jobs(
    services: ServicesDep,
    filters: FiltersDep,
    cursor: Annotated[
        int | None, Query(ge=1, description="next_cursor of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> JobPage:
    """Jobs (any status) narrowed by the same filters: failed, unknown and running ones too."""
    page, next_cursor = gallery.search_jobs(
        services.db, filters=filters, before_id=cursor, limit=limit
    )
    return JobPage(
        items=[job_public(item) for item in page],
        next_cursor=str(next_cursor) if next_cursor is not None else None,
    )


@router.get("/gallery/images/{image_id}", response_model=GalleryImageDetail)
def get_image_detail(image_id: int, services: ServicesDep) -> GalleryImageDetail:
    """An image with every parameter, its run, its collections and the request that made it."""
    return image_detail(services, _entry_or_404(services, image_id))


# --- Favourites --------------------------------------------------------------------------


@router.put("/gallery/images/{image_id}/favourite", response_model=GalleryImage)
def star(image_id: int, services: ServicesDep) -> GalleryImage:
    _entry_or_404(services, image_id)
    gallery.set_favourite(services.db, image_ids=[image_id], favourite=True)
    return _image(services, _entry_or_404(services, image_id))


@router.delete("/gallery/images/{image_id}/favourite", response_model=GalleryImage)
def unstar(image_id: int, services: ServicesDep) -> GalleryImage:
    _entry_or_404(services, image_id)
    gallery.set_favourite(services.db, image_ids=[image_id], favourite=False)
    return _image(services, _entry_or_404(services, image_id))


@router.post("/gallery/favourites", response_model=CountAnswer)
def star_many(body: FavouriteUpdate, services: ServicesDep) -> CountAnswer:
    """Star (or with `favourite: false` unstar) several images at once."""
    count = gallery.set_favourite(services.db, image_ids=body.image_ids, favourite=body.favourite)
    return CountAnswer(count=count)


# --- Reuse -------------------------------------------------------------------------------


@router.get("/jobs/{job_id}/request", response_model=ReproducePublic)
def reproduce(job_id: int, services: ServicesDep) -> ReproducePublic:
    """The upstream request that made the job, as curl and Python; the key is a placeholder."""
    return reproduce_for(services, _job_or_404(services, job_id))


async def submit_new_seed(
    services: Services,
    job_id: int,
    *,
    token: str | None = None,
    user: User | None = None,
    ip: str | None = None,
) -> tuple[Job, bool]:
    """Submit the job's parameters again with a new seed; at most once per token."""
    job = await run_in_threadpool(_job_or_404, services, job_id)
    key = f"new-seed:{job_id}:{token}" if token else None
    # The body it sent, with a seed drawn afresh: the key's own, so a repeat asks the same.
    params = GenerationParams.from_body(job.request_body).model_copy(update={"seed": None})
    rules = (await services.rules.for_submission(job.model)).rules
    params = with_known_seed(params, rules, key=key, avoid=job.seed)
    return await submit_job(
        services,
        params=params,
        model=job.model,
        preset=job.preset,
        idempotency_key=key,
        user=user,
        ip=ip,
        remix_of=jobs.RemixSource(job_id=job_id),
    )


@router.post("/jobs/{job_id}/new-seed", status_code=202, response_model=JobPublic)
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
    job, created = await submit_new_seed(services, job_id, token=idempotency_key, user=user, ip=ip)
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    assert job.id is not None
    new_id = job.id

    def load() -> JobPublic:
        item = jobs.get_job(services.db, job_id=new_id)
        assert item is not None
        return job_public(item)

    return await run_in_threadpool(load)


# --- Compare -----------------------------------------------------------------------------


@router.get("/compare", response_model=ComparePublic)
def compare(
    services: ServicesDep,
    ids: Annotated[list[int], Query(description="Two or more image ids")],
) -> ComparePublic:
    """Images side by side, with the parameters that differ between them marked."""
    entries = compare_entries(services, ids)
    jobs = jobs_for(services.db, entries)
    return ComparePublic(
        images=[_image(services, entry) for entry in entries],
        rows=[compare_row_public(row) for row in compare_rows(entries, jobs)],
    )


COMPARE_MAX = 12


def compare_entries(services: Services, ids: list[int]) -> list[GalleryEntry]:
    unique = list(dict.fromkeys(ids))
    if len(unique) < 2:
        raise InvalidParameters({"ids": "pick at least two images"})
    if len(unique) > COMPARE_MAX:
        raise InvalidParameters({"ids": f"compare at most {COMPARE_MAX} images at once"})
    entries = gallery.get_entries(services.db, image_ids=unique)
    missing = sorted(set(unique) - {entry.image_id for entry in entries})
    if missing:
        raise InvalidParameters({"ids": f"there is no image {', '.join(map(str, missing))}"})
    return entries


# --- Collections -------------------------------------------------------------------------


@router.get("/collections", response_model=list[CollectionPublic])
def list_collections(services: ServicesDep) -> list[CollectionPublic]:
    return [collection_public(board) for board in boards.list_boards(services.db)]


@router.post("/collections", status_code=201, response_model=CollectionPublic)
def create_collection(body: CollectionCreate, services: ServicesDep) -> CollectionPublic:
    board = boards.create_board(services.db, name=body.name, description=body.description)
    return collection_public(board)


@router.get("/collections/{collection_id}", response_model=CollectionPublic)
def get_collection(collection_id: int, services: ServicesDep) -> CollectionPublic:
    return collection_public(boards.get_board(services.db, collection_id=collection_id))


@router.patch("/collections/{collection_id}", response_model=CollectionPublic)
def update_collection(
    collection_id: int, body: CollectionUpdate, services: ServicesDep
) -> CollectionPublic:
    board = boards.update_board(
        services.db, collection_id=collection_id, name=body.name, description=body.description
    )
    return collection_public(board)


@router.delete("/collections/{collection_id}", status_code=204)
def delete_collection(collection_id: int, services: ServicesDep) -> Response:
    """Delete the collection; its images stay in the gallery."""
    boards.delete_board(services.db, collection_id=collection_id)
    return Response(status_code=204)


@router.post("/collections/{collection_id}/images", response_model=CountAnswer)
def add_to_collection(collection_id: int, body: ImageIds, services: ServicesDep) -> CountAnswer:
    added = boards.add_images(services.db, collection_id=collection_id, image_ids=body.image_ids)
    return CountAnswer(count=added)


@router.delete("/collections/{collection_id}/images/{image_id}", response_model=CountAnswer)
def remove_from_collection(collection_id: int, image_id: int, services: ServicesDep) -> CountAnswer:
    removed = boards.remove_images(services.db, collection_id=collection_id, image_ids=[image_id])
    return CountAnswer(count=removed)


# --- Trash -------------------------------------------------------------------------------


def purge_expired(services: Services) -> None:
    """Anything past its days in the trash is gone before the trash is shown or restored."""
    trash.purge_expired(services.db, services.blobs, days=services.settings.trash_days)


@router.get("/trash", response_model=GalleryImagePage)
def list_trash(
    services: ServicesDep, cursor: CursorDep, limit: LimitQuery = DEFAULT_LIMIT
) -> GalleryImagePage:
    """Trashed images, each with the moment it will be purged."""
    purge_expired(services)
    page = gallery.search_images(services.db, cursor=cursor, limit=limit, trash=True)
    return GalleryImagePage(
        items=[_image(services, entry) for entry in page.items],
        next_cursor=str(page.next_cursor) if page.next_cursor else None,
    )


def change_trash(
    request: Request, services: Services, *, action: audit.Action, image_ids: list[int]
) -> int:
    """Trash, restore or purge images: only their makers or an admin may; the log says who."""
    for image_id, owner in gallery.image_owners(services.db, image_ids=image_ids).items():
        ensure_may_change(request, owner, what=f"image {image_id}")
    db = services.db
    if action is audit.Action.DELETE:
        count = trash.move_to_trash(db, image_ids=image_ids)
    elif action is audit.Action.RESTORE:
        purge_expired(services)
        count = trash.restore(db, image_ids=image_ids)
    else:
        count = trash.purge(db, services.blobs, image_ids=image_ids).images
    if count:
        audit.record(
            db,
            action=action,
            user=current_user(request),
            ip=client_ip(request),
            detail=f"{count} image(s): {', '.join(map(str, image_ids[:50]))}",
        )
    return count


@router.post("/trash", response_model=CountAnswer)
def move_to_trash(body: ImageIds, request: Request, services: ServicesDep) -> CountAnswer:
    """Move images to the trash; they can be restored for `PLAYGROUND_TRASH_DAYS` days."""
    count = change_trash(request, services, action=audit.Action.DELETE, image_ids=body.image_ids)
    return CountAnswer(count=count)


@router.post("/trash/restore", response_model=CountAnswer)
def restore(body: ImageIds, request: Request, services: ServicesDep) -> CountAnswer:
    count = change_trash(request, services, action=audit.Action.RESTORE, image_ids=body.image_ids)
    return CountAnswer(count=count)


@router.post("/trash/purge", response_model=CountAnswer)
def purge(body: ImageIds, request: Request, services: ServicesDep) -> CountAnswer:
    """Delete trashed images for good, now."""
    count = change_trash(request, services, action=audit.Action.PURGE, image_ids=body.image_ids)
    return CountAnswer(count=count)


# --- Taking images away ------------------------------------------------------------------


def _attachment(name: str) -> str:
    return f'attachment; filename="{name}"'


@router.get(
    "/images/{image_id}/download",
    response_class=StreamingResponse,
    responses={200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}}}},
)
def download_image(image_id: int, services: ServicesDep) -> Response:
    """The image as a file, its parameters embedded (PNG text chunks `parameters`, `seedream`)."""
    entry = _entry_or_404(services, image_id)
    job = _job_or_404(services, entry.job_id)
    download = image_download(
        services.blobs, entry, job, base_url=services.settings.pixeldojo_base_url
    )
    return StreamingResponse(
        download.chunks,
        headers={
            **image_headers(image_id, download.content_type),
            "Content-Length": str(download.length),
            "Content-Disposition": _attachment(download.name),
        },
    )


@router.get("/images/{image_id}/sidecar", responses={200: {"content": {"application/json": {}}}})
def download_sidecar(image_id: int, services: ServicesDep) -> Response:
    """The image's parameters and provenance as a JSON file."""
    entry = _entry_or_404(services, image_id)
    job = _job_or_404(services, entry.job_id)
    return Response(
        sidecar_bytes(entry, job, base_url=services.settings.pixeldojo_base_url),
        media_type="application/json",
        headers={"Content-Disposition": _attachment(f"{file_stem(entry)}.json")},
    )


def zip_selection(
    services: Services, ids: list[int], filters: GalleryFilters
) -> tuple[list[GalleryEntry], dict[str, Any], str]:
    """The images a zip holds: the picked ones, or everything the filters match."""
    if ids:
        if len(set(ids)) > ZIP_MAX_IMAGES:
            raise InvalidParameters({"ids": f"pick at most {ZIP_MAX_IMAGES} images"})
        entries = gallery.get_entries(services.db, image_ids=ids)
        missing = sorted(set(ids) - {entry.image_id for entry in entries})
        if missing:
            raise InvalidParameters({"ids": f"there is no image {', '.join(map(str, missing))}"})
        return entries, {"image_ids": list(dict.fromkeys(ids))}, "seedream-selection.zip"
    page = gallery.search_images(services.db, filters=filters, limit=ZIP_MAX_IMAGES)
    if page.next_cursor is not None:
        raise InvalidParameters(
            {
                "selection": f"more than {ZIP_MAX_IMAGES} images match; narrow the search, "
                "or export the whole gallery with `seedream-playground export`"
            }
        )
    if not page.items:
        raise InvalidParameters({"selection": "no images match"})
    name = "seedream-gallery.zip"
    if filters.collection is not None:
        board = boards.get_board(services.db, collection_id=filters.collection)
        slug = re.sub(r"[^a-z0-9]+", "-", board.name.lower()).strip("-") or str(board.id)
        name = f"seedream-{slug}.zip"
    elif not filters.is_empty:
        name = "seedream-search.zip"
    return page.items, {"filters": dict(filters.query_items())}, name


@router.get(
    "/zip", response_class=StreamingResponse, responses={200: {"content": {"application/zip": {}}}}
)
def download_zip(
    services: ServicesDep,
    filters: FiltersDep,
    ids: Annotated[
        list[int] | None, Query(description="Image ids; without them, the filters")
    ] = None,
) -> Response:
    """A zip of a selection (`ids`), a collection or a search result (the filters), with
    each image's parameters embedded, a JSON sidecar each, and `manifest.json`."""
    entries, selection, name = zip_selection(services, ids or [], filters)
    jobs = jobs_for(services.db, entries)
    return StreamingResponse(
        zip_stream(
            services.blobs,
            entries,
            jobs,
            base_url=services.settings.pixeldojo_base_url,
            selection=selection,
        ),
        media_type="application/zip",
        headers={"Content-Disposition": _attachment(name)},
    )


# --- Usage -------------------------------------------------------------------------------


def usage_range(since: date | None, until: date | None) -> tuple[date, date]:
    last = until or utcnow().date()
    first = since or last - timedelta(days=USAGE_DEFAULT_DAYS - 1)
    if first > last:
        raise InvalidParameters({"until": "must not be before since"})
    if (last - first).days >= USAGE_MAX_DAYS:
        raise InvalidParameters({"since": f"the range can span at most {USAGE_MAX_DAYS} days"})
    return first, last


@router.get("/usage", response_model=UsagePublic)
def get_usage(
    services: ServicesDep,
    since: Annotated[date | None, Query(description="First day, YYYY-MM-DD (UTC)")] = None,
    until: Annotated[date | None, Query(description="Last day, YYYY-MM-DD (UTC)")] = None,
) -> UsagePublic:
    """Credits spent per day, per preset and per model, and the balance last reported."""
    first, last = usage_range(since, until)
    return usage_public(usage(services.db, since=first, until=last))
