"""The gallery's query parameters: one parser for pages and API, errors naming the field.

Filters arrive from links and from the filter form, which sends empty fields
as empty strings; those mean "no filter", not an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from pydantic import Field
from starlette.datastructures import QueryParams

from app.core.errors import InvalidParameters
from app.core.text import LINE_PATTERN, line_problem
from app.domain.parameters import IMAGE_SIZES
from app.features.gallery.listing import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Cursor, GalleryFilters
from app.storage.db.tables import ROW_ID_MAX, JobStatus

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


# The filters, read from the query string in one pass by `gallery_filters` (FastAPI's own
# parsing cost more per request, for ten parameters, than the listing's query); the API's
# routes describe them to OpenAPI with `FILTERS_OPENAPI`, made from this list:
# (name, schema, description), each schema exactly what the parser accepts.
NAME_MAX_CHARS = 100
# A preset's or model's name is a line (app/core/text.py). (A search may hold anything:
# app.features.gallery.listing.parse_search.)
_NAME_SCHEMA = {"type": "string", "maxLength": NAME_MAX_CHARS, "pattern": LINE_PATTERN}
FILTER_PARAMETERS: tuple[tuple[str, dict[str, Any], str], ...] = (
    (
        "q",
        {"type": "string", "maxLength": SEARCH_MAX_CHARS},
        'Words or "quoted phrases" in the prompt',
    ),
    ("preset", _NAME_SCHEMA, "Preset slug"),
    ("model", _NAME_SCHEMA, "Model apiId"),
    ("image_size", {"type": "string", "enum": [*IMAGE_SIZES, ""]}, "Named size, or custom"),
    (
        "status",
        {"type": "string", "enum": [*(status.value for status in JobStatus), ""]},
        "Job status",
    ),
    ("since", _DAY_SCHEMA, "Made on or after this day, YYYY-MM-DD"),
    ("until", _DAY_SCHEMA, "Made on or before this day, YYYY-MM-DD"),
    ("favourite", {"type": "boolean", "default": False}, "Starred images only"),
    ("collection", _ROW_ID_SCHEMA, "Only images in this collection"),
    ("user", _ROW_ID_SCHEMA, "Only this person's work (a user id)"),
)
FILTERS_OPENAPI: dict[str, Any] = {
    "parameters": [
        {
            "name": name,
            "in": "query",
            "required": False,
            "description": description,
            "schema": schema,
        }
        for name, schema, description in FILTER_PARAMETERS
    ]
}
# What a boolean query parameter accepts (as pydantic reads one), in any case.
_TRUE = frozenset({"1", "true", "t", "on", "yes", "y"})
_FALSE = frozenset({"0", "false", "f", "off", "no", "n"})


async def gallery_filters(request: Request) -> GalleryFilters:
    """The gallery's filters from the query string; every error names its field.
    (Async: it only parses, so it needs no worker thread.)"""
    errors: dict[str, str] = {}
    filters = _filters(request.query_params, errors)
    if errors:
        raise InvalidParameters(errors)
    return filters


def _filters(query: QueryParams, errors: dict[str, str]) -> GalleryFilters:
    q = query.get("q")
    if q is not None and len(q) > SEARCH_MAX_CHARS:
        errors["q"] = f"must be at most {SEARCH_MAX_CHARS} characters"
    preset, model = query.get("preset"), query.get("model")
    for name, value in (("preset", preset), ("model", model)):
        if value is not None and len(value) > NAME_MAX_CHARS:
            errors[name] = f"must be at most {NAME_MAX_CHARS} characters"
        elif value is not None and (problem := line_problem(value)):
            errors[name] = problem
    image_size = query.get("image_size") or None
    if image_size is not None and image_size not in IMAGE_SIZES:
        errors["image_size"] = f"must be one of {', '.join(IMAGE_SIZES)}"
    status = query.get("status")
    job_status = None
    if status:
        try:
            job_status = JobStatus(status)
        except ValueError:
            errors["status"] = f"must be one of {', '.join(s.value for s in JobStatus)}"
    favourite = query.get("favourite")
    favourite_key = favourite.lower() if favourite is not None else "false"
    if favourite_key not in _TRUE and favourite_key not in _FALSE:
        errors["favourite"] = "must be true or false"
    collection_id = _row_id("collection", query.get("collection"), "a collection id", errors)
    user_id = _row_id("user", query.get("user"), "a user id", errors)
    since_day = _date("since", query.get("since"), errors)
    until_day = _date("until", query.get("until"), errors)
    if since_day and until_day and until_day < since_day:
        errors["until"] = "must not be before since"
    return GalleryFilters(
        q=_blank(q),
        preset=_blank(preset),
        model=_blank(model),
        image_size=image_size,
        status=job_status,
        since=since_day,
        until=until_day,
        favourite=favourite_key in _TRUE,
        collection=collection_id,
        user=user_id,
    )


async def gallery_cursor(
    cursor: Annotated[
        str | None,
        Query(description="next_cursor of the previous page", json_schema_extra=_CURSOR_SCHEMA),
    ] = None,
) -> Cursor | None:
    errors: dict[str, str] = {}
    found = _cursor(cursor, errors)
    if errors:
        raise InvalidParameters(errors)
    return found


def _cursor(text: str | None, errors: dict[str, str]) -> Cursor | None:
    if not text:
        return None
    try:
        return Cursor.parse(text)
    except ValueError as exc:
        errors["cursor"] = str(exc)
        return None


def _limit(text: str | None, errors: dict[str, str]) -> int:
    if text is None:
        return DEFAULT_PAGE_SIZE
    text = text.strip()
    if text.isascii() and text.isdigit() and len(text) <= 6 and 1 <= int(text) <= MAX_PAGE_SIZE:
        return int(text)
    errors["limit"] = f"must be a whole number from 1 to {MAX_PAGE_SIZE}"
    return DEFAULT_PAGE_SIZE


@dataclass(frozen=True)
class GalleryQuery:
    """A page of the gallery as the query string asks for it."""

    filters: GalleryFilters
    cursor: Cursor | None
    limit: int


async def gallery_query(request: Request) -> GalleryQuery:
    """Filters, cursor and page size in one pass (the gallery's busiest routes)."""
    query = request.query_params
    errors: dict[str, str] = {}
    found = GalleryQuery(
        filters=_filters(query, errors),
        cursor=_cursor(query.get("cursor"), errors),
        limit=_limit(query.get("limit"), errors),
    )
    if errors:
        raise InvalidParameters(errors)
    return found


FiltersDep = Annotated[GalleryFilters, Depends(gallery_filters)]
CursorDep = Annotated[Cursor | None, Depends(gallery_cursor)]
GalleryQueryDep = Annotated[GalleryQuery, Depends(gallery_query)]
LimitQuery = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Images per page")]
# Image ids in a query (?ids=1&ids=2): whole numbers a record can have.
ImageIdItem = Annotated[int, Field(ge=1, le=ROW_ID_MAX)]
DEFAULT_LIMIT = DEFAULT_PAGE_SIZE
# What a route taking `GalleryQueryDep` tells OpenAPI it reads.
PAGE_OPENAPI: dict[str, Any] = {
    "parameters": [
        {
            "name": "cursor",
            "in": "query",
            "required": False,
            "description": "next_cursor of the previous page",
            "schema": _CURSOR_SCHEMA,
        },
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "description": "Images per page",
            "schema": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_PAGE_SIZE,
                "default": DEFAULT_PAGE_SIZE,
            },
        },
        *FILTERS_OPENAPI["parameters"],
    ]
}
