"""The gallery's query parameters: one parser for pages and API, errors naming the field.

Filters arrive from links and from the filter form, which sends empty fields
as empty strings; those mean "no filter", not an error.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated

from fastapi import Depends, Query
from pydantic import Field

from app.errors import InvalidParameters
from app.gallery import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Cursor, GalleryFilters
from app.models import ROW_ID_MAX, JobStatus
from app.parameters import IMAGE_SIZES

SEARCH_MAX_CHARS = 500


# What each query parameter accepts, for the OpenAPI schema; the parsers below enforce
# exactly that, with messages that name the field. Empty means "no filter" throughout.
DAY_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_DAY_SCHEMA = {"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "maxLength": 0}]}
_ROW_ID_SCHEMA = {"type": "string", "pattern": r"^([0-9]*[1-9][0-9]*)?$"}
_CURSOR_SCHEMA = {"type": "string", "pattern": r"^([0-9]+\.[0-9]+)?$"}
DAY_SCHEMA = _DAY_SCHEMA


def _blank(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def _date(name: str, value: str | None, errors: dict[str, str]) -> date | None:
    if not value:
        return None
    try:
        if not re.fullmatch(DAY_PATTERN, value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        errors[name] = "must be a date, YYYY-MM-DD"
        return None


def _row_id(name: str, value: str | None, what: str, errors: dict[str, str]) -> int | None:
    if not value:
        return None
    if value.isascii() and value.isdigit() and int(value) > 0:
        return int(value)
    errors[name] = f"must be {what}"
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
    q: Annotated[
        str | None,
        Query(max_length=SEARCH_MAX_CHARS, description='Words or "quoted phrases" in the prompt'),
    ] = None,
    preset: Annotated[str | None, Query(max_length=100, description="Preset slug")] = None,
    model: Annotated[str | None, Query(max_length=100, description="Model apiId")] = None,
    image_size: Annotated[
        str | None,
        Query(description="Named size, or custom", json_schema_extra={"enum": [*IMAGE_SIZES, ""]}),
    ] = None,
    status: Annotated[
        str | None,
        Query(
            description="Job status",
            json_schema_extra={"enum": [*(status.value for status in JobStatus), ""]},
        ),
    ] = None,
    since: Annotated[
        str | None,
        Query(description="Made on or after this day, YYYY-MM-DD", json_schema_extra=_DAY_SCHEMA),
    ] = None,
    until: Annotated[
        str | None,
        Query(description="Made on or before this day, YYYY-MM-DD", json_schema_extra=_DAY_SCHEMA),
    ] = None,
    favourite: Annotated[bool, Query(description="Starred images only")] = False,
    collection: Annotated[
        str | None,
        Query(description="Only images in this collection", json_schema_extra=_ROW_ID_SCHEMA),
    ] = None,
    user: Annotated[
        str | None,
        Query(description="Only this person's work (a user id)", json_schema_extra=_ROW_ID_SCHEMA),
    ] = None,
) -> GalleryFilters:
    errors: dict[str, str] = {}
    q = _blank(q)
    image_size = image_size or None
    if image_size is not None and image_size not in IMAGE_SIZES:
        errors["image_size"] = f"must be one of {', '.join(IMAGE_SIZES)}"
    job_status = None
    if status:
        try:
            job_status = JobStatus(status)
        except ValueError:
            errors["status"] = f"must be one of {', '.join(s.value for s in JobStatus)}"
    collection_id = _row_id("collection", collection, "a collection id", errors)
    user_id = _row_id("user", user, "a user id", errors)
    since_day = _date("since", since, errors)
    until_day = _date("until", until, errors)
    if since_day and until_day and until_day < since_day:
        errors["until"] = "must not be before since"
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
    cursor: Annotated[
        str | None,
        Query(description="next_cursor of the previous page", json_schema_extra=_CURSOR_SCHEMA),
    ] = None,
) -> Cursor | None:
    if not cursor:
        return None
    try:
        return Cursor.parse(cursor)
    except ValueError as exc:
        raise InvalidParameters({"cursor": str(exc)}) from None


FiltersDep = Annotated[GalleryFilters, Depends(gallery_filters)]
CursorDep = Annotated[Cursor | None, Depends(gallery_cursor)]
LimitQuery = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Images per page")]
# Image ids in a query (?ids=1&ids=2): whole numbers a record can have.
ImageIdItem = Annotated[int, Field(ge=1, le=ROW_ID_MAX)]
DEFAULT_LIMIT = DEFAULT_PAGE_SIZE
