"""Previews (app/storage/previews.py): a WebP of the image's shape at most 1024 px a side,
made with the thumbnail (or, for an image stored before, on the first request for it),
kept beside the thumbnail in the blob store, served as the thumbnail is, and deleted with
the image; on SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
import io
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from PIL import Image as PILImage

from app.core.config import Settings
from app.features.gallery import trash
from app.storage.blobs.choose import open_blob_store
from app.storage.blobs.protocol import BlobStore
from app.storage.db.engine import Database
from app.storage.db.tables import Image, utcnow
from app.storage.intake import PREVIEW_MAX_SIDE
from tests.support.apps import InProcessClient, in_process, make_settings
from tests.support.databases import DatabaseChoice
from tests.support.emulators import RunningEmulator
from tests.support.jobs import wait_for_job

pytestmark = pytest.mark.both_databases

SANDBOX = "sandbox; default-src 'none'"


@pytest.fixture
def settings(tmp_path: Path, emulator: RunningEmulator, database: DatabaseChoice) -> Settings:
    return make_settings(tmp_path / "data", emulator, database=database)


@contextmanager
def opened(settings: Settings) -> Iterator[tuple[Database, BlobStore]]:
    """The gallery's database and blob store, as the app opens them (once it has run)."""
    db = Database.for_settings(settings)
    blobs = open_blob_store(settings, database_url=db.url)
    try:
        yield db, blobs
    finally:
        blobs.close()
        db.dispose()


def landscape_image(client: InProcessClient) -> dict[str, Any]:
    created = client.post(
        "/api/jobs", json={"prompt": "a wide shore", "image_size": "landscape_16_9"}
    )
    image: dict[str, Any] = wait_for_job(client, created.json()["id"])["images"][0]
    assert (image["width"], image["height"]) == (2560, 1440)
    return image


def test_a_preview_is_a_webp_of_the_images_shape_served_as_the_thumbnail_is(
    settings: Settings,
) -> None:
    with in_process(settings) as client, opened(settings) as (_, blobs):
        image = landscape_image(client)
        stored = blobs.read_preview(image["sha256"])
        assert stored is not None, "made with the thumbnail when the image was stored"

        answer = client.get(f"/api/images/{image['id']}/preview")
        assert answer.status_code == 200
        with PILImage.open(io.BytesIO(answer.content)) as preview:
            assert preview.format == "WEBP"
            assert preview.size == (PREVIEW_MAX_SIDE, 576), "the image's shape, 1024 px wide"
        assert answer.content == stored

        thumbnail = client.get(image["thumbnail_url"])
        for header in ("cache-control", "x-content-type-options", "content-security-policy"):
            assert answer.headers[header] == thumbnail.headers[header], header
        assert answer.headers["content-type"] == "image/webp"
        assert answer.headers["content-security-policy"] == SANDBOX
        etag = answer.headers["etag"]
        assert etag.startswith('"') and etag != thumbnail.headers["etag"]

        again = client.get(f"/api/images/{image['id']}/preview", headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == etag
        assert client.get(f"/api/images/{image['id']}/preview").content == answer.content
        assert client.get("/api/images/999999/preview").status_code == 404


def test_an_image_no_larger_than_a_preview_is_sent_to_itself(settings: Settings) -> None:
    with in_process(settings) as client, opened(settings) as (db, _):
        image = landscape_image(client)
        with db.write() as session:
            session.execute(
                sa.update(Image).where(Image.id == image["id"]).values(width=1024, height=576)
            )
        answer = client.get(f"/api/images/{image['id']}/preview", follow_redirects=False)
        assert answer.status_code == 307
        assert answer.headers["location"] == image["url"]


def test_a_gallery_from_before_previews_gets_them_after_the_upgrade(
    settings: Settings, database: DatabaseChoice
) -> None:
    """A store made before previews has no table for them: the next start makes it (the
    SQLite file when it opens, PostgreSQL by migration), and each image gets its preview."""
    with in_process(settings) as client:
        image = landscape_image(client)
    if database.kind == "sqlite":
        connection = sqlite3.connect(settings.image_store_path)
        connection.execute("DROP TABLE previews")
        connection.commit()
        connection.close()
    else:
        db = Database.for_settings(settings)
        with db.write() as session:
            session.execute(sa.text("DROP TABLE blob_previews"))
            session.execute(sa.text("UPDATE alembic_version SET version_num = '0016'"))
        db.dispose()

    with in_process(settings) as client:
        answer = client.get(f"/api/images/{image['id']}/preview")
        assert answer.status_code == 200
        with PILImage.open(io.BytesIO(answer.content)) as preview:
            assert max(preview.size) == PREVIEW_MAX_SIDE


def test_purging_an_image_deletes_its_preview(settings: Settings) -> None:
    with in_process(settings) as client:
        image = landscape_image(client)
        assert client.get(f"/api/images/{image['id']}/preview").status_code == 200
    with opened(settings) as (db, blobs):
        assert blobs.read_preview(image["sha256"]) is not None
        now = utcnow()
        trash.move_to_trash(db, image_ids=[image["id"]], now=now)
        result = trash.purge_expired(db, blobs, days=7, now=now + timedelta(days=7))
        assert (result.images, result.blobs) == (1, 1)
        assert blobs.read_preview(image["sha256"]) is None, "its preview went with it"


def test_the_sweep_deletes_a_preview_whose_image_is_gone(settings: Settings) -> None:
    """A preview made as its image was being purged (the request read the row first)
    outlives the purge; the sweep takes it once past the grace."""
    with in_process(settings) as client:
        image = landscape_image(client)
    with opened(settings) as (db, blobs):
        lone = "f" * 64
        blobs.put_preview(lone, b"RIFF-a-preview")
        kept = blobs.read_preview(image["sha256"])
        assert kept is not None
        assert blobs.sweep(gallery=db, older_than_seconds=3600) == 0
        assert blobs.read_preview(lone) is not None, "spared within the grace"
        blobs.sweep(gallery=db, older_than_seconds=0)
        assert blobs.read_preview(lone) is None
        assert blobs.read_preview(image["sha256"]) == kept, "its image is there"


def test_an_upload_larger_than_a_preview_is_stored_with_one(settings: Settings) -> None:
    buffer = io.BytesIO()
    PILImage.new("RGB", (1600, 900), (200, 40, 40)).save(buffer, format="PNG")
    with in_process(settings) as client, opened(settings) as (_, blobs):
        answer = client.post(
            "/api/uploads", content=buffer.getvalue(), headers={"Content-Type": "image/png"}
        )
        assert answer.status_code == 201, answer.text
        stored = blobs.read_preview(hashlib.sha256(buffer.getvalue()).hexdigest())
        assert stored is not None, "made with the thumbnail, as a download's is"
        with PILImage.open(io.BytesIO(stored)) as preview:
            assert preview.size == (PREVIEW_MAX_SIDE, 576)
