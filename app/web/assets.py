"""The static files (CSS, scripts, vendored htmx): read once, served from memory.

Each is addressed by its content (`static_url("app.css")` gives `/static/app.css?v=<hash>`),
so an answer to that address never changes and browsers keep it for a year without
asking again (`immutable`). A request without the current hash (an old page, a hand-typed
address) is answered too, but must be revalidated (`no-cache`, with an ETag), so a new
version is never hidden behind a stale copy. Text files are gzipped once, at start-up, and
sent compressed to every browser that says it takes gzip: no request spends CPU on it
(pages and JSON are compressed as they are sent, app/web/compression.py; the live stream
and the images stay as they are).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

# A year: the longest lifetime caches honour, for addresses whose content never changes.
IMMUTABLE = "public, max-age=31536000, immutable"
# Without the content hash: kept, but asked about (ETag) before each use.
REVALIDATE = "no-cache"
COMPRESSIBLE = ("text/", "application/javascript", "application/json", "image/svg+xml")
HASH_CHARS = 12


@dataclass(frozen=True)
class Asset:
    body: bytes
    # The gzipped body, when it is a text file that gzip makes smaller.
    gzipped: bytes | None
    media_type: str
    digest: str

    @property
    def etag(self) -> str:
        return f'"{self.digest}"'


def _media_type(path: Path) -> str:
    if path.suffix == ".js":
        return "text/javascript; charset=utf-8"
    guessed = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"{guessed}; charset=utf-8" if guessed.startswith("text/") else guessed


def _load(path: Path) -> Asset:
    body = path.read_bytes()
    media_type = _media_type(path)
    gzipped = None
    if media_type.startswith(COMPRESSIBLE):
        # mtime=0: the same bytes every start, so the compressed copy's length is stable too.
        packed = gzip.compress(body, compresslevel=9, mtime=0)
        gzipped = packed if len(packed) < len(body) else None
    return Asset(body, gzipped, media_type, hashlib.sha256(body).hexdigest()[:HASH_CHARS])


class StaticAssets:
    """Every file under `directory`, and the ASGI app that serves them (mounted at /static)."""

    def __init__(self, directory: Path, *, prefix: str = "/static") -> None:
        self.prefix = prefix
        self._assets = {
            path.relative_to(directory).as_posix(): _load(path)
            for path in sorted(directory.rglob("*"))
            if path.is_file()
        }

    def url(self, name: str) -> str:
        """The address of a static file that names its content (the template global)."""
        asset = self._assets.get(name)
        if asset is None:
            raise KeyError(f"there is no static file {name!r}")
        return f"{self.prefix}/{name}?v={asset.digest}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = self._answer(scope)
        await response(scope, receive, send)

    def _answer(self, scope: Scope) -> Response:
        if scope["method"] not in ("GET", "HEAD"):
            return PlainTextResponse("Method Not Allowed", status_code=405)
        # Mounted: the address below the mount point (Starlette keeps the full one in `path`).
        path, root = scope["path"], scope.get("root_path", "")
        name = (path[len(root) :] if root and path.startswith(root) else path).lstrip("/")
        asset = self._assets.get(name)
        if asset is None:
            return PlainTextResponse("Not Found", status_code=404)
        request_headers = Headers(scope=scope)
        query = scope.get("query_string", b"").decode("latin-1")
        current = f"v={asset.digest}" in query.split("&")
        headers = {
            "cache-control": IMMUTABLE if current else REVALIDATE,
            "etag": asset.etag,
        }
        if asset.gzipped is not None:
            # Caches keep the two encodings apart.
            headers["vary"] = "Accept-Encoding"
        if asset.etag in request_headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        body = asset.body
        if asset.gzipped is not None and _takes_gzip(request_headers.get("accept-encoding", "")):
            body = asset.gzipped
            headers["content-encoding"] = "gzip"
        if scope["method"] == "HEAD":
            headers["content-length"] = str(len(body))
            return Response(status_code=200, headers=headers, media_type=asset.media_type)
        return Response(body, headers=headers, media_type=asset.media_type)


def _takes_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header allows gzip (`gzip;q=0` refuses it)."""
    for part in accept_encoding.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            quality = params.strip().lower()
            return quality.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


@functools.cache
def static_assets(directory: Path) -> StaticAssets:
    """The files of `directory`, read once per process: they ship with the package and
    never change while it runs."""
    return StaticAssets(directory)
