"""The shapes the JSON API answers with: what leaves the server, as opposed to the rows
the tables hold (app/storage/db/tables.py). Only the web app builds them; the OpenAPI
description shows them under these names."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from app.domain.parameters import GenerationParams, RecordedParameters
from app.storage.db.tables import JobStatus


class ImagePublic(BaseModel):
    id: int
    index: int
    width: int
    height: int
    content_type: str
    byte_size: int
    sha256: str
    url: str
    thumbnail_url: str
    favourite: bool = False
    deleted_at: datetime | None = None


class RemixOfPublic(BaseModel):
    job_id: int
    image_index: int | None = Field(description="Which of its images, from 0; None: the job")
    url: str


class ReferencePublic(BaseModel):
    image_id: int
    url: str
    thumbnail_url: str


class JobPublic(BaseModel):
    id: int
    author: str | None = None
    status: JobStatus
    status_label: str
    finished: bool
    model: str
    preset: str | None
    parameters: RecordedParameters
    upstream_job_id: str | None
    error: str | None
    credit_cost: float | None
    credits_remaining: float | None
    created_at: datetime
    submitted_at: datetime | None
    finished_at: datetime | None
    expires_at: datetime | None
    images: list[ImagePublic]
    url: str = Field(description="The job's page, for people")
    api_url: str = Field(description="The job in this API: GET it to follow the job")
    remix_of: RemixOfPublic | None = None
    reference_images: list[ReferencePublic] = Field(
        default_factory=list, description="Gallery images sent as references, in order"
    )
    typical_seconds: float | None = Field(
        None,
        description="While it runs: how long recent jobs of its model took, from submission "
        "to stored images (None: finished, or no history yet)",
    )


class JobPage(BaseModel):
    items: list[JobPublic]
    next_cursor: str | None


class PresetPublic(BaseModel):
    slug: str
    name: str
    description: str
    parameters: GenerationParams = Field(
        description="What it runs with under the rules in force (its size may be the nearest "
        "one the live schema allows: `note` says so)"
    )
    estimated_credits: int
    available: bool = Field(True, description="False: the rules in force leave it no run")
    note: str | None = Field(None, description="How the rules in force change it, if they do")


class TeamPresetPublic(BaseModel):
    id: int
    name: str
    description: str
    parameters: GenerationParams
    estimated_credits: int
    created_at: datetime
