"""Turning rows into what the API answers and what templates show."""

from __future__ import annotations

from app.errors import NotFoundError
from app.jobs.reads import ImageSummary, JobListItem, JobSummary, JobWithImages
from app.models import (
    Image,
    ImagePublic,
    Job,
    JobPublic,
    PresetPublic,
    ReferencePublic,
    RemixOfPublic,
)
from app.parameters import RecordedParameters
from app.presets import Preset
from app.storage import IMAGE_CONTENT_TYPES

# An image answer is only ever an image: a browser may not sniff it into something else,
# and opened on its own it is a sandboxed document that can run nothing and load nothing.
IMAGE_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'",
}


def image_headers(image_id: int, content_type: str) -> dict[str, str]:
    """The headers every image and thumbnail answer carries; refuses a type not on the
    allow-list (only a row written before imports were checked could have one)."""
    if content_type not in IMAGE_CONTENT_TYPES:
        raise NotFoundError(
            f"Image {image_id} is not stored as a PNG, JPEG or WebP image, so it is not served."
        )
    return {"Content-Type": content_type, **IMAGE_SECURITY_HEADERS}


def image_url(image_id: int) -> str:
    return f"/api/images/{image_id}"


def thumbnail_url(image_id: int) -> str:
    return f"/api/images/{image_id}/thumbnail"


def job_parameters(job: Job | JobSummary) -> RecordedParameters:
    return RecordedParameters.from_columns(job)


def image_public(image: Image | ImageSummary) -> ImagePublic:
    assert image.id is not None
    return ImagePublic(
        id=image.id,
        index=image.index,
        width=image.width,
        height=image.height,
        content_type=image.content_type,
        byte_size=image.byte_size,
        sha256=image.sha256,
        url=image_url(image.id),
        thumbnail_url=thumbnail_url(image.id),
        favourite=image.favourite,
        deleted_at=image.deleted_at,
    )


def job_public(item: JobWithImages | JobListItem) -> JobPublic:
    job = item.job
    assert job.id is not None
    return JobPublic(
        id=job.id,
        author=item.author,
        status=job.status,
        status_label=job.status.label,
        finished=job.status.is_finished,
        model=job.model,
        preset=job.preset,
        parameters=job_parameters(job),
        upstream_job_id=job.upstream_job_id,
        error=job.error,
        credit_cost=job.credit_cost,
        credits_remaining=job.credits_remaining,
        created_at=job.created_at,
        submitted_at=job.submitted_at,
        finished_at=job.finished_at,
        expires_at=job.expires_at,
        images=[image_public(image) for image in item.images],
        url=f"/jobs/{job.id}",
        remix_of=RemixOfPublic(
            job_id=job.remix_of_job_id,
            image_index=job.remix_of_image_index,
            url=f"/jobs/{job.remix_of_job_id}",
        )
        if job.remix_of_job_id is not None
        else None,
        reference_images=[
            ReferencePublic(
                image_id=image_id, url=image_url(image_id), thumbnail_url=thumbnail_url(image_id)
            )
            for image_id in job.reference_images or ()
        ],
    )


def preset_public(preset: Preset) -> PresetPublic:
    params = preset.params()
    return PresetPublic(
        slug=preset.slug,
        name=preset.name,
        description=preset.description,
        parameters=params,
        estimated_credits=params.estimated_credits,
    )
