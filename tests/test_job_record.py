"""The job record is declared once (`JOB_RECORD`, app/storage/db/tables.py): the listings' read
model is that record, a job's answer shows every column of it and nothing else of the row,
each answer field named like a column is that column, and the gallery's rows read only
record columns (and who made the job)."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import UTC, datetime, timedelta

from app.domain.parameters import JOB_COLUMNS, RecordedParameters
from app.features.gallery.listing import ENTRY_COLUMNS
from app.features.jobs.reads import JobListItem, JobSummary
from app.storage.db.tables import JOB_RECORD, Job, JobStatus
from app.web.gallery_views import GalleryJobSummary
from app.web.schemas import JobPublic
from app.web.views import job_answer, job_page_json

# Which of the record's columns each field of a job's answer is made from; () for what the
# record has no part in (who made it, its images, a lookup).
JOB_ANSWER_SOURCES: dict[str, tuple[str, ...]] = {
    "id": ("id",),
    "author": (),
    "status": ("status",),
    "status_label": ("status", "stopped_at"),
    "finished": ("status",),
    "model": ("model",),
    "preset": ("preset",),
    "parameters": tuple(JOB_COLUMNS.values()),
    "upstream_job_id": ("upstream_job_id",),
    "error": ("error",),
    "credit_cost": ("credit_cost",),
    "credits_remaining": ("credits_remaining",),
    "created_at": ("created_at",),
    "submitted_at": ("submitted_at",),
    "finished_at": ("finished_at",),
    "expires_at": ("expires_at",),
    "images": (),
    "url": ("id",),
    "api_url": ("id",),
    "remix_of": ("remix_of_job_id", "remix_of_image_index"),
    "reference_images": ("reference_images",),
    "typical_seconds": (),
}
# Fields named like a column and showing it as is; the reference images' ids become links.
AS_IS = sorted(set(JOB_ANSWER_SOURCES) & set(JOB_RECORD) - {"reference_images"})


def test_the_record_is_columns_of_the_jobs_table_and_the_read_model_is_the_record() -> None:
    assert len(set(JOB_RECORD)) == len(JOB_RECORD)
    assert set(JOB_RECORD) <= set(Job.__table__.columns.keys())  # type: ignore[attr-defined]
    assert tuple(field.name for field in fields(JobSummary)) == JOB_RECORD


def test_a_jobs_answer_shows_the_whole_record_and_nothing_else_of_the_row() -> None:
    assert list(JobPublic.model_fields) == list(JOB_ANSWER_SOURCES)
    shown = {column for sources in JOB_ANSWER_SOURCES.values() for column in sources}
    assert shown == set(JOB_RECORD)
    # A field named like a column is made from that column alone.
    for name in set(JobPublic.model_fields) & set(JOB_RECORD):
        assert JOB_ANSWER_SOURCES[name] == (name,), name
    assert list(RecordedParameters.model_fields) == list(JOB_COLUMNS)


def test_the_gallerys_rows_and_answers_read_only_the_record() -> None:
    from_jobs = {column.name for column in ENTRY_COLUMNS if column.element.table.name == "jobs"}
    # Who made it, for the sign-in's "mine": not answered, so not in the record.
    assert from_jobs <= {*JOB_RECORD, "user_id"}
    made = {"parameters", "url"}
    assert set(GalleryJobSummary.model_fields) - made <= set(JOB_RECORD)


def distinct_job() -> JobSummary:
    """A job whose every column holds a value no other column has."""
    moment = datetime(2026, 11, 30, tzinfo=UTC)
    return JobSummary(
        id=101,
        status=JobStatus.FAILED,
        model="model",
        preset="preset",
        prompt="prompt",
        image_size="image_size",
        custom_width=102,
        custom_height=103,
        seed=104,
        num_images=105,
        upstream_job_id="upstream_job_id",
        error="error",
        credit_cost=1.5,
        credits_remaining=2.5,
        created_at=moment,
        submitted_at=moment + timedelta(seconds=1),
        finished_at=moment + timedelta(seconds=2),
        expires_at=moment + timedelta(seconds=3),
        remix_of_job_id=106,
        remix_of_image_index=107,
        reference_images=[108],
        stopped_at=moment + timedelta(seconds=4),
    )


def test_the_answers_show_each_column_where_its_name_says() -> None:
    """The dict single answers are built from and the fast writer, field by field: a column
    shown under another's name (two datetimes swapped) fails here."""
    job = distinct_job()
    item = JobListItem(job, [], "author")
    answer = job_answer(item)
    written = json.loads(job_page_json([item], None))["items"][0]
    assert list(answer) == list(written) == list(JobPublic.model_fields)
    model, read_back = JobPublic.model_validate(answer), JobPublic.model_validate(written)
    for name in AS_IS:
        assert answer[name] == getattr(job, name), name
        assert getattr(model, name) == getattr(read_back, name) == getattr(job, name), name
    assert written["created_at"] == "2026-11-30T00:00:00Z"
    assert written["finished_at"] == "2026-11-30T00:00:02Z"
    assert written["parameters"] == {
        name: getattr(job, column) for name, column in JOB_COLUMNS.items()
    }
    assert written["remix_of"] == {"job_id": 106, "image_index": 107, "url": "/jobs/106"}
    assert [reference["image_id"] for reference in written["reference_images"]] == [108]
    assert written["status_label"] == "Stopped by you"
