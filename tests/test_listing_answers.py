"""Listings answer with plain dicts serialised directly (app/web/views.py): every answer must be
exactly what its documented model would have written, for every kind of row."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from pydantic import BaseModel

from app.core.config import Settings
from app.features.jobs.reads import JobListItem
from app.features.people import accounts
from app.storage.db.engine import Database
from app.storage.db.tables import Job, JobStatus, utcnow
from app.web.factory import create_app
from app.web.gallery_views import GalleryImagePage, gallery_image, gallery_page_json
from app.web.schemas import JobPage
from app.web.views import job_page_json, job_public
from tests.support.gallery_seed import GALLERY_ENTRY, IMAGE_SUMMARY, JOB_SUMMARY, seed_gallery

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")
    db = Database.at_path(settings.database_path)
    db.migrate()
    seed_gallery(db, jobs=80)
    # Rows the seed has none of: an author, a remix, reference images.
    ada = accounts.create_user(db, name="Ada", password="correct horse battery", is_admin=True)
    assert ada.id is not None
    token = accounts.create_api_token(db, user_id=ada.id, name="test").secret
    with db.write() as session:
        session.execute(sa.update(Job).where(col_id() <= 40).values(user_id=ada.id))
        session.execute(
            sa.update(Job)
            .where(col_id() == 80)
            .values(remix_of_job_id=3, remix_of_image_index=0, expires_at=utcnow())
        )
        session.execute(
            sa.update(Job).where(col_id() == 79).values(reference_images=[1, 2], model="edit-model")
        )
    db.dispose()
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://127.0.0.1",
            headers={"Authorization": f"Bearer {token}"},
        ) as client:
            yield client


def col_id() -> sa.ColumnElement[int]:
    return Job.__table__.c.id  # type: ignore[attr-defined, no-any-return]


def as_the_model_writes_it(body: bytes, model: type[BaseModel]) -> None:
    """The answer validates, and the model writes back the very same bytes."""
    parsed = model.model_validate_json(body)
    assert parsed.model_dump_json().encode() == body


LISTINGS = [
    ("/api/jobs?limit=100", JobPage),
    ("/api/jobs?limit=7&cursor=50", JobPage),
    ("/api/gallery?limit=100", GalleryImagePage),
    ("/api/gallery?q=lighthouse", GalleryImagePage),
    ("/api/gallery?favourite=1", GalleryImagePage),
    ("/api/gallery/jobs?limit=100", JobPage),
    ("/api/gallery/jobs?status=failed", JobPage),
]


async def test_listings_answer_exactly_as_their_models(client: httpx.AsyncClient) -> None:
    # One app for every listing: starting one costs more than all the requests.
    for path, model in LISTINGS:
        answer = await client.get(path)
        assert answer.status_code == 200, (path, answer.text)
        assert answer.headers["content-type"] == "application/json"
        assert answer.json()["items"], f"{path}: a listing with rows in it"
        as_the_model_writes_it(answer.content, model)

    items = {job["id"]: job for job in (await client.get("/api/jobs?limit=100")).json()["items"]}
    assert items[80]["remix_of"] == {"job_id": 3, "image_index": 0, "url": "/jobs/3"}
    assert [reference["image_id"] for reference in items[79]["reference_images"]] == [1, 2]
    assert items[79]["reference_images"][0]["thumbnail_url"] == "/api/images/1/thumbnail"
    assert items[78]["reference_images"] == []
    failed = [job for job in items.values() if job["status"] == "failed"]
    assert failed and all(job["finished"] and not job["images"] for job in failed)
    assert items[1]["author"] == "Ada" and items[41]["author"] is None
    assert any(image["favourite"] for job in items.values() for image in job["images"])


def test_gallery_items_written_directly_are_what_the_model_writes() -> None:
    base = replace(
        GALLERY_ENTRY,
        job_id=2,
        height=2048,
        byte_size=123,
        sha256="ab" * 32,
        created_at=datetime(2026, 11, 30, 16, 11, 19, 839168, tzinfo=UTC),
    )
    odd = [
        base,
        replace(
            base, image_id=3, prompt='é ★ "quoted" \\ \n\t\x01 </script> \u2028', favourite=True
        ),
        replace(base, image_id=4, preset="food-overhead", deleted_at=base.created_at),
        replace(base, image_id=5, credit_cost=None, seed=2**31 - 1, custom_width=2560),
        replace(base, image_id=6, credit_cost=0.5, created_at=datetime(2026, 1, 1, tzinfo=UTC)),
        replace(base, image_id=7, credit_cost=1e20, status=JobStatus.COMPLETED),  # the model's path
    ]
    expected = GalleryImagePage(
        items=[gallery_image(entry, trash_days=30) for entry in odd], next_cursor="2.0"
    ).model_dump_json()
    assert gallery_page_json(odd, "2.0", trash_days=30).decode() == expected
    empty = GalleryImagePage(items=[], next_cursor=None).model_dump_json()
    assert gallery_page_json([], None, trash_days=30).decode() == empty


def test_job_items_written_directly_are_what_the_model_writes() -> None:
    job, image = JOB_SUMMARY, IMAGE_SUMMARY
    items = [
        JobListItem(job, [image, replace(image, id=4, index=1, favourite=False)], "Ada"),
        JobListItem(
            replace(
                job,
                id=8,
                status=JobStatus.FAILED,
                error='PixelDojo said: "no" \n',
                prompt="é ★ </script>",
                remix_of_job_id=2,
                remix_of_image_index=1,
                credit_cost=None,
            ),
            [],
            None,
        ),
        JobListItem(
            replace(job, id=6, reference_images=[3, 12], model="seedream-4-edit"), [], None
        ),
        JobListItem(replace(job, id=5, reference_images=[]), [], None),
        JobListItem(replace(job, id=7, credits_remaining=1e16), [], None),  # the model's path
    ]
    expected = JobPage(items=[job_public(item) for item in items], next_cursor="7")
    assert job_page_json(items, 7).decode() == expected.model_dump_json()
    assert job_page_json([], None).decode() == JobPage(items=[], next_cursor=None).model_dump_json()
