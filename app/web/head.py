"""HEAD on every GET route (RFC 9110 §9.3.2): the GET's status and headers, no body.

FastAPI's routes answer only the methods they name, so a HEAD would be a 405 on every
page, image and listing. Rather than name HEAD on each route (and have it appear as a
second operation of each in the OpenAPI), a HEAD is run as the GET it asks about and
its body dropped here. Routes that stream bytes look at `is_head` and do not read them.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Set in the scope the app sees: the request was a HEAD, answered as its GET.
HEAD_SCOPE_KEY = "seedream.head"


def is_head(request: Request) -> bool:
    return bool(request.scope.get(HEAD_SCOPE_KEY))


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        finished = False

        async def headers_only(message: Message) -> None:
            nonlocal finished
            if message["type"] != "http.response.body":
                await send(message)
            elif not finished:
                finished = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app({**scope, "method": "GET", HEAD_SCOPE_KEY: True}, receive, headers_only)
