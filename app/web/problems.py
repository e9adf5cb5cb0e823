"""API errors as RFC 9457 problem details (`application/problem+json`).

Every error the API answers has the standard members (`type`, `title`, `status`,
`detail`) so generic clients and gateways read it, and keeps the members scripts
written against earlier versions read: `code`, a stable machine name, as an extension
member, and the `error` object (`code`, `message` and any extension such as `fields`).
Built here alone, so the gate, the body limit and the error handlers answer alike.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi.responses import JSONResponse

PROBLEM_JSON = "application/problem+json"
# No page describes each problem: the status's phrase is the title, `code` the kind.
PROBLEM_TYPE = "about:blank"


def problem_body(
    status: int, code: str, message: str, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The problem document: `extra` (fields, job_id, …) sits at the top and in `error`."""
    extra = extra or {}
    return {
        "type": PROBLEM_TYPE,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": message,
        "code": code,
        **extra,
        "error": {"code": code, "message": message, **extra},
    }


def problem_response(
    status: int,
    code: str,
    message: str,
    *,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        problem_body(status, code, message, extra),
        status_code=status,
        headers=headers,
        media_type=PROBLEM_JSON,
    )
