"""Export a gallery, import it into a fresh data dir: the same jobs, byte-identical images,
and every row and column as it was. Importing into a gallery that has jobs adds, never
overwrites."""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from jsonschema import Draft202012Validator
from PIL import Image as PILImage

from app.cli import main as cli
from app.features.archive.transfer import COLLECTION_IMAGES, COLLECTIONS, IMAGES, JOBS
from app.storage.blobs.choose import open_blob_store
from app.storage.db.engine import Database
from tests.support.apps import make_settings, serve_app
from tests.support.databases import SQLITE, DatabaseChoice
from tests.support.emulators import TEST_KEY, RunningEmulator
from tests.support.jobs import wait_for_job
from tests.support.zip_readers import assert_readable_by_anyone, dos_time

pytestmark = pytest.mark.both_databases


def build_gallery(client: httpx.Client) -> dict[str, Any]:
    """A little of everything: several images a job, a custom size, a failed job, a
    non-Latin prompt, a favourite, a collection, an image in the trash and an upload (a job
    with no upstream id or key)."""
    bodies = [
        {"prompt": "a lighthouse at dawn, watercolour", "num_images": 3, "seed": 42},
        {
            "prompt": "red bicycle",
            "image_size": "custom",
            "customWidth": 2560,
            "customHeight": 1600,
        },
        {"prompt": "灯台と猫 ✓", "image_size": "square", "preset": "food-overhead"},
        {"prompt": "never made [[fail]]"},
    ]
    ids = [client.post("/api/jobs", json=body).json()["id"] for body in bodies]
    jobs = [wait_for_job(client, job_id) for job_id in ids]
    dawn = [image["id"] for image in jobs[0]["images"]]
    client.put(f"/api/gallery/images/{dawn[0]}/favourite")
    board = client.post("/api/collections", json={"name": "Keepers", "description": "best"}).json()
    client.post(
        f"/api/collections/{board['id']}/images",
        json={"image_ids": [dawn[1], jobs[1]["images"][0]["id"]]},
    )
    client.post("/api/trash", json={"image_ids": [dawn[2]]})
    upload = client.post(
        "/api/uploads",
        params={"name": "moodboard.png"},
        content=picture(),
        headers={"Content-Type": "image/png"},
    )
    assert upload.status_code == 201, upload.text
    return {"jobs": jobs, "board": board}


def picture() -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (40, 30), (200, 120, 40)).save(out, format="PNG")
    return out.getvalue()


def snapshot(client: httpx.Client) -> dict[str, Any]:
    """What a person sees through the API, image bytes included."""
    gallery = client.get("/api/gallery", params={"limit": 100}).json()["items"]
    in_trash = client.get("/api/trash").json()["items"]
    images = {}
    for item in gallery + in_trash:
        images[item["id"]] = (
            hashlib.sha256(client.get(item["url"]).content).hexdigest(),
            hashlib.sha256(client.get(item["thumbnail_url"]).content).hexdigest(),
        )
    return {
        "gallery": gallery,
        "trash": in_trash,
        "jobs": client.get("/api/gallery/jobs", params={"limit": 100}).json()["items"],
        "collections": client.get("/api/collections").json(),
        "search": client.get("/api/gallery", params={"q": "灯台"}).json()["items"],
        "usage": client.get("/api/usage").json(),
        "images": images,
    }


def table_rows(settings: Any) -> dict[str, list[dict[str, Any]]]:
    db = Database.for_settings(settings)
    try:
        with db.read() as session:
            connection = session.connection()
            return {
                table.name: [
                    dict(row)
                    for row in connection.execute(
                        sa.select(table).order_by(*table.primary_key.columns)
                    ).mappings()
                ]
                for table in (JOBS, IMAGES, COLLECTIONS, COLLECTION_IMAGES)
            }
    finally:
        db.dispose()


def stored_bytes(settings: Any) -> dict[str, tuple[bytes, bytes | None]]:
    """Each image's bytes and its thumbnail's, from the store the gallery uses."""
    digests = {row["sha256"] for row in table_rows(settings)["images"]}
    db = Database.for_settings(settings)
    blobs = open_blob_store(settings, database_url=db.url)
    try:
        return {
            sha: (b"".join(blobs.iter_chunks(sha)), blobs.read_thumbnail(sha)) for sha in digests
        }
    finally:
        blobs.close()
        db.dispose()


def run_cli(
    monkeypatch: pytest.MonkeyPatch,
    data_dir: Path,
    *args: str,
    database: DatabaseChoice = SQLITE,
) -> int:
    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(data_dir))
    database.use_in_environment(monkeypatch)
    return cli.main(list(args))


@pytest.mark.usefixtures("fixed_calendar")
def test_export_and_import_into_a_fresh_data_dir_loses_nothing(
    tmp_path: Path,
    emulator: RunningEmulator,
    monkeypatch: pytest.MonkeyPatch,
    database: DatabaseChoice,
    other_database: DatabaseChoice,
) -> None:
    source = make_settings(tmp_path / "source", emulator, database=database)
    with serve_app(source) as app:
        made = build_gallery(app.client)
        before = snapshot(app.client)
    assert len(before["gallery"]) == 5 and len(before["trash"]) == 1
    assert len(before["jobs"]) == 5 and before["search"]

    archive = tmp_path / "gallery.zip"
    assert run_cli(monkeypatch, tmp_path / "source", "export", str(archive), database=database) == 0
    assert TEST_KEY.encode() not in archive.read_bytes()
    with zipfile.ZipFile(archive) as contents:
        names = contents.namelist()
        assert "manifest.json" in names and "jobs.jsonl" in names
        assert sum(name.startswith("blobs/") for name in names) == 6
        assert sum(name.startswith("thumbnails/") for name in names) == 6, "one per image"
        assert_named_and_dated(contents)
        assert_follows_the_published_schema(contents)
    assert_readable_by_anyone(archive.read_bytes())
    assert (
        run_cli(monkeypatch, tmp_path / "copy", "import", str(archive), database=other_database)
        == 0
    )

    copy = make_settings(tmp_path / "copy", emulator, database=other_database)
    assert table_rows(copy) == table_rows(source), "every row and column came across"
    assert (
        run_cli(monkeypatch, tmp_path / "copy", "import", str(archive), database=other_database)
        == 0
    )
    assert table_rows(copy) == table_rows(source), "importing it again added nothing"
    assert stored_bytes(copy) == stored_bytes(source), "byte-identical images and thumbnails"
    with serve_app(copy) as app:
        after = snapshot(app.client)
        # The copy is a working gallery, not a museum: it makes new images too.
        new = app.client.post("/api/jobs", json={"prompt": "made after the import"}).json()
        assert new["id"] > max(job["id"] for job in made["jobs"])
        assert wait_for_job(app.client, new["id"])["status"] == "completed"
    assert after == before

    # The same export as version 1 wrote it, before thumbnails moved into the blob store,
    # into a third gallery (SQLite in its data dir, whatever the first two are).
    version_1 = tmp_path / "version-1.zip"
    as_version_1(archive, version_1)
    assert run_cli(monkeypatch, tmp_path / "old", "import", str(version_1)) == 0
    old = make_settings(tmp_path / "old", emulator)
    assert stored_bytes(old) == stored_bytes(source), "thumbnails landed beside their images"
    with serve_app(old) as app:
        assert snapshot(app.client) == before


@pytest.mark.usefixtures("fixed_calendar")
def test_moving_a_sqlite_gallery_up_to_postgresql_is_byte_identical(
    tmp_path: Path,
    emulator: RunningEmulator,
    monkeypatch: pytest.MonkeyPatch,
    postgres_database: DatabaseChoice,
) -> None:
    """The documented way up (docs/team-server.md): export the SQLite gallery, import it
    into the PostgreSQL one. Every row, every byte, every search answer comes across."""
    source = make_settings(tmp_path / "source", emulator)
    with serve_app(source) as app:
        build_gallery(app.client)
        before = snapshot(app.client)
    archive = tmp_path / "gallery.zip"
    assert run_cli(monkeypatch, tmp_path / "source", "export", str(archive)) == 0
    assert (
        run_cli(monkeypatch, tmp_path / "team", "import", str(archive), database=postgres_database)
        == 0
    )
    team = make_settings(tmp_path / "team", emulator, database=postgres_database)
    assert table_rows(team) == table_rows(source), "every row and column came across"
    assert stored_bytes(team) == stored_bytes(source), "byte-identical images and thumbnails"
    with serve_app(team) as app:
        assert snapshot(app.client) == before


def test_importing_into_a_gallery_with_jobs_adds_them_once(
    tmp_path: Path,
    emulator: RunningEmulator,
    monkeypatch: pytest.MonkeyPatch,
    database: DatabaseChoice,
    other_database: DatabaseChoice,
) -> None:
    first = make_settings(tmp_path / "first", emulator, database=database)
    with serve_app(first) as app:
        build_gallery(app.client)
    archive = tmp_path / "first.zip"
    run_cli(monkeypatch, tmp_path / "first", "export", str(archive), database=database)

    second = make_settings(tmp_path / "second", emulator, database=other_database)
    with serve_app(second) as app:
        own = wait_for_job(
            app.client, app.client.post("/api/jobs", json={"prompt": "mine"}).json()["id"]
        )
        app.client.post("/api/collections", json={"name": "Keepers"})
    run_cli(monkeypatch, tmp_path / "second", "import", str(archive), database=other_database)
    once = table_rows(second)
    run_cli(monkeypatch, tmp_path / "second", "import", str(archive), database=other_database)
    assert table_rows(second) == once, "importing it again added nothing, the upload included"

    with serve_app(second) as app:
        jobs = app.client.get("/api/gallery/jobs", params={"limit": 100}).json()["items"]
        prompts = sorted(job["parameters"]["prompt"] for job in jobs)
        assert prompts == sorted(
            [
                "mine",
                "a lighthouse at dawn, watercolour",
                "red bicycle",
                "灯台と猫 ✓",
                "never made [[fail]]",
                "moodboard.png",
            ]
        )
        assert min(job["id"] for job in jobs) == own["id"], "imported jobs got new ids"
        collections = app.client.get("/api/collections").json()
        assert [(c["name"], c["image_count"]) for c in collections] == [("Keepers", 2)]
        for item in app.client.get("/api/gallery", params={"limit": 100}).json()["items"]:
            image = app.client.get(item["url"])
            assert hashlib.sha256(image.content).hexdigest() == item["sha256"]
        assert len(app.client.get("/api/gallery", params={"q": "lighthouse"}).json()["items"]) == 2


def test_a_damaged_export_is_refused_and_changes_nothing(
    tmp_path: Path,
    emulator: RunningEmulator,
    monkeypatch: pytest.MonkeyPatch,
    database: DatabaseChoice,
    other_database: DatabaseChoice,
) -> None:
    source = make_settings(tmp_path / "source", emulator, database=database)
    with serve_app(source) as app:
        build_gallery(app.client)
    archive = tmp_path / "gallery.zip"
    run_cli(monkeypatch, tmp_path / "source", "export", str(archive), database=database)

    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(archive) as original, zipfile.ZipFile(damaged, "w") as copy:
        for info in original.infolist():
            data = original.read(info)
            if info.filename.startswith("blobs/"):
                data = data[:-10] + b"0123456789"
            copy.writestr(info, data)
    with pytest.raises(SystemExit, match="do not match their sha256"):
        run_cli(monkeypatch, tmp_path / "target", "import", str(damaged), database=other_database)
    not_an_export = tmp_path / "notes.zip"
    with zipfile.ZipFile(not_an_export, "w") as other:
        other.writestr("readme.txt", "hello")
    with pytest.raises(SystemExit, match="not a gallery export"):
        run_cli(
            monkeypatch, tmp_path / "target", "import", str(not_an_export), database=other_database
        )
    target = make_settings(tmp_path / "target", emulator, database=other_database)
    assert all(rows == [] for rows in table_rows(target).values())
    if database.url is None:
        with pytest.raises(SystemExit, match="no gallery"):
            run_cli(monkeypatch, tmp_path / "nowhere", "export", str(tmp_path / "x.zip"))


def test_an_export_cannot_smuggle_text_into_number_columns() -> None:
    from app.features.archive.members import ArchiveError
    from app.features.archive.rows import from_json as _from_json

    with pytest.raises(ArchiveError, match=r"images\.width"):
        _from_json(IMAGES, {"id": 1, "width": "<b>wide</b>"})
    with pytest.raises(ArchiveError, match=r"jobs\.seed"):
        _from_json(JOBS, {"id": 1, "seed": True})
    assert _from_json(IMAGES, {"id": 1, "width": 640, "unknown_column": "x"}) == {
        "id": 1,
        "width": 640,
    }


SCHEMAS = Path(__file__).parent.parent / "app" / "web" / "static" / "schemas"
EXPORT_SCHEMA = SCHEMAS / "gallery-export.schema.json"
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


def assert_named_and_dated(contents: zipfile.ZipFile) -> None:
    """Images and thumbnails are named as the files they are and dated when the first image
    with their bytes was made; the rest when the export was taken."""
    manifest = json.loads(contents.read("manifest.json"))
    exported = datetime.fromisoformat(manifest["exported_at"]).astimezone(UTC)
    assert manifest["version"] == 3
    first_made: dict[str, tuple[datetime, str]] = {}
    for line in contents.read("images.jsonl").splitlines():
        image = json.loads(line)
        made = datetime.fromisoformat(image["created_at"]).astimezone(UTC)
        if image["sha256"] not in first_made or made < first_made[image["sha256"]][0]:
            first_made[image["sha256"]] = (made, EXTENSIONS[image["content_type"]])
    dated = {}
    for sha, (made, extension) in first_made.items():
        dated[f"blobs/{sha}.{extension}"] = made
        dated[f"thumbnails/{sha}.webp"] = made
    for info in contents.infolist():
        moment = dated.pop(info.filename, exported)
        assert info.date_time == dos_time(moment), info.filename
    assert dated == {}, "every image and thumbnail is named with its extension"


def assert_follows_the_published_schema(contents: zipfile.ZipFile) -> None:
    """The manifest and every row, by app/web/static/schemas/gallery-export.schema.json."""
    schema = json.loads(EXPORT_SCHEMA.read_text())
    check = Draft202012Validator.FORMAT_CHECKER
    Draft202012Validator(schema, format_checker=check).validate(
        json.loads(contents.read("manifest.json"))
    )
    for table in ("jobs", "images", "collections", "collection_images", "users"):
        rows = Draft202012Validator(
            {"$defs": schema["$defs"], "$ref": f"#/$defs/{table}"}, format_checker=check
        )
        for line in contents.read(f"{table}.jsonl").splitlines():
            rows.validate(json.loads(line))
        assert not rows.is_valid({}), "a row without its columns does not pass"


def test_an_export_in_format_version_2_still_imports(
    tmp_path: Path,
    emulator: RunningEmulator,
    monkeypatch: pytest.MonkeyPatch,
    database: DatabaseChoice,
) -> None:
    """tests/fixtures/gallery-export-v2.zip, as the export wrote it before its members had
    extensions and dates: four jobs (one failed), three images (one an upload), a board."""
    fixture = Path(__file__).parent / "fixtures" / "gallery-export-v2.zip"
    assert run_cli(monkeypatch, tmp_path / "data", "import", str(fixture), database=database) == 0
    settings = make_settings(tmp_path / "data", emulator, database=database)
    rows = table_rows(settings)
    assert (len(rows["jobs"]), len(rows["images"]), len(rows["collections"])) == (4, 3, 1)
    with zipfile.ZipFile(fixture) as old:
        for sha, (data, thumbnail) in stored_bytes(settings).items():
            assert data == old.read(f"blobs/{sha}")
            assert thumbnail == old.read(f"thumbnails/{sha}")


def as_version_1(export: Path, target: Path) -> None:
    """The same export in the layout of version 1, from before thumbnails moved into the
    blob store: their columns in thumbnails.jsonl and their bytes once per image row."""
    with zipfile.ZipFile(export) as new, zipfile.ZipFile(target, "w") as old:
        manifest = json.loads(new.read("manifest.json"))
        old.writestr("manifest.json", json.dumps({**manifest, "version": 1}))
        rows = []
        for line in new.read("images.jsonl").splitlines():
            image = json.loads(line)
            old.writestr(
                f"thumbnails/{image['id']}", new.read(f"thumbnails/{image['sha256']}.webp")
            )
            rows.append(
                {"image_id": image["id"], "content_type": "image/webp", "width": 1, "height": 1}
            )
        old.writestr("thumbnails.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
        for info in new.infolist():
            if info.filename != "manifest.json" and not info.filename.startswith("thumbnails/"):
                # Images by their digest alone, as every export before version 3.
                name = re.sub(r"^(blobs/[0-9a-f]{64})\.\w+$", r"\1", info.filename)
                old.writestr(name, new.read(info))
