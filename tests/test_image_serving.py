"""Images are served as images only: a type from the allow-list, never sniffed, and
sandboxed when opened on their own; a row naming any other type is not served at all."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from app.storage.db.engine import Database
from app.storage.db.tables import Image
from tests.support.apps import in_process, make_settings
from tests.support.emulators import RunningEmulator
from tests.support.jobs import wait_for_job

SANDBOX = "sandbox; default-src 'none'"


def test_images_and_thumbnails_are_served_as_sandboxed_images(
    tmp_path: Path, emulator: RunningEmulator
) -> None:
    settings = make_settings(tmp_path / "data", emulator)
    with in_process(settings) as client:
        job = wait_for_job(client, client.post("/api/jobs", json={"prompt": "a kite"}).json()["id"])
        image = job["images"][0]
        for path, content_type in (
            (image["url"], "image/png"),
            (image["thumbnail_url"], "image/webp"),
            (f"{image['url']}/download", "image/png"),
        ):
            answer = client.get(path)
            assert answer.status_code == 200, path
            assert answer.headers["content-type"] == content_type, path
            assert answer.headers["x-content-type-options"] == "nosniff", path
            assert answer.headers["content-security-policy"] == SANDBOX, path

        # A row that says text/html (as a crafted import once could) is not served.
        db = Database.at_path(settings.database_path)
        with db.write() as session:
            session.execute(
                sa.update(Image).where(Image.id == image["id"]).values(content_type="text/html")
            )
        db.dispose()
        for path in (image["url"], f"{image['url']}/download"):
            refused = client.get(path)
            assert refused.status_code == 404, path
            assert "not stored as a PNG, JPEG or WebP image" in refused.json()["error"]["message"]
            assert "text/html" not in refused.headers["content-type"]


def test_an_image_whose_bytes_went_while_it_was_asked_for_is_a_clean_404(
    tmp_path: Path, emulator: RunningEmulator
) -> None:
    """A trash purge can delete the bytes between a request's read of the row and its read
    of the bytes: the answer is a 404 that says so, never headers promising a body that is
    then cut off."""
    settings = make_settings(tmp_path / "data", emulator)
    with in_process(settings) as client:
        job = wait_for_job(client, client.post("/api/jobs", json={"prompt": "a kite"}).json()["id"])
        image = job["images"][0]
        # The row names bytes no store holds: what the purge leaves for that moment.
        db = Database.at_path(settings.database_path)
        with db.write() as session:
            session.execute(sa.update(Image).where(Image.id == image["id"]).values(sha256="0" * 64))
        db.dispose()
        for path in (image["url"], f"{image['url']}/download"):
            gone = client.get(path)
            assert gone.status_code == 404, path
            assert "no longer stored" in gone.json()["error"]["message"], path
