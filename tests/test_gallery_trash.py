"""The gallery's trash through its JSON API: images thrown away, restored and purged, by
hand, by a server on its own and after the configured days; reading the trash never deletes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from app.core.clock import calendar_at
from app.features.gallery import lookups, trash
from app.storage.blobs.choose import open_blob_store
from app.storage.db.engine import Database
from app.storage.db.tables import utcnow
from tests.support.apps import RunningApp, make_settings, serve_app
from tests.support.clock import FIXED_DAY
from tests.support.databases import DatabaseChoice
from tests.support.emulators import RunningEmulator
from tests.support.gallery_made import ids_of, search
from tests.support.jobs import wait_for_job
from tests.support.waiting import wait_until

pytestmark = pytest.mark.both_databases


@pytest.fixture(scope="module", autouse=True)
def _fixed_calendar() -> Iterator[None]:
    """The module's gallery is made, searched by today and counted by day on FIXED_DAY: a run
    that crossed midnight once found today's jobs on yesterday."""
    with calendar_at(FIXED_DAY):
        yield


# --- Trash -------------------------------------------------------------------------------


def test_trash_hides_restores_and_purges(shared_app: RunningApp) -> None:
    client = shared_app.client
    job = wait_for_job(
        client,
        client.post("/api/jobs", json={"prompt": "to be thrown away", "num_images": 2}).json()[
            "id"
        ],
    )
    kept, thrown = (image["id"] for image in job["images"])
    assert client.post("/api/trash", json={"image_ids": [thrown]}).json() == {"count": 1}
    assert ids_of(search(client, q="thrown")) == [kept]
    assert [i["id"] for i in client.get(f"/api/jobs/{job['id']}").json()["images"]] == [
        kept,
        thrown,
    ]
    assert all(
        thrown not in [i["id"] for i in j["images"]]
        for j in client.get("/api/jobs").json()["items"]
    )
    in_trash = client.get("/api/trash").json()["items"]
    assert ids_of(in_trash) == [thrown]
    days = shared_app.settings.trash_days
    deleted = in_trash[0]["deleted_at"]
    assert in_trash[0]["purge_at"] > deleted and days == 30

    assert client.post("/api/trash/restore", json={"image_ids": [thrown]}).json() == {"count": 1}
    assert ids_of(search(client, q="thrown")) == [kept, thrown]
    assert client.get("/api/trash").json()["items"] == []

    # Purging needs the image in the trash first, then it is gone with its bytes.
    assert client.post("/api/trash/purge", json={"image_ids": [thrown]}).json() == {"count": 0}
    client.post("/api/trash", json={"image_ids": [thrown]})
    assert client.post("/api/trash/purge", json={"image_ids": [thrown]}).json() == {"count": 1}
    assert client.get(f"/api/images/{thrown}").status_code == 404
    assert client.get(f"/api/images/{thrown}/thumbnail").status_code == 404
    assert client.get(f"/api/jobs/{job['id']}").json()["credit_cost"] == 2, "the cost is kept"


def test_a_server_purges_the_trash_on_its_own(
    tmp_path: Path, emulator: RunningEmulator, database: DatabaseChoice
) -> None:
    """With PLAYGROUND_TRASH_DAYS=0 nothing waits: a restart purges what is in the trash."""
    settings = make_settings(tmp_path / "data", emulator, database=database, trash_days=0)
    with serve_app(settings) as app:
        job = wait_for_job(
            app.client, app.client.post("/api/jobs", json={"prompt": "gone"}).json()["id"]
        )
        image_id = job["images"][0]["id"]
        app.client.post("/api/trash", json={"image_ids": [image_id]})
    with serve_app(settings) as app:
        wait_until(
            lambda: app.client.get(f"/api/images/{image_id}").status_code == 404,
            what="the trash purge at start-up",
        )
        assert app.client.get(f"/api/jobs/{job['id']}").json()["images"] == []


def test_images_are_purged_after_the_configured_days(
    tmp_path: Path, emulator: RunningEmulator, database: DatabaseChoice
) -> None:
    settings = make_settings(tmp_path / "data", emulator, database=database, trash_days=7)
    with serve_app(settings) as app:
        job = wait_for_job(
            app.client, app.client.post("/api/jobs", json={"prompt": "old"}).json()["id"]
        )
    image = job["images"][0]
    db = Database.for_settings(settings)
    blobs = open_blob_store(settings, database_url=db.url)
    try:
        now = utcnow()
        trash.move_to_trash(db, image_ids=[image["id"]], now=now)
        assert trash.purge_expired(db, blobs, days=7, now=now + timedelta(days=6)).images == 0
        result = trash.purge_expired(db, blobs, days=7, now=now + timedelta(days=7))
        assert (result.images, result.blobs) == (1, 1)
        assert not blobs.contains(image["sha256"])
        assert blobs.read_thumbnail(image["sha256"]) is None, "its thumbnail went with it"
        assert lookups.get_entry(db, image_id=image["id"]) is None
    finally:
        blobs.close()
        db.dispose()


def test_reading_the_trash_never_deletes(
    tmp_path: Path, emulator: RunningEmulator, database: DatabaseChoice
) -> None:
    """Only the periodic purge deletes: an image past its days is no longer listed or
    restorable, but GET /trash and GET /api/trash leave it for the purge."""
    settings = make_settings(tmp_path / "data", emulator, database=database, trash_days=7)
    with serve_app(settings) as app:
        job = wait_for_job(
            app.client, app.client.post("/api/jobs", json={"prompt": "expired"}).json()["id"]
        )
        image_id = job["images"][0]["id"]
        db = Database.for_settings(settings)
        trash.move_to_trash(db, image_ids=[image_id], now=utcnow() - timedelta(days=8))
        assert app.client.get("/api/trash").json()["items"] == []
        assert f"/api/images/{image_id}/thumbnail" not in app.client.get("/trash").text
        assert app.client.get(f"/api/images/{image_id}").status_code == 200, "still there"
        restored = app.client.post("/api/trash/restore", json={"image_ids": [image_id]})
        assert restored.json() == {"count": 0}, "past its days: not restorable"
        blobs = open_blob_store(settings, database_url=db.url)
        assert trash.purge_expired(db, blobs, days=7).images == 1, "the purge deletes it"
        assert app.client.get(f"/api/images/{image_id}").status_code == 404
        blobs.close()
        db.dispose()
