"""The app with each blob store: a job's images stored, served byte-identical, thumbnails too.

Driven in-process (httpx's ASGI transport, with the app's lifespan run, so its
poller stores the images), against the emulator over loopback, with the store the
settings name: the SQLite file, PostgreSQL tables, or a bucket of moto's S3 server.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import httpx
import pytest
from PIL import Image

from app.storage.db.tables import Thumbnail
from tests.support.apps import make_settings
from tests.support.asgi import finished_job, running
from tests.support.emulators import RunningEmulator
from tests.support.stores import STORES, S3Bucket, store_settings

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("kind", STORES)
async def test_a_job_is_stored_and_served_byte_identical_from_each_store(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, emulator: RunningEmulator
) -> None:
    settings = make_settings(tmp_path / "data", emulator, **store_settings(kind, request))
    async with running(settings) as (app, client):
        where = app.state.services.blobs.describe()
        assert {"sqlite": "images.db", "postgres": "PostgreSQL", "s3": "s3://"}[kind] in where
        answer = await client.post("/api/jobs", json={"prompt": "a kestrel"})
        job = await finished_job(client, answer.json()["id"])
        assert job["status"] == "completed", job["error"]
        served = set(emulator.emulator.served_images.values())
        for image in job["images"]:
            full = await client.get(image["url"])
            assert full.status_code == 200
            assert full.headers["content-type"] == "image/png"
            assert int(full.headers["content-length"]) == len(full.content)
            digest = hashlib.sha256(full.content).hexdigest()
            assert digest == image["sha256"] and digest in served, "the bytes PixelDojo served"
            thumbnail = await client.get(image["thumbnail_url"])
            assert thumbnail.status_code == 200
            assert thumbnail.headers["content-type"] == "image/webp"
            with Image.open(io.BytesIO(thumbnail.content)) as preview:
                assert max(preview.size) == 512
            assert app.state.services.blobs.read_thumbnail(digest) == thumbnail.content
        # Nothing of the image went into the database's own thumbnails table.
        with app.state.services.db.read() as session:
            assert session.get(Thumbnail, job["images"][0]["id"]) is None


async def test_with_redirects_on_browsers_fetch_s3_images_from_presigned_urls(
    s3_bucket: S3Bucket, tmp_path: Path, emulator: RunningEmulator
) -> None:
    settings = make_settings(
        tmp_path / "data", emulator, s3_redirect_seconds=120, **s3_bucket.settings()
    )
    async with running(settings) as (_, client):
        answer = await client.post("/api/jobs", json={"prompt": "a heron"})
        job = await finished_job(client, answer.json()["id"])
        image = job["images"][0]
        for url, content_type in (
            (image["url"], "image/png"),
            (image["thumbnail_url"], "image/webp"),
        ):
            redirect = await client.get(url)
            assert redirect.status_code == 307
            # Cached no longer than half the URL's life, so a cached one still works.
            assert redirect.headers["cache-control"] == "private, max-age=60"
            location = httpx.URL(redirect.headers["location"])
            assert str(location).startswith(f"{s3_bucket.endpoint_url}/{s3_bucket.name}/gallery/")
            assert location.params["X-Amz-Expires"] == "120"
            # The browser's next request goes to the bucket, not to the app.
            async with httpx.AsyncClient() as browser:
                direct = await browser.get(location)
            assert direct.status_code == 200
            assert direct.headers["content-type"] == content_type
            if content_type == "image/png":
                assert hashlib.sha256(direct.content).hexdigest() == image["sha256"]
        missing = await client.get("/api/images/999999")
        assert missing.status_code == 404, "no redirect for an image that does not exist"
