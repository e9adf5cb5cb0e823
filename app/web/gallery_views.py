"""What the gallery's JSON API answers with, and how rows become those answers."""

from __future__ import annotations

from datetime import date, datetime
from json.encoder import encode_basestring
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from app.core.text import Text, WordedLine
from app.domain.parameters import RecordedParameters
from app.features.gallery import boards
from app.features.gallery.boards import Board
from app.features.gallery.compare import CompareRow
from app.features.gallery.listing import GalleryEntry
from app.features.gallery.trash import purge_time
from app.features.gallery.usage import Usage
from app.storage.db.tables import IMAGE_RECORD, ROW_ID_MAX, JobStatus
from app.web import urls
from app.web.views import (
    json_float,
    json_moment,
    json_text,
    parameters_json,
    plain_float,
)


class GalleryJobSummary(BaseModel):
    id: int
    model: str
    preset: str | None
    status: JobStatus
    parameters: RecordedParameters
    credit_cost: float | None
    created_at: datetime
    url: str


class GalleryImage(BaseModel):
    id: int
    job_id: int
    index: int
    width: int
    height: int
    content_type: str
    byte_size: int
    sha256: str
    favourite: bool
    deleted_at: datetime | None
    purge_at: datetime | None = Field(None, description="When a trashed image is purged")
    url: str
    thumbnail_url: str
    download_url: str = Field(description="The image with its parameters embedded")
    sidecar_url: str = Field(description="Its parameters as a JSON file")
    remix_url: str = Field(description="The playground, filled in with its parameters")
    job: GalleryJobSummary


class GalleryImagePage(BaseModel):
    items: list[GalleryImage]
    next_cursor: str | None


class CollectionRef(BaseModel):
    id: int
    name: str


class ReproducePublic(BaseModel):
    method: str = "POST"
    url: str
    body: dict[str, object]
    curl: str
    python: str
    javascript: str


class GalleryImageDetail(GalleryImage):
    author: str | None = Field(None, description="Who made it; none without sign-in")
    upstream_job_id: str | None
    submitted_at: datetime | None
    finished_at: datetime | None
    collections: list[CollectionRef]
    reproduce: ReproducePublic


class CollectionPublic(BaseModel):
    id: int
    name: str
    description: str
    image_count: int
    cover_thumbnail_url: str | None
    created_at: datetime
    updated_at: datetime
    gallery_url: str


# What the request bodies accept, declared as exactly as the rules enforce them, so the
# OpenAPI schema tells a client (and a fuzzer) the truth. Strict: `0` is not `false`.
ImageId = Annotated[StrictInt, Field(ge=1, le=ROW_ID_MAX)]
# A name is something to read: not only spaces (the schema says so; boards.clean_name
# refuses it, naming the field), on one line; a description may have several.
BoardName = Annotated[WordedLine, Field(max_length=boards.NAME_MAX)]
BoardDescription = Annotated[Text, Field(max_length=boards.DESCRIPTION_MAX)]


class CollectionCreate(BaseModel):
    model_config = ConfigDict(strict=True)

    name: BoardName
    description: BoardDescription = ""


class CollectionUpdate(BaseModel):
    """Fields left out (or null) stay as they are."""

    model_config = ConfigDict(strict=True)

    name: BoardName | None = None
    description: BoardDescription | None = None


class ImageIds(BaseModel):
    model_config = ConfigDict(strict=True)

    image_ids: list[ImageId] = Field(min_length=1, max_length=1000)


class FavouriteUpdate(ImageIds):
    favourite: StrictBool = True


class CountAnswer(BaseModel):
    count: int


class CompareRowPublic(BaseModel):
    name: str
    label: str
    values: list[str]
    differs: bool


class ComparePublic(BaseModel):
    images: list[GalleryImage]
    rows: list[CompareRowPublic]


class UsageDay(BaseModel):
    day: date
    credits: float
    jobs: int
    images: int


class UsageGroup(BaseModel):
    key: str | None
    credits: float
    jobs: int
    images: int


class BalancePublic(BaseModel):
    credits_remaining: float
    reported_at: datetime
    job_id: int


class UsagePublic(BaseModel):
    since: date
    until: date
    total_credits: float
    total_jobs: int
    total_images: int
    days: list[UsageDay]
    by_preset: list[UsageGroup]
    by_model: list[UsageGroup]
    by_person: list[UsageGroup] = Field(description="By name; null is work without sign-in")
    balance: BalancePublic | None


def gallery_image(entry: GalleryEntry, *, trash_days: float) -> GalleryImage:
    return GalleryImage.model_validate(gallery_image_answer(entry, trash_days=trash_days))


def gallery_image_answer(entry: GalleryEntry, *, trash_days: float) -> dict[str, Any]:
    """`GalleryImage` as a plain dict (app/web/views.py says why): the image record, its
    job and links."""
    return {
        "id": entry.image_id,
        "job_id": entry.job_id,
        **{name: getattr(entry, name) for name in IMAGE_RECORD if name != "id"},
        "purge_at": purge_time(entry.deleted_at, days=trash_days) if entry.deleted_at else None,
        "url": urls.image(entry.image_id),
        "thumbnail_url": urls.thumbnail(entry.image_id),
        "download_url": urls.download(entry.image_id),
        "sidecar_url": urls.sidecar(entry.image_id),
        "remix_url": urls.remix(entry.job_id),
        "job": {
            "id": entry.job_id,
            "model": entry.model,
            "preset": entry.preset,
            "status": entry.status,
            "parameters": RecordedParameters.from_columns(entry),
            "credit_cost": entry.credit_cost,
            "created_at": entry.created_at,
            "url": urls.job_page(entry.job_id),
        },
    }


def gallery_page_json(
    entries: list[GalleryEntry], next_cursor: str | None, *, trash_days: float
) -> bytes:
    """A `GalleryImagePage` answer, serialised: the gallery's hot path.

    Written directly, item by item, as one f-string each: building a dict per image
    and encoding it cost a third of the whole request. It is the text the model
    would write, byte for byte (tests/test_listing_answers.py checks every field
    against `GalleryImagePage`); a value this cannot write exactly (an odd float)
    goes through the model's own encoder instead."""
    items = ",".join(_image_json(entry, trash_days) for entry in entries)
    return f'{{"items":[{items}],"next_cursor":{json_text(next_cursor)}}}'.encode()


def _image_json(entry: GalleryEntry, trash_days: float) -> str:
    cost = entry.credit_cost
    if cost is not None and not plain_float(cost):
        return gallery_image(entry, trash_days=trash_days).model_dump_json()
    image, job = entry.image_id, entry.job_id
    deleted = entry.deleted_at
    purge = purge_time(deleted, days=trash_days) if deleted else None
    # `encode_basestring` directly for the columns that are never null (`json_text` adds a
    # call per value: a tenth of the page's writing).
    # The addresses are app/web/urls.py's, inline for the same reason (tests/test_urls.py).
    return (
        f'{{"id":{image},"job_id":{job},"index":{entry.index},'
        f'"width":{entry.width},"height":{entry.height},'
        f'"content_type":{encode_basestring(entry.content_type)},"byte_size":{entry.byte_size},'
        f'"sha256":{encode_basestring(entry.sha256)},'
        f'"favourite":{"true" if entry.favourite else "false"},'
        f'"deleted_at":{json_moment(deleted)},"purge_at":{json_moment(purge)},'
        f'"url":"/api/images/{image}","thumbnail_url":"/api/images/{image}/thumbnail",'
        f'"download_url":"/api/images/{image}/download",'
        f'"sidecar_url":"/api/images/{image}/sidecar","remix_url":"/?remix={job}",'
        f'"job":{{"id":{job},"model":{encode_basestring(entry.model)},'
        f'"preset":{json_text(entry.preset)},'
        f'"status":{encode_basestring(entry.status.value)},'
        f'"parameters":{parameters_json(entry)},"credit_cost":{json_float(cost)},'
        f'"created_at":{json_moment(entry.created_at)},"url":"/jobs/{job}"}}}}'
    )


def collection_public(board: Board) -> CollectionPublic:
    return CollectionPublic(
        id=board.id,
        name=board.name,
        description=board.description,
        image_count=board.image_count,
        cover_thumbnail_url=urls.thumbnail(board.cover_image_id) if board.cover_image_id else None,
        created_at=board.created_at,
        updated_at=board.updated_at,
        gallery_url=urls.collection_gallery(board.id),
    )


def compare_row_public(row: CompareRow) -> CompareRowPublic:
    return CompareRowPublic(name=row.name, label=row.label, values=row.values, differs=row.differs)


def usage_public(usage: Usage) -> UsagePublic:
    return UsagePublic(
        since=usage.since,
        until=usage.until,
        total_credits=usage.total_credits,
        total_jobs=usage.total_jobs,
        total_images=usage.total_images,
        days=[
            UsageDay(day=d.day, credits=d.credits, jobs=d.jobs, images=d.images) for d in usage.days
        ],
        by_preset=[UsageGroup(**vars(row)) for row in usage.by_preset],
        by_model=[UsageGroup(**vars(row)) for row in usage.by_model],
        by_person=[UsageGroup(**vars(row)) for row in usage.by_person],
        balance=BalancePublic(**vars(usage.balance)) if usage.balance else None,
    )
