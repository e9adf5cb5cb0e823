"""Every error answered in one place: JSON for the API, a page for people, a fragment for htmx."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from http import HTTPStatus
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request, params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from app.core.errors import (
    InvalidParameters,
    NotFoundError,
    PlaygroundError,
    SubmissionFailed,
    TooManyAttempts,
    UpstreamBusy,
)
from app.domain.runs import field_errors
from app.storage.db.engine import is_number_out_of_range
from app.web import urls
from app.web.ops import MACHINE_PATHS
from app.web.problems import problem_response

# Codes that read the same whatever Python's name for the status (413's changed in 3.13).
HTTP_ERROR_CODES = {400: "bad_request", 413: "request_too_large"}


class ErrorBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str
    message: str
    fields: dict[str, str] | None = None


class ErrorAnswer(BaseModel):
    """What every error of the API looks like: an RFC 9457 problem (app/web/problems.py)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="Always about:blank: `code` says which problem")
    title: str = Field(description="The HTTP status's phrase")
    status: int
    detail: str = Field(description="What went wrong, for people")
    code: str = Field(description="What went wrong, for programs: stable across versions")
    fields: dict[str, str] | None = Field(
        None, description="invalid_parameters and conflict: each field's problem"
    )
    error: ErrorBody = Field(description="`code`, `message` and the extensions, as before")


_ERROR_MEANINGS = {
    400: "The body could not be read (malformed JSON or form)",
    415: "The body is not JSON",
    401: "Sign-in is on: sign in, or send an API token",
    402: "PixelDojo says the credits have run out",
    403: "Not allowed: another person's work, a budget, or a request from another site",
    404: "No such record",
    409: "Valid, but it clashes with what is there (a name taken, the last admin)",
    413: "The request body is too large",
    422: "A parameter failed validation; `fields` names each",
    429: "PixelDojo's rate limit: retry after Retry-After seconds",
    502: "PixelDojo refused or did not answer; the job says why",
    503: "PixelDojo refuses the API key: nothing is sent until it works",
}


def error_meaning(status: int) -> str:
    return _ERROR_MEANINGS.get(status) or HTTPStatus(status).phrase


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses, all answered as ErrorAnswer."""
    return {
        status: {"model": ErrorAnswer, "description": _ERROR_MEANINGS[status]}
        for status in statuses
    }


# What job submissions may answer besides the errors any route may (app/web/openapi.py).
SUBMISSION_ERRORS = error_responses(402, 429, 502, 503)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PlaygroundError, _playground_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    # SQLite's driver refuses a number past 64 bits before it reaches the database;
    # PostgreSQL refuses one too large for its column (a DataError, SQLSTATE 22003).
    app.add_exception_handler(OverflowError, _number_too_large)
    app.add_exception_handler(sa.exc.DataError, _number_too_large)


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path in MACHINE_PATHS


def _answer(
    request: Request,
    *,
    status_code: int,
    code: str,
    message: str,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    if _wants_json(request):
        return problem_response(status_code, code, message, extra=extra, headers=headers)
    templates = request.app.state.templates
    context = {
        "status_code": status_code,
        "title": HTTPStatus(status_code).phrase,
        "message": message,
    }
    template = "partials/_error.html" if request.headers.get("hx-request") else "error.html"
    return templates.TemplateResponse(  # type: ignore[no-any-return]
        request, template, context, status_code=status_code, headers=headers
    )


async def _playground_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PlaygroundError)
    extra: dict[str, Any] = {}
    headers: dict[str, str] = {}
    if isinstance(exc, InvalidParameters):
        extra["fields"] = exc.field_errors
    if isinstance(exc, SubmissionFailed):
        extra["job_id"] = exc.job_id
        extra["job_url"] = urls.job_api(exc.job_id)
    if (
        isinstance(exc, SubmissionFailed | UpstreamBusy | TooManyAttempts)
        and exc.retry_after is not None
    ):
        headers["Retry-After"] = str(int(exc.retry_after + 0.999))
    return _answer(
        request,
        status_code=exc.status_code,
        code=exc.code,
        message=exc.message,
        extra=extra,
        headers=headers or None,
    )


async def _number_too_large(request: Request, exc: Exception) -> Response:
    # A number too large for the database's column, in a path or a query: no record can
    # have it. Any other overflow or data error is a bug, and stays a 500.
    if not is_number_out_of_range(exc):
        raise exc
    return _answer(
        request,
        status_code=404,
        code=NotFoundError.code,
        message="There is nothing with a number that large.",
    )


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if any(error.get("type") == "json_invalid" for error in exc.errors()):
        return _answer(
            request,
            status_code=400,
            code="malformed_json",
            message="The body is not valid JSON.",
        )
    if _body_not_json(request, exc):
        return _answer(
            request,
            status_code=415,
            code="unsupported_media_type",
            message="Send the body as JSON (Content-Type: application/json).",
        )
    fields = field_errors(exc.errors())
    summary = "; ".join(f"{field}: {message}" for field, message in fields.items())
    errors = [
        {key: value for key, value in error.items() if key in ("loc", "msg", "type")}
        for error in exc.errors()
    ]
    return _answer(
        request,
        status_code=422,
        code="invalid_parameters",
        message=summary,
        extra={"fields": fields, "errors": errors},
    )


def _body_not_json(request: Request, exc: RequestValidationError) -> bool:
    """Whether the body was refused because it came as something other than the JSON the
    route reads (FastAPI hands such a body on as bytes, and the model then refuses it)."""
    content_type = request.headers.get("content-type")
    if content_type is None or _is_json_type(content_type):
        return False
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or not dependant.body_params:
        return False
    if any(isinstance(field.field_info, params.Form) for field in dependant.body_params):
        return False
    return any(tuple(error.get("loc", ()))[:1] == ("body",) for error in exc.errors())


def _is_json_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    headers = getattr(exc, "headers", None)
    if exc.status_code == 404:
        message = "There is nothing at this address."
    elif exc.status_code == 405:
        # The router names only the first route at this path; a path may have several.
        allowed = _allowed_methods(request)
        headers = {**(headers or {}), "Allow": allowed}
        message = f"This address answers {allowed}."
    code = HTTP_ERROR_CODES.get(exc.status_code) or HTTPStatus(exc.status_code).phrase
    return _answer(
        request,
        status_code=exc.status_code,
        code=code.lower().replace(" ", "_"),
        message=message,
        headers=headers,
    )


def _allowed_methods(request: Request) -> str:
    """The methods some route at this path answers. Where a literal path and a template
    both match (/api/jobs/check and /api/jobs/{job_id}), the literal one is this address:
    only the routes with the fewest path parameters count."""
    path = request.scope["path"]
    found: dict[str, int] = {}
    for route in _leaf_routes(request.app.router.routes):
        pattern = getattr(route, "path_regex", None)
        if pattern is None or not pattern.match(path):
            continue
        parameters = len(getattr(route, "param_convertors", {}))
        for method in getattr(route, "methods", None) or ():
            found[method] = min(parameters, found.get(method, parameters))
    fewest = min(found.values(), default=0)
    return ", ".join(sorted(method for method, params in found.items() if params == fewest))


def _leaf_routes(routes: Iterable[Any]) -> Iterator[Any]:
    """Every route, inside included routers too (FastAPI keeps those as one route each)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _leaf_routes(inner.routes)
        else:
            yield route
