"""Reference images: uploading one, picking from the gallery, and the signed links
PixelDojo fetches them by (app/features/jobs/references.py holds the rules; these routes are
thin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from app.core.errors import NotFoundError, UploadRefused, UploadTooLarge
from app.features.gallery import listing as gallery
from app.features.gallery import lookups
from app.features.jobs import references
from app.features.jobs.references import SignedReference
from app.storage.db.tables import ROW_ID_MAX
from app.storage.intake import scratch_file
from app.upstream import DownloadRefused
from app.web import urls
from app.web.bodies import REFERENCE_UPLOAD_PATH
from app.web.deps import CurrentUser, ServicesDep, TemplatesDep
from app.web.views import image_headers

router = APIRouter(tags=["references"])

PICKER_PAGE_SIZE = 24
QUERY_MAX_CHARS = 500


class UploadPublic(BaseModel):
    image_id: int = Field(description="Send it in reference_images")
    url: str
    thumbnail_url: str
    width: int
    height: int


@router.post(
    REFERENCE_UPLOAD_PATH,
    status_code=201,
    response_model=UploadPublic,
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The image's bytes: PNG, JPEG or WebP, told apart by their "
            "bytes (any Content-Type is read the same)",
            # One type: generated clients take a body of one type only.
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def upload_image(
    request: Request,
    services: ServicesDep,
    user: CurrentUser,
    name: Annotated[
        str | None, Query(max_length=references.UPLOAD_NAME_MAX_CHARS, description="File name")
    ] = None,
) -> UploadPublic:
    """Keep an image in the gallery, marked as an upload, to send as a reference: the body is
    the image's bytes (PNG, JPEG or WebP), checked like a download (type, bytes, pixels).
    The same bytes uploaded again answer the earlier upload."""
    cap = services.settings.download_max_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise UploadTooLarge(f"The file is {int(declared):,} bytes; uploads may be {cap:,}.")
    with scratch_file(services.settings.scratch_dir / "uploads") as (path, stream):
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > cap:
                raise UploadTooLarge(f"The file is over the {cap:,}-byte cap for uploads.")
            stream.write(chunk)
        stream.flush()
        if size == 0:
            raise UploadRefused("The upload is empty: send the image's bytes as the body.")
        try:
            image_id = await run_in_threadpool(
                lambda: references.store_upload(
                    services.db, services.blobs, path, name=name, user=user
                )
            )
        except DownloadRefused as refused:
            raise UploadRefused(f"This file cannot be kept: {refused.message}.") from None
    entry = await run_in_threadpool(lambda: lookups.get_entry(services.db, image_id=image_id))
    assert entry is not None
    return UploadPublic(
        image_id=image_id,
        url=urls.image(image_id),
        thumbnail_url=urls.thumbnail(image_id),
        width=entry.width,
        height=entry.height,
    )


@router.get("/references/{image_id}", include_in_schema=False)
def signed_reference(
    image_id: int,
    services: ServicesDep,
    expires: Annotated[int, Query(ge=0, le=2**40)],
    side: Annotated[int, Query(ge=1, le=65_536)],
    bytes_: Annotated[int, Query(alias="bytes", ge=1, le=2**40)],
    signature: Annotated[str, Query(alias=references.SIGNATURE_PARAMETER, max_length=64)],
) -> Response:
    """A reference image for PixelDojo to fetch, while its signed link lasts."""
    signed = SignedReference(image_id, side, bytes_, expires)
    entry = lookups.get_entry(services.db, image_id=image_id) if image_id <= ROW_ID_MAX else None
    if entry is None or not signed.valid(services.access.signer, signature):
        # One answer for a wrong, an expired and an unknown link: it tells nothing.
        raise NotFoundError("This link does not work (it may have expired).")
    prepared = references.prepare(services.blobs, entry, max_side=side, max_bytes=bytes_)
    return Response(
        prepared.data,
        headers={
            **image_headers(image_id, prepared.content_type),
            "Cache-Control": "private, max-age=300",
        },
    )


@router.get("/playground/references", response_class=HTMLResponse, include_in_schema=False)
def reference_choices(
    request: Request,
    services: ServicesDep,
    templates: TemplatesDep,
    q: Annotated[str | None, Query(max_length=QUERY_MAX_CHARS)] = None,
    cursor: Annotated[str | None, Query(max_length=50)] = None,
) -> Response:
    """The team's images to pick references from, newest first, searched by prompt."""
    after = None
    if cursor:
        try:
            after = gallery.Cursor.parse(cursor)
        except ValueError:
            raise NotFoundError("There is no such page of images.") from None
    page = gallery.search_images(
        services.db,
        filters=gallery.GalleryFilters(q=q or None),
        cursor=after,
        limit=PICKER_PAGE_SIZE,
    )
    return templates.TemplateResponse(
        request,
        "partials/_reference_choices.html",
        {"page": page, "q": q or "", "more": cursor is not None},
    )
