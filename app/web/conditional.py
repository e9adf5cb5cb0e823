"""Conditional and partial requests (RFC 9110 §13, §14) for the answers that carry bytes.

Images, thumbnails and downloads name their bytes with a strong ETag, so a cache may ask
`If-None-Match` (any of a list, weak or strong, or `*`) and a player or a resumed download
may ask for a `Range` of them. Ranges are cut from the store's own chunk stream, so they
work the same from every blob store without a store knowing about them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from fastapi import Request, Response
from fastapi.responses import StreamingResponse

from app.core.errors import NotFoundError
from app.storage.blobs.protocol import BlobNotFound
from app.web.head import is_head

# Only byte ranges exist; saying so tells clients they may ask.
ACCEPT_RANGES = {"Accept-Ranges": "bytes"}


@dataclass(frozen=True)
class ByteRange:
    """Bytes `start` to `end` inclusive, as Content-Range counts them."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class Unsatisfiable(ValueError):
    """The Range names no byte of the representation: answered 416."""


def _opaque(tag: str) -> str:
    """The tag without its weakness mark, for the weak comparison."""
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


def none_match(request: Request, etag: str) -> bool:
    """Whether If-None-Match names this representation (weak comparison, §13.1.2): then
    the client's copy is current and the answer is 304."""
    header = request.headers.get("if-none-match")
    if header is None:
        return False
    if header.strip() == "*":
        return True
    wanted = _opaque(etag)
    return any(_opaque(tag) == wanted for tag in header.split(",") if tag.strip())


def requested_range(request: Request, etag: str, length: int) -> ByteRange | None:
    """The one byte range asked for, or None for the whole representation.

    Several ranges, a unit other than bytes or a syntax error are answered whole (a server
    may ignore Range, §14.2), as is a range whose If-Range names other bytes than these
    (strong comparison). Raises Unsatisfiable when no byte of it exists."""
    header = request.headers.get("range")
    if header is None:
        return None
    if_range = request.headers.get("if-range")
    if if_range is not None and (if_range.strip().startswith("W/") or if_range.strip() != etag):
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = (part.strip() for part in spec.partition("-"))
    well_formed = all(not part or part.isdigit() for part in (first, last))
    if not dash or not well_formed or not (first or last):
        return None
    if not first:  # a suffix: the last N bytes
        suffix = int(last)
        if suffix == 0 or length == 0:
            raise Unsatisfiable(header)
        return ByteRange(max(0, length - suffix), length - 1)
    start = int(first)
    end = min(int(last), length - 1) if last else length - 1
    if last and int(last) < start:
        return None
    if start >= length:
        raise Unsatisfiable(header)
    return ByteRange(start, end)


def slice_chunks(chunks: Iterable[bytes], wanted: ByteRange) -> Iterator[bytes]:
    """The bytes of `wanted` out of a chunk stream, read no further than its end."""
    offset = 0
    for chunk in chunks:
        chunk_end = offset + len(chunk)
        if chunk_end > wanted.start:
            yield chunk[max(0, wanted.start - offset) : wanted.end + 1 - offset]
        offset = chunk_end
        if offset > wanted.end:
            return


def bytes_answer(
    request: Request,
    *,
    etag: str,
    length: int,
    chunks: Callable[[], Iterable[bytes]],
    headers: dict[str, str],
) -> Response:
    """200, 206, 304 or 416 for a representation of `length` bytes named `etag`; `chunks`
    is called only when bytes are sent."""
    headers = {**headers, **ACCEPT_RANGES, "ETag": etag}
    if none_match(request, etag):
        return Response(status_code=304, headers=headers)
    try:
        wanted = requested_range(request, etag, length)
    except Unsatisfiable:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{length}"})
    if wanted is None:
        status, headers = 200, {**headers, "Content-Length": str(length)}
    else:
        status = 206
        headers = {
            **headers,
            "Content-Length": str(wanted.length),
            "Content-Range": f"bytes {wanted.start}-{wanted.end}/{length}",
        }
    if is_head(request):
        # The headers the GET would have, without reading a byte from the store.
        return Response(status_code=status, headers=headers)
    body = iter(chunks() if wanted is None else slice_chunks(chunks(), wanted))
    # The first chunk is read before any header is sent: bytes deleted between the row's
    # read and this one (a trash purge racing a request) are then a clean 404, not a body
    # cut off after its headers promised it whole.
    try:
        first = next(body, b"")
    except BlobNotFound:
        raise NotFoundError("These bytes are no longer stored: the image was deleted.") from None
    return StreamingResponse(itertools.chain((first,), body), status_code=status, headers=headers)
