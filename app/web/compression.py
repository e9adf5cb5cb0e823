"""Pages and JSON answers, gzipped for clients that take gzip.

A playground page is 20 to 60 KB of HTML that compresses to a fifth of that; on a
phone or a team server across the internet those bytes are most of the wait.
Only whole text answers are compressed: HTML, JSON and problem details sent in one
piece. Images (already compressed), the live streams (a compressor would hold
their messages back) and downloads streamed in parts pass as they are. Static files
are compressed once, at start-up (app/web/assets.py), and arrive here already
encoded, so they pass too.

Every token a page carries is masked afresh in each page (app/core/signing.py), so
compressing pages that echo what a visitor typed tells an eavesdropper nothing.
"""

from __future__ import annotations

import gzip

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COMPRESSED_TYPES = ("text/html", "application/json", "application/problem+json")
# Below this, gzip's own header and the CPU cost more than the bytes saved.
MINIMUM_SIZE = 1024
# Level 5 is within a few percent of 9's size on HTML at a third of its CPU.
LEVEL = 5


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether Accept-Encoding takes gzip: named with a quality above 0, or, when not named,
    `*` with one (RFC 9110 §12.5.3)."""
    qualities: dict[str, float] = {}
    for item in accept_encoding.split(","):
        coding, _, params = item.strip().partition(";")
        quality = params.strip().lower().removeprefix("q=")
        try:
            qualities[coding.strip().lower()] = float(quality) if params else 1.0
        except ValueError:
            qualities[coding.strip().lower()] = 0.0
    return qualities.get("gzip", qualities.get("*", 0.0)) > 0


class CompressText:
    """ASGI middleware: gzips whole HTML and JSON answers when the client accepts gzip."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wants_gzip = accepts_gzip(Headers(scope=scope).get("accept-encoding", ""))
        start: Message | None = None
        passing = False

        async def compressing_send(message: Message) -> None:
            nonlocal start, passing
            if message["type"] == "http.response.start":
                headers = Headers(raw=message["headers"])
                media_type = headers.get("content-type", "").partition(";")[0].strip()
                if media_type not in COMPRESSED_TYPES or "content-encoding" in headers:
                    passing = True
                    await send(message)
                    return
                # Caches must keep the gzipped and the plain answer apart.
                MutableHeaders(raw=message["headers"]).add_vary_header("Accept-Encoding")
                if not wants_gzip:
                    passing = True
                    await send(message)
                    return
                start = message
                return
            if passing or start is None or message["type"] != "http.response.body":
                await send(message)
                return
            body: bytes = message.get("body", b"")
            held, start = start, None
            passing = True
            if message.get("more_body", False) or len(body) < MINIMUM_SIZE:
                # Streamed in parts, or too small to be worth it: sent as it comes.
                await send(held)
                await send(message)
                return
            packed = gzip.compress(body, compresslevel=LEVEL, mtime=0)
            headers = MutableHeaders(raw=held["headers"])
            headers["Content-Encoding"] = "gzip"
            headers["Content-Length"] = str(len(packed))
            etag = headers.get("etag")
            if etag is not None and not etag.startswith("W/"):
                # The same content in other bytes: no longer byte-for-byte that tag.
                headers["ETag"] = "W/" + etag
            await send(held)
            await send({"type": "http.response.body", "body": packed, "more_body": False})

        await self.app(scope, receive, compressing_send)
