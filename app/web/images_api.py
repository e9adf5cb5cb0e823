"""The stored images over HTTP: each image's bytes, its thumbnail and its preview.

Each answer names its bytes with a strong ETag and may be cached for good (an image id
never names other bytes), and carries the headers that keep a browser from treating an
image as anything else (`image_headers`). An S3 store in redirect mode sends the browser
to the bucket instead of streaming through the app.
"""

from __future__ import annotations

import hashlib

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse

from app.core.errors import NotFoundError
from app.features.jobs import reads
from app.storage.intake import PREVIEW_CONTENT_TYPE, has_preview
from app.web import urls
from app.web.conditional import ACCEPT_RANGES, bytes_answer, none_match
from app.web.deps import ServicesDep
from app.web.services import Services
from app.web.views import image_headers

router = APIRouter(prefix="/api", tags=["api"])

# Stored images never change: their URL names one set of bytes forever.
IMMUTABLE_CACHE = "private, max-age=31536000, immutable"


@router.get(
    "/images/{image_id}",
    name="get_image",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}}},
        206: {"description": "The bytes the Range asked for"},
        304: {"description": "Not modified: the If-None-Match ETag is this image's"},
        416: {"description": "The Range names no byte of the image"},
    },
)
def get_image(image_id: int, request: Request, services: ServicesDep) -> Response:
    stored = reads.get_image(services.db, image_id=image_id)
    if stored is None:
        raise NotFoundError(f"There is no image {image_id}.")
    headers = {
        **image_headers(image_id, stored.content_type),
        "Cache-Control": IMMUTABLE_CACHE,
    }
    etag = f'"{stored.sha256}"'
    if none_match(request, etag):
        return Response(status_code=304, headers={**headers, **ACCEPT_RANGES, "ETag": etag})
    url = services.blobs.redirect_url(stored.sha256, content_type=stored.content_type)
    if url is not None:
        return _redirect(url, services)
    return bytes_answer(
        request,
        etag=etag,
        length=stored.byte_size,
        chunks=lambda: services.blobs.iter_chunks(stored.sha256),
        headers=headers,
    )


@router.get(
    "/images/{image_id}/thumbnail",
    name="get_thumbnail",
    response_class=Response,
    responses={200: {"content": {"image/webp": {}}}},
)
def get_thumbnail(image_id: int, request: Request, services: ServicesDep) -> Response:
    stored = reads.get_image(services.db, image_id=image_id)
    if stored is None:
        raise NotFoundError(f"There is no image {image_id}.")
    thumbnail = services.thumbnails.find(image_id=image_id, sha256=stored.sha256)
    if thumbnail is None:
        raise NotFoundError(f"Image {image_id} has no thumbnail.")
    if thumbnail.redirect is not None:
        return _redirect(thumbnail.redirect, services)
    data = thumbnail.data
    return bytes_answer(
        request,
        # Of its own bytes: a thumbnail made again (a new encoder) is another representation.
        etag=f'"{hashlib.sha256(data).hexdigest()}"',
        length=len(data),
        chunks=lambda: (data,),
        headers={
            **image_headers(image_id, thumbnail.content_type),
            "Cache-Control": IMMUTABLE_CACHE,
        },
    )


@router.get(
    "/images/{image_id}/preview",
    name="get_preview",
    response_class=Response,
    responses={
        200: {"content": {"image/webp": {}}},
        307: {"description": "The image is no larger than a preview: to the image itself"},
    },
)
def get_preview(image_id: int, request: Request, services: ServicesDep) -> Response:
    """The image at most 1024 px a side (app/storage/previews.py)."""
    stored = reads.get_image(services.db, image_id=image_id)
    if stored is None:
        raise NotFoundError(f"There is no image {image_id}.")
    if not has_preview(stored.width, stored.height):
        # Pages offer no preview of such an image; an address written by hand still works.
        return RedirectResponse(
            urls.image(image_id), status_code=307, headers={"Cache-Control": IMMUTABLE_CACHE}
        )
    data = services.previews.find(stored.sha256)
    if data is None:  # purged since the row was read
        raise NotFoundError(f"There is no image {image_id}.")
    return bytes_answer(
        request,
        etag=f'"{hashlib.sha256(data).hexdigest()}"',
        length=len(data),
        chunks=lambda: (data,),
        headers={
            **image_headers(image_id, PREVIEW_CONTENT_TYPE),
            "Cache-Control": IMMUTABLE_CACHE,
        },
    )


def _redirect(url: str, services: Services) -> Response:
    """To the bytes in the S3 store: a presigned URL, cached no longer than half its life."""
    max_age = services.settings.s3_redirect_seconds // 2
    return RedirectResponse(
        url, status_code=307, headers={"Cache-Control": f"private, max-age={max_age}"}
    )
