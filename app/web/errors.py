"""Every error answered in one place: JSON for the API, a page for people, a fragment for htmx."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from app.errors import InvalidParameters, NotFoundError, PlaygroundError, SubmissionFailed
from app.runs import field_errors
from app.sqlite import is_integer_overflow

# Codes that read the same whatever Python's name for the status (413's changed in 3.13).
HTTP_ERROR_CODES = {400: "bad_request", 413: "request_too_large"}


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PlaygroundError, _playground_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(OverflowError, _number_too_large)


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path == "/healthz"


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
        payload = {"error": {"code": code, "message": message, **(extra or {})}}
        if "detail" in (extra or {}):
            payload["detail"] = payload["error"].pop("detail")
        return JSONResponse(payload, status_code=status_code, headers=headers)
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
        extra["job_url"] = f"/api/jobs/{exc.job_id}"
        if exc.retry_after is not None:
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
    # A record number past the database's 64-bit integers, in a path or a query: no
    # record can have it. Any other overflow is a bug, and stays a 500.
    if not is_integer_overflow(exc):
        raise exc
    return _answer(
        request,
        status_code=404,
        code=NotFoundError.code,
        message="There is nothing with a number that large.",
    )


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    fields = field_errors(exc.errors())
    summary = "; ".join(f"{field}: {message}" for field, message in fields.items())
    detail = [
        {key: value for key, value in error.items() if key in ("loc", "msg", "type")}
        for error in exc.errors()
    ]
    return _answer(
        request,
        status_code=422,
        code="invalid_parameters",
        message=summary,
        extra={"fields": fields, "detail": detail},
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404:
        message = "There is nothing at this address."
    code = HTTP_ERROR_CODES.get(exc.status_code) or HTTPStatus(exc.status_code).phrase
    return _answer(
        request,
        status_code=exc.status_code,
        code=code.lower().replace(" ", "_"),
        message=message,
        headers=getattr(exc, "headers", None),
    )
