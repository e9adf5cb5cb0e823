"""Turning rows into what the API answers and what templates show.

Listing pages are written as JSON item by item (`job_page_json`), byte for byte
what their `*Public` models would write: building and validating a model per item
cost as much as reading the page (docs/benchmarks.md). An item holding a value a
plain writer cannot match (a float beyond its range) is written by its model instead,
and single answers are the models, validated from dicts built from the same rows
(`job_answer`). tests/test_listing_answers.py checks every listing answer against its
model, and tests/test_listing_writers.py the writers over random rows, so the two
cannot drift apart.
"""

from __future__ import annotations

import math
from datetime import datetime
from json.encoder import encode_basestring
from typing import Any

from app.core.errors import NotFoundError
from app.domain.parameters import RecordedParameters
from app.domain.presets import PresetRun
from app.features.gallery.listing import JobWithImages
from app.features.jobs.reads import ImageSummary, JobListItem, JobSummary
from app.storage.db.tables import IMAGE_RECORD, Image, Job
from app.storage.intake import IMAGE_CONTENT_TYPES
from app.web import urls
from app.web.schemas import ImagePublic, JobPublic, PresetPublic

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


def job_parameters(job: Job | JobSummary) -> RecordedParameters:
    return RecordedParameters.from_columns(job)


def image_public(image: Image | ImageSummary) -> ImagePublic:
    return ImagePublic(**image_answer(image))


def image_answer(image: Image | ImageSummary) -> dict[str, Any]:
    """`ImagePublic` as a plain dict (the module docstring says why): the image record and
    its links."""
    assert image.id is not None
    answer = {name: getattr(image, name) for name in IMAGE_RECORD}
    answer["url"] = urls.image(image.id)
    answer["thumbnail_url"] = urls.thumbnail(image.id)
    return answer


def job_public(item: JobWithImages | JobListItem) -> JobPublic:
    return JobPublic.model_validate(job_answer(item))


def job_answer(item: JobWithImages | JobListItem) -> dict[str, Any]:
    """`JobPublic` as a plain dict (the module docstring says why)."""
    job = item.job
    assert job.id is not None
    return {
        "id": job.id,
        "author": item.author,
        "status": job.status,
        "status_label": job.state_label,
        "finished": job.status.is_finished,
        "model": job.model,
        "preset": job.preset,
        # A model inside the dict: written by its own serialiser, accepted as is by validation.
        "parameters": job_parameters(job),
        "upstream_job_id": job.upstream_job_id,
        "error": job.error,
        "credit_cost": job.credit_cost,
        "credits_remaining": job.credits_remaining,
        "created_at": job.created_at,
        "submitted_at": job.submitted_at,
        "finished_at": job.finished_at,
        "expires_at": job.expires_at,
        "images": [image_answer(image) for image in item.images],
        "url": urls.job_page(job.id),
        "api_url": urls.job_api(job.id),
        "remix_of": {
            "job_id": job.remix_of_job_id,
            "image_index": job.remix_of_image_index,
            "url": urls.job_page(job.remix_of_job_id),
        }
        if job.remix_of_job_id is not None
        else None,
        "reference_images": [
            {
                "image_id": image_id,
                "url": urls.image(image_id),
                "thumbnail_url": urls.thumbnail(image_id),
            }
            for image_id in job.reference_images or ()
        ],
        # Listings leave it out (None): only a job's own answer looks it up.
        "typical_seconds": None,
    }


def job_page_json(items: list[JobWithImages] | list[JobListItem], next_cursor: int | None) -> bytes:
    """A `JobPage` answer, serialised: the listings' hot path, written directly as
    the gallery's is (app/web/gallery_views.py says why; tests/test_listing_answers.py
    checks it byte for byte against the model)."""
    written = ",".join(_job_json(item) for item in items)
    cursor = json_text(str(next_cursor) if next_cursor is not None else None)
    return f'{{"items":[{written}],"next_cursor":{cursor}}}'.encode()


def _job_json(item: JobWithImages | JobListItem) -> str:
    # The addresses are app/web/urls.py's, inline: a call each per row is a share of the page
    # (tests/test_urls.py holds them to urls.py).
    job = item.job
    costs = (job.credit_cost, job.credits_remaining)
    if any(cost is not None and not plain_float(cost) for cost in costs):
        return job_public(item).model_dump_json()
    number = job.id
    images = ",".join(_image_json(image) for image in item.images)
    remix = (
        f'{{"job_id":{job.remix_of_job_id},"image_index":{json_integer(job.remix_of_image_index)},'
        f'"url":"/jobs/{job.remix_of_job_id}"}}'
        if job.remix_of_job_id is not None
        else "null"
    )
    references = ",".join(
        f'{{"image_id":{int(image)},"url":"/api/images/{int(image)}",'
        f'"thumbnail_url":"/api/images/{int(image)}/thumbnail"}}'
        for image in job.reference_images or ()
    )
    status = job.status
    return (
        f'{{"id":{number},"author":{json_text(item.author)},"status":{encode_basestring(status.value)},'
        f'"status_label":{encode_basestring(job.state_label)},'
        f'"finished":{"true" if status.is_finished else "false"},'
        f'"model":{encode_basestring(job.model)},"preset":{json_text(job.preset)},'
        f'"parameters":{parameters_json(job)},'
        f'"upstream_job_id":{json_text(job.upstream_job_id)},"error":{json_text(job.error)},'
        f'"credit_cost":{json_float(job.credit_cost)},'
        f'"credits_remaining":{json_float(job.credits_remaining)},'
        f'"created_at":{json_moment(job.created_at)},"submitted_at":{json_moment(job.submitted_at)},'
        f'"finished_at":{json_moment(job.finished_at)},"expires_at":{json_moment(job.expires_at)},'
        f'"images":[{images}],"url":"/jobs/{number}","api_url":"/api/jobs/{number}",'
        f'"remix_of":{remix},'
        f'"reference_images":[{references}],'
        # Listings leave it out (None): only a job's own answer looks it up.
        '"typical_seconds":null}'
    )


def _image_json(image: Image | ImageSummary) -> str:
    number = image.id
    return (
        f'{{"id":{number},"index":{image.index},"width":{image.width},"height":{image.height},'
        f'"content_type":{encode_basestring(image.content_type)},"byte_size":{image.byte_size},'
        f'"sha256":{encode_basestring(image.sha256)},"url":"/api/images/{number}",'
        f'"thumbnail_url":"/api/images/{number}/thumbnail",'
        f'"favourite":{"true" if image.favourite else "false"},'
        f'"deleted_at":{json_moment(image.deleted_at)}}}'
    )


def parameters_json(row: Any) -> str:
    """`RecordedParameters` of a job row (or a listing row with its columns), written."""
    return (
        f'{{"prompt":{encode_basestring(row.prompt)},'
        f'"image_size":{encode_basestring(row.image_size)},'
        f'"customWidth":{json_integer(row.custom_width)},'
        f'"customHeight":{json_integer(row.custom_height)},"seed":{json_integer(row.seed)},'
        f'"num_images":{row.num_images}}}'
    )


# --- Writing JSON as pydantic writes it (for the listings' hot paths) -----------------


def json_text(value: str | None) -> str:
    # As pydantic writes strings: UTF-8 as is, quotes, backslashes and controls escaped
    # (json's own C encoder for `ensure_ascii=False`, without `json.dumps`' overhead).
    return "null" if value is None else encode_basestring(value)


def json_integer(value: int | None) -> str:
    return "null" if value is None else str(int(value))


def json_float(value: float | None) -> str:
    """Only for values `plain_float` accepts (the callers check)."""
    return "null" if value is None else repr(float(value))


def json_moment(value: datetime | None) -> str:
    # Aware UTC datetimes, as pydantic writes them: ISO 8601 with a Z.
    return "null" if value is None else f'"{value.isoformat().replace("+00:00", "Z")}"'


def plain_float(value: float) -> bool:
    """Whether Python's shortest repr is the text pydantic writes (no exponent, finite)."""
    return value == 0 or (math.isfinite(value) and 1e-4 <= abs(value) < 1e15)


def preset_public(run: PresetRun) -> PresetPublic:
    params = run.params or run.preset.params()
    return PresetPublic(
        slug=run.preset.slug,
        name=run.preset.name,
        description=run.preset.description,
        parameters=params,
        estimated_credits=params.estimated_credits,
        available=run.available,
        note=run.note,
    )
