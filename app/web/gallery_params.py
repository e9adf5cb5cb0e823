"""The gallery's query parameters: one parser for pages and API, errors naming the field.

Filters arrive from links and from the filter form, which sends empty fields
as empty strings; those mean "no filter", not an error.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import Depends, Query

from app.errors import InvalidParameters
from app.gallery import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Cursor, GalleryFilters
from app.models import JobStatus
from app.parameters import IMAGE_SIZES

SEARCH_MAX_CHARS = 500


def _blank(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def _date(name: str, value: str | None, errors: dict[str, str]) -> date | None:
    value = _blank(value)
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors[name] = "must be a date, YYYY-MM-DD"
        return None


def optional_day(name: str, value: str | None) -> date | None:
    """A YYYY-MM-DD query parameter; empty means none."""
    errors: dict[str, str] = {}
    day = _date(name, value, errors)
    if errors:
        raise InvalidParameters(errors)
    return day


# Async, though they only parse: FastAPI runs a plain `def` dependency in the thread
# pool, a hop per dependency per request (docs/benchmarks.md).
async def gallery_filters(
    q: Annotated[str | None, Query(description='Words or "quoted phrases" in the prompt')] = None,
    preset: Annotated[str | None, Query(description="Preset slug")] = None,
    model: Annotated[str | None, Query(description="Model apiId")] = None,
    image_size: Annotated[str | None, Query(description="Named size, or custom")] = None,
    status: Annotated[str | None, Query(description="Job status")] = None,
    since: Annotated[str | None, Query(description="Made on or after this day, YYYY-MM-DD")] = None,
    until: Annotated[
        str | None, Query(description="Made on or before this day, YYYY-MM-DD")
    ] = None,
    favourite: Annotated[bool, Query(description="Starred images only")] = False,
    collection: Annotated[str | None, Query(description="Only images in this collection")] = None,
    user: Annotated[str | None, Query(description="Only this person's work (a user id)")] = None,
) -> GalleryFilters:
    errors: dict[str, str] = {}
    q = _blank(q)
    if q is not None and len(q) > SEARCH_MAX_CHARS:
        errors["q"] = f"must be at most {SEARCH_MAX_CHARS} characters"
    image_size = _blank(image_size)
    if image_size is not None and image_size not in IMAGE_SIZES:
        errors["image_size"] = f"must be one of {', '.join(IMAGE_SIZES)}"
    status = _blank(status)
    job_status = None
    if status is not None:
        try:
            job_status = JobStatus(status)
        except ValueError:
            errors["status"] = f"must be one of {', '.join(s.value for s in JobStatus)}"
    collection = _blank(collection)
    collection_id = None
    if collection is not None:
        if collection.isdigit() and int(collection) > 0:
            collection_id = int(collection)
        else:
            errors["collection"] = "must be a collection id"
    user = _blank(user)
    user_id = None
    if user is not None:
        if user.isdigit() and int(user) > 0:
            user_id = int(user)
        else:
            errors["user"] = "must be a user id"
    since_day = _date("since", since, errors)
    until_day = _date("until", until, errors)
    if since_day and until_day and until_day < since_day:
        errors["until"] = "must not be before since"
    for name, value in (("preset", preset), ("model", model)):
        if value is not None and len(value) > 100:
            errors[name] = "must be at most 100 characters"
    if errors:
        raise InvalidParameters(errors)
    return GalleryFilters(
        q=q,
        preset=_blank(preset),
        model=_blank(model),
        image_size=image_size,
        status=job_status,
        since=since_day,
        until=until_day,
        favourite=favourite,
        collection=collection_id,
        user=user_id,
    )


async def gallery_cursor(
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> Cursor | None:
    cursor = _blank(cursor)
    if cursor is None:
        return None
    try:
        return Cursor.parse(cursor)
    except ValueError as exc:
        raise InvalidParameters({"cursor": str(exc)}) from None


FiltersDep = Annotated[GalleryFilters, Depends(gallery_filters)]
CursorDep = Annotated[Cursor | None, Depends(gallery_cursor)]
LimitQuery = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Images per page")]
DEFAULT_LIMIT = DEFAULT_PAGE_SIZE
