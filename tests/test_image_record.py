"""The image record is declared once (`IMAGE_RECORD`, app/storage/db/tables.py): every other list
of an image's fields, in the answers' models, the read models, the fast writers, the gallery's
rows, a download's metadata and the export, is that one, or a named part of it, in its order.
A field added to one of them and not to the record fails here, naming where."""

from __future__ import annotations

import json
from dataclasses import fields, replace
from typing import Any

from app.features.archive.rows import IMAGES, KEY_FIELDS
from app.features.gallery.image_metadata import record
from app.features.gallery.listing import ENTRY_COLUMNS, GalleryEntry
from app.features.jobs.reads import ImageSummary, JobListItem, JobSummary, StoredImage
from app.storage.db.tables import IMAGE_RECORD, Job, JobStatus
from app.web.gallery_views import (
    GalleryImage,
    GalleryImageDetail,
    gallery_image_answer,
    gallery_page_json,
)
from app.web.schemas import ImagePublic
from app.web.views import image_answer, job_page_json
from tests.support.gallery_seed import GALLERY_ENTRY

# What answers add to the record: links made from the id.
IMAGE_LINKS = ("url", "thumbnail_url")
# What the gallery's answer adds: the job's id, when the trash lets go of it, more links and
# the job that made it.
GALLERY_ADDS = (
    "job_id",
    "purge_at",
    *IMAGE_LINKS,
    "download_url",
    "sidecar_url",
    "remix_url",
    "job",
)


def in_record_order(names: list[str]) -> list[str]:
    """The record's fields among `names`, in the order `names` has them."""
    return [name for name in names if name in IMAGE_RECORD]


def test_the_record_is_columns_of_the_images_table() -> None:
    assert len(set(IMAGE_RECORD)) == len(IMAGE_RECORD)
    assert set(IMAGE_RECORD) <= set(IMAGES.columns.keys())
    # The export writes whole rows, so it carries the record; the import reads these by name.
    assert set(KEY_FIELDS["images.jsonl"]) <= {*IMAGE_RECORD, "job_id"}


def test_the_read_models_are_the_record() -> None:
    assert tuple(field.name for field in fields(ImageSummary)) == IMAGE_RECORD
    # Serving an image reads three of its columns.
    assert {field.name for field in fields(StoredImage)} <= set(IMAGE_RECORD)


def test_the_answers_models_are_the_record_and_what_they_add() -> None:
    image = list(ImagePublic.model_fields)
    assert sorted(image) == sorted([*IMAGE_RECORD, *IMAGE_LINKS])
    assert in_record_order(image) == list(IMAGE_RECORD)
    for model in (GalleryImage, GalleryImageDetail):
        gallery = list(model.model_fields)
        assert in_record_order(gallery) == list(IMAGE_RECORD), model.__name__
    gallery = list(GalleryImage.model_fields)
    assert sorted(gallery) == sorted([*IMAGE_RECORD, *GALLERY_ADDS])


def test_the_gallerys_rows_read_the_record_from_the_images_table() -> None:
    names = [field.name for field in fields(GalleryEntry)]
    labels = [column.name for column in ENTRY_COLUMNS]
    assert labels == names
    from_images = [column.name for column in ENTRY_COLUMNS if column.element.table.name == "images"]
    # The image's id is `image_id` beside its job's columns.
    assert IMAGE_RECORD[0] == "id"
    assert from_images == ["image_id", "job_id", *IMAGE_RECORD[1:]]


def an_image(**values: Any) -> ImageSummary:
    record_values: dict[str, Any] = {
        "id": 3,
        "index": 0,
        "width": 2,
        "height": 1,
        "content_type": "image/png",
        "byte_size": 5,
        "sha256": "cd" * 32,
        "favourite": False,
        "deleted_at": None,
    }
    return ImageSummary(**{**record_values, **values})


def a_job() -> JobSummary:
    moment = GALLERY_ENTRY.created_at
    return JobSummary(
        id=9,
        status=JobStatus.COMPLETED,
        model="seedream-4",
        preset=None,
        prompt="a lighthouse",
        image_size="auto_2K",
        custom_width=None,
        custom_height=None,
        seed=None,
        num_images=1,
        upstream_job_id=None,
        error=None,
        credit_cost=1.0,
        credits_remaining=None,
        created_at=moment,
        submitted_at=moment,
        finished_at=moment,
        expires_at=None,
        remix_of_job_id=None,
        remix_of_image_index=None,
        reference_images=None,
    )


def test_the_writers_write_the_record_as_their_models_name_it() -> None:
    """The dicts answers are built from, and the fast writers' keys, in the models' order."""
    assert sorted(image_answer(an_image())) == sorted(ImagePublic.model_fields)
    gallery = gallery_image_answer(GALLERY_ENTRY, trash_days=30)
    assert list(gallery) == list(GalleryImage.model_fields)

    page = json.loads(job_page_json([JobListItem(a_job(), [an_image()])], None))
    assert list(page["items"][0]["images"][0]) == list(ImagePublic.model_fields)
    # The odd float that has the model write the item: the same keys.
    odd = replace(a_job(), credit_cost=1e20)
    page = json.loads(job_page_json([JobListItem(odd, [an_image()])], None))
    assert list(page["items"][0]["images"][0]) == list(ImagePublic.model_fields)

    page = json.loads(gallery_page_json([GALLERY_ENTRY], None, trash_days=30))
    assert list(page["items"][0]) == list(GalleryImage.model_fields)


def test_a_downloads_metadata_is_part_of_the_record() -> None:
    """The image's facts embedded in a download and its sidecar: the record but the gallery's
    own state (tests/test_interchange.py holds them to the published schema)."""
    job = Job(
        id=GALLERY_ENTRY.job_id,
        model="seedream-4",
        prompt="a lighthouse",
        image_size="auto_2K",
        num_images=1,
        request_body={},
        created_at=GALLERY_ENTRY.created_at,
    )
    image = record(GALLERY_ENTRY, job, base_url="http://127.0.0.1")["image"]
    assert list(image) == [name for name in IMAGE_RECORD if name not in ("favourite", "deleted_at")]
    assert image["id"] == GALLERY_ENTRY.image_id
