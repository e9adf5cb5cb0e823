"""Request bodies are counted as they stream in, and refused (413) past their limit.

Every route's body passes through `BodyLimit` before anything reads it: the
declared `Content-Length` is checked first, then every chunk is counted as it
arrives, so a body sent without a length (chunked) is stopped at its limit
too, whoever reads it: a route, FastAPI's form or JSON parsing, or the
cross-site check. Nothing is buffered here; past the limit the reader gets
`BodyTooLarge` (an HTTP 413) instead of the next chunk.

Forms and JSON get 1 MiB, which no form or JSON document of this app comes
near. A route that takes more (an upload, a batch) names its own, larger limit
in `UPLOAD_LIMITS` (path prefix → bytes), or in `body_limits` when its limit
is a setting.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.config import Settings
from app.web.problems import problem_response

FORM_AND_JSON_LIMIT = 1024 * 1024
# Routes that take more than a form, by path prefix, with their own limit: a batch check
# holds up to 1,000 jobs, each with a prompt of up to 4,000 characters.
UPLOAD_LIMITS: Mapping[str, int] = {"/api/jobs/check": 8 * 1024 * 1024}
# A reference image uploaded to be sent: its bytes, as large as a download may be.
REFERENCE_UPLOAD_PATH = "/api/uploads"


def body_limits(settings: Settings) -> dict[str, int]:
    """Every route's own limit, those that follow a setting included."""
    return {**UPLOAD_LIMITS, REFERENCE_UPLOAD_PATH: settings.download_max_bytes}


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(
            status_code=413,
            detail=f"The request body is larger than this address accepts ({limit:,} bytes).",
        )
        self.limit = limit


def body_limit_for(path: str, uploads: Mapping[str, int] = UPLOAD_LIMITS) -> int:
    for prefix, limit in uploads.items():
        if path.startswith(prefix):
            return limit
    return FORM_AND_JSON_LIMIT


class BodyLimit:
    """ASGI middleware: count each request body as it streams, answer 413 past its limit."""

    def __init__(self, app: ASGIApp, *, uploads: Mapping[str, int] = UPLOAD_LIMITS) -> None:
        self.app = app
        self.uploads = uploads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit_for(scope["path"], self.uploads)
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            # Refused before a byte of it is read.
            await _refuse(BodyTooLarge(limit), scope, receive, send)
            return

        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        started = False

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge as too_large:
            # Raised where no error handler answers it (middleware reading the body).
            if started:
                raise
            await _refuse(too_large, scope, receive, send)


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(too_large: BodyTooLarge, scope: Scope, receive: Receive, send: Send) -> None:
    response = problem_response(
        413,
        "request_too_large",
        too_large.detail,
        # The rest of the body is not read: the connection cannot carry another request.
        headers={"Connection": "close"},
    )
    await response(scope, receive, send)
