"""The gallery's pages: grid with search and endless scrolling, lightbox, compare,
trash and usage (collections' own pages are app/web/collections_pages.py). Forms work
without JavaScript; htmx and static/gallery.js make them smoother."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from app.core.config import Settings
from app.core.errors import InvalidParameters, NotFoundError, SubmissionFailed
from app.core.text import Line
from app.domain.code_examples import KEY_VARIABLE, CodeExample, code_examples
from app.domain.parameters import IMAGE_SIZE_LABELS, IMAGE_SIZES
from app.domain.presets import PRESETS
from app.features.gallery import boards, lookups, trash
from app.features.gallery import listing as gallery
from app.features.gallery.compare import compare_entries, compare_rows, prompt_words
from app.features.gallery.downloads import jobs_for
from app.features.gallery.listing import Cursor, GalleryFilters, GalleryPage
from app.features.gallery.trash import purge_time
from app.features.gallery.usage import usage, usage_range
from app.features.jobs.again import submit_new_seed
from app.features.jobs.reads import get_job
from app.features.people import audit
from app.storage.db.tables import Job, JobStatus
from app.web import urls
from app.web.charts import credits_chart
from app.web.deps import (
    ActorDep,
    ClientIP,
    CurrentUser,
    ServicesDep,
    TemplatesDep,
    is_htmx,
    sign_in_on,
)
from app.web.forms import new_submission_token
from app.web.gallery_params import (
    DEFAULT_LIMIT,
    CursorDep,
    GalleryQueryDep,
    LimitQuery,
    optional_day,
)
from app.web.redirects import back
from app.web.tiles import Options, gallery_tiles, options

router = APIRouter(include_in_schema=False)

SELECTION_ACTIONS = (
    "favourite",
    "unfavourite",
    "collect",
    "uncollect",
    "trash",
    "restore",
    "purge",
)
TRASH_ACTIONS = {
    "trash": audit.Action.DELETE,
    "restore": audit.Action.RESTORE,
    "purge": audit.Action.PURGE,
}


def install_template_helpers(templates: Jinja2Templates, settings: Settings) -> None:
    """Globals the gallery's templates (job page included) use."""
    base_url = settings.pixeldojo_base_url

    def examples_for(job: Job) -> list[CodeExample]:
        """The request that made `job`, as code (the playground's examples, for a past job)."""
        return code_examples(base_url=base_url, model=job.model, body=job.request_body)

    def purge_at(deleted_at: Any) -> Any:
        return purge_time(deleted_at, days=settings.trash_days)

    templates.env.globals.update(
        one_time_token=new_submission_token,
        examples_for=examples_for,
        key_variable=KEY_VARIABLE,
        purge_at=purge_at,
        trash_days=settings.trash_days,
        default_page_size=DEFAULT_LIMIT,
        gallery_tiles=gallery_tiles,
        options=options,
        preset_options=Options((preset.slug, preset.name) for preset in PRESETS),
        image_size_options=Options((size, IMAGE_SIZE_LABELS[size]) for size in IMAGE_SIZES),
        # Completed jobs are the images the gallery shows; the others are listed as jobs.
        job_status_options=Options(
            (status.value, f"{status.label} (jobs)")
            for status in JobStatus
            if status != JobStatus.COMPLETED
        ),
    )


def _page_query(
    filters: GalleryFilters, *, cursor: Cursor | None = None, limit: int = DEFAULT_LIMIT
) -> str:
    items = filters.query_items()
    if limit != DEFAULT_LIMIT:
        items.append(("limit", str(limit)))
    if cursor is not None:
        items.append(("cursor", str(cursor)))
    return urlencode(items)


def _gallery_context(
    services: ServicesDep,
    filters: GalleryFilters,
    page: GalleryPage,
    *,
    limit: int,
    base_path: str = "/gallery",
) -> dict[str, Any]:
    return {
        "filters": filters,
        "page": page,
        "limit": limit,
        "base_path": base_path,
        "next_query": _page_query(filters, cursor=page.next_cursor, limit=limit)
        if page.next_cursor
        else None,
        "filter_query": _page_query(filters),
    }


@router.get("/gallery", name="gallery_page", response_class=HTMLResponse)
def gallery_page(
    request: Request,
    services: ServicesDep,
    templates: TemplatesDep,
    query: GalleryQueryDep,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    filters, cursor, limit = query.filters, query.cursor, query.limit
    # The filter form sends every field; the address keeps only those in use, so a
    # shared link reads as what it searches for.
    canonical = "/gallery"
    canonical_query = _page_query(filters, cursor=cursor, limit=limit)
    if before is not None:
        canonical_query += f"&before={before}" if canonical_query else f"before={before}"
    if canonical_query:
        canonical += "?" + canonical_query
    blank = any(value == "" for value in request.query_params.values())
    if blank and not is_htmx(request):
        return RedirectResponse(canonical, status_code=303)
    choices = lookups.filter_choices(services.db, people=sign_in_on(request))
    context: dict[str, Any] = {
        "filters": filters,
        "people": choices.people,
        "board": None,
        "board_names": choices.boards,
        "filter_query": _page_query(filters),
    }
    if filters.collection is not None:
        context["board"] = boards.get_board(services.db, collection_id=filters.collection)
    if filters.status is not None and filters.status != JobStatus.COMPLETED:
        # Jobs of that status have no images to show: list the jobs.
        found, next_before = gallery.search_jobs(
            services.db, filters=filters, before_id=before, limit=20
        )
        context.update(
            jobs_view=True,
            found_jobs=found,
            next_jobs_query=urlencode([*filters.query_items(), ("before", str(next_before))])
            if next_before
            else None,
        )
    else:
        page = gallery.search_images(services.db, filters=filters, cursor=cursor, limit=limit)
        context.update(_gallery_context(services, filters, page, limit=limit), jobs_view=False)
    headers = {"HX-Push-Url": canonical} if is_htmx(request) else None
    return templates.TemplateResponse(request, "gallery.html", context, headers=headers)


@router.get("/gallery/page", response_class=HTMLResponse)
def gallery_more(
    request: Request, services: ServicesDep, templates: TemplatesDep, query: GalleryQueryDep
) -> Response:
    """The next page of tiles and the marker that loads the one after: endless scrolling."""
    page = gallery.search_images(
        services.db, filters=query.filters, cursor=query.cursor, limit=query.limit
    )
    context = _gallery_context(services, query.filters, page, limit=query.limit)
    return templates.TemplateResponse(request, "partials/_gallery_items.html", context)


@router.get("/gallery/images/{image_id}/lightbox", response_class=HTMLResponse)
def lightbox(
    image_id: int, request: Request, services: ServicesDep, templates: TemplatesDep
) -> Response:
    entry = lookups.get_entry(services.db, image_id=image_id)
    if entry is None:
        raise NotFoundError(f"There is no image {image_id}.")
    job = lookups.get_job_detail(services.db, job_id=entry.job_id)
    assert job is not None
    context = {
        "entry": entry,
        "job": job,
        "author": lookups.author_of(services.db, user_id=job.user_id),
        "collections": boards.boards_of(services.db, image_id=image_id),
        "board_names": boards.board_names(services.db),
    }
    return templates.TemplateResponse(request, "partials/_lightbox.html", context)


@router.post(
    "/gallery/images/{image_id}/favourite", name="toggle_favourite", response_class=HTMLResponse
)
def toggle_favourite(
    image_id: int,
    request: Request,
    services: ServicesDep,
    templates: TemplatesDep,
    favourite: Annotated[bool, Form()],
    next: Annotated[str | None, Form()] = None,
) -> Response:
    if not lookups.set_favourite(services.db, image_ids=[image_id], favourite=favourite):
        raise NotFoundError(f"There is no image {image_id}.")
    if is_htmx(request):
        answer = SelectionAnswer(
            action="favourite" if favourite else "unfavourite",
            message="Added to favourites" if favourite else "Removed from favourites",
            ids=[image_id],
            favourite=favourite,
            undo=("unfavourite" if favourite else "favourite", [image_id], None),
        )
        return templates.TemplateResponse(
            request,
            "partials/_favourite_button.html",
            {"image_id": image_id, "favourite": favourite},
            headers=answer.headers(),
        )
    return RedirectResponse(back(request, next, fallback="/gallery"), status_code=303)


@dataclass
class SelectionAnswer:
    """What a change to images tells the page: a toast (with Undo where it can be undone)
    and which images changed, so the page updates them in place."""

    action: str
    message: str
    ids: list[int]
    favourite: bool | None = None
    undo: tuple[str, list[int], str | None] | None = None  # action, ids, board

    def headers(self) -> dict[str, str]:
        toast: dict[str, Any] = {"message": self.message}
        if self.undo is not None and self.undo[1]:
            action, ids, board = self.undo
            toast["undo"] = {"action": action, "ids": ids, "board": board or ""}
        changed = {"action": self.action, "ids": self.ids, "favourite": self.favourite}
        # ASCII JSON: a header carries Latin-1 at most, and collection names are any text.
        return {"HX-Trigger": json.dumps({"toast": toast, "images-changed": changed})}


def _images(count: int) -> str:
    return f"{count} image{'' if count == 1 else 's'}"


@router.post("/gallery/selection")
def selection_action(
    request: Request,
    services: ServicesDep,
    actor: ActorDep,
    action: Annotated[str, Form()],
    ids: Annotated[list[int] | None, Form()] = None,
    board: Annotated[str | None, Form()] = None,
    next: Annotated[str | None, Form()] = None,
) -> Response:
    """What the selection bar's buttons do to the ticked images. A page with htmx gets a
    toast to show (with Undo where the change can be undone); without, it goes back."""
    image_ids = list(dict.fromkeys(ids or []))
    if action not in SELECTION_ACTIONS:
        raise InvalidParameters({"action": f"must be one of {', '.join(SELECTION_ACTIONS)}"})
    if not image_ids:
        raise InvalidParameters({"ids": "tick at least one image first"})
    db = services.db
    answer: SelectionAnswer
    if action in ("favourite", "unfavourite"):
        starred = action == "favourite"
        # Undo puts back only what this changed: images already starred stay starred.
        before = lookups.favourite_ids(db, image_ids=image_ids)
        changed = [i for i in image_ids if (i in before) != starred]
        lookups.set_favourite(db, image_ids=image_ids, favourite=starred)
        answer = SelectionAnswer(
            action=action,
            message=f"Starred {_images(len(image_ids))}"
            if starred
            else f"Unstarred {_images(len(image_ids))}",
            ids=image_ids,
            favourite=starred,
            undo=("unfavourite" if starred else "favourite", changed, None),
        )
    elif action in ("collect", "uncollect"):
        if not board or not board.isdigit():
            raise InvalidParameters({"board": "choose a collection"})
        collection = boards.get_board(db, collection_id=int(board))
        already = boards.images_on_board(db, collection_id=collection.id, image_ids=image_ids)
        if action == "collect":
            boards.add_images(db, collection_id=collection.id, image_ids=image_ids)
            added = [i for i in image_ids if i not in already]
            answer = SelectionAnswer(
                action=action,
                message=f"Added {_images(len(image_ids))} to “{collection.name}”",
                ids=image_ids,
                undo=("uncollect", added, board),
            )
        else:
            boards.remove_images(db, collection_id=collection.id, image_ids=image_ids)
            removed = [i for i in image_ids if i in already]
            answer = SelectionAnswer(
                action=action,
                message=f"Removed {_images(len(removed))} from “{collection.name}”",
                ids=removed,
                undo=("collect", removed, board),
            )
    else:
        count = trash.change(
            db,
            services.blobs,
            actor=actor,
            action=TRASH_ACTIONS[action],
            image_ids=image_ids,
            days=services.settings.trash_days,
        )
        if action == "trash":
            answer = SelectionAnswer(
                action=action,
                message=f"Moved {_images(count)} to the trash",
                ids=image_ids,
                undo=("restore", image_ids, None),
            )
        elif action == "restore":
            answer = SelectionAnswer(
                action=action,
                message=f"Restored {_images(count)}",
                ids=image_ids,
                undo=("trash", image_ids, None),
            )
        else:
            answer = SelectionAnswer(
                action=action, message=f"Deleted {_images(count)} for good", ids=image_ids
            )
    if is_htmx(request):
        return Response(status_code=204, headers=answer.headers())
    return RedirectResponse(back(request, next, fallback="/gallery"), status_code=303)


@router.post("/jobs/{job_id}/new-seed")
async def new_seed_page(
    job_id: int,
    request: Request,
    services: ServicesDep,
    templates: TemplatesDep,
    user: CurrentUser,
    ip: ClientIP,
    token: Annotated[Line | None, Form(max_length=100)] = None,
) -> Response:
    """Same prompt, new seed: submitted at once; the browser goes to the new job.
    The form's one-time token makes a double click one job, not two."""
    created = True
    try:
        job, created = await submit_new_seed(
            services.submitter, job_id, token=f"form:{token}" if token else None, user=user, ip=ip
        )
        new_id = job.id
    except SubmissionFailed as failure:
        new_id = failure.job_id
    assert new_id is not None
    url = urls.job_page(new_id)
    if is_htmx(request) and request.headers.get("HX-Target") == "output":
        # From the playground's output: the new job takes its place there.
        item = await run_in_threadpool(lambda: get_job(services.db, job_id=new_id))
        return templates.TemplateResponse(
            request,
            "partials/_job_card.html",
            {"item": item},
            headers={} if created else {"HX-Reswap": "none"},
        )
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


@router.get("/compare", response_class=HTMLResponse)
def compare_page(
    request: Request,
    services: ServicesDep,
    templates: TemplatesDep,
    ids: Annotated[list[int] | None, Query()] = None,
) -> Response:
    entries = compare_entries(services.db, ids or [])
    jobs = jobs_for(services.db, entries)
    rows = compare_rows(entries, jobs)
    words = prompt_words([jobs[entry.job_id].prompt for entry in entries])
    context = {"entries": entries, "jobs": jobs, "rows": rows, "prompt_words": words}
    return templates.TemplateResponse(request, "compare.html", context)


# --- Trash and usage ---------------------------------------------------------------------


@router.get("/trash", response_class=HTMLResponse)
def trash_page(
    request: Request,
    services: ServicesDep,
    templates: TemplatesDep,
    cursor: CursorDep,
    limit: LimitQuery = DEFAULT_LIMIT,
) -> Response:
    page = gallery.search_images(
        services.db,
        cursor=cursor,
        limit=limit,
        trash=True,
        trashed_after=trash.expiry_cutoff(days=services.settings.trash_days),
    )
    next_query = urlencode([("cursor", str(page.next_cursor))]) if page.next_cursor else None
    context = {"page": page, "next_query": next_query}
    return templates.TemplateResponse(request, "trash.html", context)


@router.get("/usage", response_class=HTMLResponse)
def usage_page(
    request: Request,
    services: ServicesDep,
    templates: TemplatesDep,
    since: Annotated[str | None, Query()] = None,
    until: Annotated[str | None, Query()] = None,
) -> Response:
    first, last = usage_range(optional_day("since", since), optional_day("until", until))
    figures = usage(services.db, since=first, until=last)
    context = {"usage": figures, "chart": credits_chart(figures.days)}
    return templates.TemplateResponse(request, "usage.html", context)
