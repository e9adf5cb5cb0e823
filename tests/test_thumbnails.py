"""Galleries from before thumbnails moved into the blob store keep working: their thumbnails
are served from the database until the app has moved them, a batch at a time, beside
their images."""

from __future__ import annotations

import zipfile
from pathlib import Path

import anyio
import pytest
import sqlalchemy as sa
from sqlmodel import select

from app.features.archive.transfer import export_gallery
from app.storage.blobs.sqlite import SQLiteBlobStore
from app.storage.db.engine import Database
from app.storage.db.tables import Thumbnail
from app.storage.thumbnails import Thumbnails
from tests.support.apps import make_settings
from tests.support.asgi import finished_job, running
from tests.support.emulators import RunningEmulator

pytestmark = pytest.mark.anyio


def as_made_before(data_dir: Path) -> None:
    """Put a gallery's thumbnails back where they used to be: rows of the main database."""
    db = Database.at_path(data_dir / "playground.db")
    blobs = SQLiteBlobStore(data_dir / "images.db")
    try:
        with db.write() as session:
            rows = session.execute(sa.text("SELECT id, sha256 FROM images")).all()
            for image_id, sha in rows:
                data = blobs.read_thumbnail(sha)
                assert data is not None
                session.add(
                    Thumbnail(
                        image_id=image_id, content_type="image/webp", width=1, height=1, data=data
                    )
                )
        with blobs._connection() as connection:
            connection.execute("DELETE FROM thumbnails")
    finally:
        blobs.close()
        db.dispose()


def legacy_rows(db: Database) -> int:
    with db.read() as session:
        return len(session.exec(select(Thumbnail.image_id)).all())


async def test_old_thumbnails_are_served_exported_and_moved_beside_their_images(
    tmp_path: Path, emulator: RunningEmulator
) -> None:
    settings = make_settings(tmp_path / "data", emulator)
    async with running(settings) as (_, client):
        answers = [
            await client.post("/api/jobs", json={"prompt": f"an old gallery {n}"}) for n in (1, 2)
        ]
        images = [
            (await finished_job(client, answer.json()["id"]))["images"][0] for answer in answers
        ]
        before = {
            image["id"]: (await client.get(image["thumbnail_url"])).content for image in images
        }
    as_made_before(settings.data_dir)

    db = Database.at_path(settings.database_path)
    blobs = SQLiteBlobStore(settings.image_store_path)
    try:
        thumbnails = Thumbnails(db, blobs)
        for image in images:
            assert blobs.read_thumbnail(image["sha256"]) is None
            found = thumbnails.find(image_id=image["id"], sha256=image["sha256"])
            assert found is not None and found.data == before[image["id"]], "from the old table"
        # An export made now carries them, beside the images, as a new one would.
        export_gallery(db, blobs, tmp_path / "gallery.zip")
        with zipfile.ZipFile(tmp_path / "gallery.zip") as archive:
            for image in images:
                assert archive.read(f"thumbnails/{image['sha256']}.webp") == before[image["id"]]
        # A batch at a time: stopping between two loses nothing.
        assert thumbnails.move_legacy_batch(limit=1) == 1
        assert legacy_rows(db) == 1
        for image in images:
            found = thumbnails.find(image_id=image["id"], sha256=image["sha256"])
            assert found is not None and found.data == before[image["id"]]
    finally:
        blobs.close()
        db.dispose()

    # The app moves the rest in the background after it starts, serving them throughout.
    async with running(settings) as (app, client):
        with anyio.fail_after(20):
            while app.state.services.thumbnails.legacy_left:
                for image in images:
                    answer = await client.get(image["thumbnail_url"])
                    assert answer.content == before[image["id"]]
                await anyio.sleep(0.02)
        for image in images:
            assert (await client.get(image["thumbnail_url"])).content == before[image["id"]]
            store = app.state.services.blobs
            assert store.read_thumbnail(image["sha256"]) == before[image["id"]]
        assert legacy_rows(app.state.services.db) == 0
