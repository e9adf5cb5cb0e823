"""The listings' fast writers (app/web/views.py, app/web/gallery_views.py) against their models,
over random rows: whatever a row holds, the bytes written directly are the bytes the model
writes. tests/test_listing_answers.py does the same through the API with seeded rows; here
the rows are made up, so values no seed has come up too: any unicode (quotes, backslashes,
control characters, U+2028, astral characters, `</script>`), None in every nullable field,
the largest ids, every status, floats of every size and sign, datetimes with and without
microseconds, reference lists empty, missing and long."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.features.gallery.listing import IMAGE_INDEX_MAX, GalleryEntry, JobWithImages
from app.features.jobs.reads import ImageSummary, JobListItem, JobSummary
from app.storage.db.tables import ROW_ID_MAX, Image, Job, JobStatus
from app.web.gallery_views import GalleryImagePage, gallery_image, gallery_page_json
from app.web.schemas import JobPage
from app.web.views import job_page_json, job_public

# Derandomized: every run of the suite tries the same rows, and the file takes seconds.
WRITERS = settings(max_examples=200, derandomize=True, database=None, deadline=None)

# Pieces JSON writers are known to disagree on, mixed into any other text.
AWKWARD = (
    '"',
    "\\",
    "\\u0000",
    "\x00",
    "\x08",
    "\x0c",
    "\x1f",
    "\x7f",
    "\x85",
    "\u2028",
    "\u2029",
    "\ufeff",
    "</script>",
    "\U0001f600",
    "é",
    "/",
)
TEXT = st.lists(st.one_of(st.text(max_size=6), st.sampled_from(AWKWARD)), max_size=5).map("".join)
OPTIONAL_TEXT = st.none() | TEXT
IDS = st.integers(min_value=1, max_value=ROW_ID_MAX) | st.sampled_from([1, ROW_ID_MAX])
INDEXES = st.integers(min_value=0, max_value=IMAGE_INDEX_MAX)
SIZES = st.integers(min_value=0, max_value=2**31 - 1)
ANY_INT = st.integers(min_value=-(2**63), max_value=2**63 - 1)
OPTIONAL_INT = st.none() | ANY_INT
# Around every edge of the plain writer's range (`plain_float`) and beyond it, where the
# model's own encoder takes over; NaN and infinity too, which the models accept.
FLOATS = st.one_of(
    st.floats(),
    st.integers(min_value=-(2**60), max_value=2**60).map(float),
    st.sampled_from(
        [0.0, -0.0, 5e-324, 1e-4, 9.999e-5, 0.1, 0.5, 2.0, 1e15, 999999999999999.9, 1e16, -1e300]
    ),
)
OPTIONAL_FLOAT = st.none() | FLOATS
MOMENTS = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9000, 12, 31), timezones=st.just(UTC)
)
# Without microseconds too: isoformat leaves them out then, and so must the model.
MOMENTS = MOMENTS | MOMENTS.map(lambda moment: moment.replace(microsecond=0))
OPTIONAL_MOMENT = st.none() | MOMENTS
STATUSES = st.sampled_from(JobStatus)
REFERENCES = st.none() | st.lists(IDS, max_size=3) | st.lists(IDS, min_size=20, max_size=40)

IMAGE_SUMMARIES = st.builds(
    ImageSummary,
    id=IDS,
    index=INDEXES,
    width=SIZES,
    height=SIZES,
    content_type=TEXT,
    byte_size=st.integers(min_value=0, max_value=ROW_ID_MAX),
    sha256=TEXT,
    favourite=st.booleans(),
    deleted_at=OPTIONAL_MOMENT,
)
JOB_SUMMARIES = st.builds(
    JobSummary,
    id=IDS,
    status=STATUSES,
    model=TEXT,
    preset=OPTIONAL_TEXT,
    prompt=TEXT,
    image_size=TEXT,
    custom_width=OPTIONAL_INT,
    custom_height=OPTIONAL_INT,
    seed=OPTIONAL_INT,
    num_images=ANY_INT,
    upstream_job_id=OPTIONAL_TEXT,
    error=OPTIONAL_TEXT,
    credit_cost=OPTIONAL_FLOAT,
    credits_remaining=OPTIONAL_FLOAT,
    created_at=MOMENTS,
    submitted_at=OPTIONAL_MOMENT,
    finished_at=OPTIONAL_MOMENT,
    expires_at=OPTIONAL_MOMENT,
    remix_of_job_id=st.none() | IDS,
    remix_of_image_index=st.none() | INDEXES,
    reference_images=REFERENCES,
    stopped_at=OPTIONAL_MOMENT,
)
JOB_ITEMS = st.builds(
    JobListItem, JOB_SUMMARIES, st.lists(IMAGE_SUMMARIES, max_size=4), OPTIONAL_TEXT
)
GALLERY_ENTRIES = st.builds(
    GalleryEntry,
    image_id=IDS,
    job_id=IDS,
    index=INDEXES,
    width=SIZES,
    height=SIZES,
    content_type=TEXT,
    byte_size=st.integers(min_value=0, max_value=ROW_ID_MAX),
    sha256=TEXT,
    favourite=st.booleans(),
    deleted_at=OPTIONAL_MOMENT,
    model=TEXT,
    preset=OPTIONAL_TEXT,
    prompt=TEXT,
    image_size=TEXT,
    custom_width=OPTIONAL_INT,
    custom_height=OPTIONAL_INT,
    seed=OPTIONAL_INT,
    num_images=ANY_INT,
    status=STATUSES,
    created_at=MOMENTS,
    credit_cost=OPTIONAL_FLOAT,
    user_id=st.none() | IDS,
)
TRASH_DAYS = st.sampled_from([0, 1, 30, 0.5, 3650])


def as_rows(item: JobListItem) -> JobWithImages:
    """The same job as the gallery's job search reads it: table rows, not summaries."""
    columns: dict[str, Any] = {name: getattr(item.job, name) for name in JobSummary.__slots__}
    job = Job(**columns, request_body={})
    images = [
        Image(
            **{name: getattr(image, name) for name in ImageSummary.__slots__},
            job_id=item.job.id,
            source_url="",
        )
        for image in item.images
    ]
    return JobWithImages(job, images, item.author)


def same(written: bytes, expected: str) -> None:
    """Fails naming where the two part: pytest's own diff of two long strings, made for
    each example hypothesis tries while it shrinks a failure, outlasts the test's timeout."""
    text = written.decode()
    if text != expected:
        at = next(
            (i for i, pair in enumerate(zip(text, expected, strict=False)) if len(set(pair)) > 1),
            min(len(text), len(expected)),
        )
        start = max(at - 40, 0)
        pytest.fail(
            f"written and model part at {at}: {text[start : at + 60]!r} "
            f"!= {expected[start : at + 60]!r}"
        )


@WRITERS
@given(items=st.lists(JOB_ITEMS, max_size=3), cursor=st.none() | IDS)
def test_a_job_page_written_directly_is_what_the_model_writes(
    items: list[JobListItem], cursor: int | None
) -> None:
    expected = JobPage(
        items=[job_public(item) for item in items],
        next_cursor=None if cursor is None else str(cursor),
    ).model_dump_json()
    same(job_page_json(items, cursor), expected)
    # The gallery's job search hands the same writer table rows.
    same(job_page_json([as_rows(item) for item in items], cursor), expected)


@WRITERS
@given(entries=st.lists(GALLERY_ENTRIES, max_size=4), cursor=OPTIONAL_TEXT, days=TRASH_DAYS)
def test_a_gallery_page_written_directly_is_what_the_model_writes(
    entries: list[GalleryEntry], cursor: str | None, days: float
) -> None:
    expected = GalleryImagePage(
        items=[gallery_image(entry, trash_days=days) for entry in entries], next_cursor=cursor
    ).model_dump_json()
    same(gallery_page_json(entries, cursor, trash_days=days), expected)
