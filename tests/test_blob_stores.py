"""One contract, three stores: SQLite, PostgreSQL and S3 keep the same promises
(app.storage.blobs.protocol).

Every test here runs against each store as the app would open it from its
settings: a SQLite file in the data dir, tables in a real PostgreSQL 15, and a
bucket of moto's S3 server on loopback. It stays one module, long as it is: every test
is the one contract asked of each store.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import threading
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from alembic import command
from pydantic import ValidationError
from sqlmodel import col

from app.cli import main as cli
from app.core.config import Settings
from app.core.database_url import engine_url
from app.storage.blobs.choose import open_blob_store
from app.storage.blobs.protocol import CHUNK_BYTES, BlobNotFound, BlobStore, DigestMismatch
from app.storage.blobs.s3 import S3BlobStore, S3Unavailable
from app.storage.db.blob_tables import BLOB_STORE_TABLES
from app.storage.db.engine import Database, migrations_config
from app.storage.db.tables import Image, Job, JobStatus
from tests.support.stores import S3Bucket

STORES = ("sqlite", "postgres", "s3")
# Larger than several chunks and than a whole-image buffer would hide in.
LARGE_BYTES = 8 * 1024 * 1024


@dataclass
class Opened:
    """A store as the app opens it, and the gallery whose rows name its bytes."""

    store: BlobStore
    gallery: Database


@pytest.fixture(params=STORES)
def opened(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opened]:
    data_dir = tmp_path / "data"
    if request.param == "postgres":
        settings = Settings(_env_file=None, data_dir=data_dir)
        gallery = Database(engine_url(request.getfixturevalue("postgres_url")))
    else:
        extra = {} if request.param == "sqlite" else request.getfixturevalue("s3_bucket").settings()
        settings = Settings(_env_file=None, data_dir=data_dir, **extra)
        gallery = Database.at_path(settings.database_path)
    gallery.migrate()  # the PostgreSQL store's tables are the migrations' to make
    blobs = open_blob_store(settings, database_url=gallery.url)
    if isinstance(blobs, S3BlobStore):
        # Deleted as soon as nothing names them, as in the other stores (the grace has a
        # test of its own).
        blobs.grace_seconds = 0.0
    try:
        yield Opened(blobs, gallery)
    finally:
        blobs.close()
        gallery.dispose()


@pytest.fixture
def store(opened: Opened) -> BlobStore:
    return opened.store


@pytest.fixture
def gallery(opened: Opened) -> Database:
    return opened.gallery


def write(path: Path, data: bytes) -> tuple[str, Path]:
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest(), path


def name_in_gallery(gallery: Database, sha: str) -> int:
    """An image row naming the bytes `sha` (with its job); returns the image's id."""
    with gallery.write() as session:
        job = Job(
            model="seedream-4",
            prompt="names stored bytes",
            image_size="auto_2K",
            num_images=1,
            request_body={},
            status=JobStatus.COMPLETED,
        )
        session.add(job)
        session.flush()
        assert job.id is not None
        image = Image(
            job_id=job.id,
            index=0,
            content_type="image/png",
            width=1,
            height=1,
            byte_size=1,
            sha256=sha,
            source_url="upload:test",
        )
        session.add(image)
        session.flush()
        assert image.id is not None
        return image.id


def test_each_store_is_the_one_its_settings_name(store: BlobStore, request: Any) -> None:
    kind = request.node.callspec.params["opened"]
    expected = {"sqlite": "images.db", "postgres": "PostgreSQL", "s3": "s3://gallery-"}[kind]
    assert expected in store.describe()


def test_an_image_comes_back_byte_identical_a_chunk_at_a_time(
    store: BlobStore, tmp_path: Path
) -> None:
    payload = os.urandom(2 * CHUNK_BYTES + 12_345)
    sha, path = write(tmp_path / "image.png", payload)
    assert not store.contains(sha)
    store.put_file(sha, path)
    assert store.contains(sha)
    assert store.size(sha) == len(payload)
    chunks = list(store.iter_chunks(sha))
    assert len(chunks) == 3 and all(len(chunk) <= CHUNK_BYTES for chunk in chunks)
    assert b"".join(chunks) == payload
    small = list(store.iter_chunks(sha, chunk_bytes=256 * 1024))
    assert all(len(chunk) <= 256 * 1024 for chunk in small)
    assert b"".join(small) == payload


def test_storing_the_same_image_again_is_a_no_op_even_at_the_same_moment(
    store: BlobStore, gallery: Database, tmp_path: Path
) -> None:
    payload = os.urandom(CHUNK_BYTES + 1)
    sha, path = write(tmp_path / "image.png", payload)
    store.put_file(sha, path)
    store.put_file(sha, path)
    # Two workers that downloaded the same image store it together: both succeed.
    errors: list[BaseException] = []

    def put() -> None:
        try:
            store.put_file(sha, path)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=put) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    assert store.size(sha) == len(payload)
    assert b"".join(store.iter_chunks(sha)) == payload
    assert store.discard([sha], gallery=gallery) == 1, "one copy, however often it was stored"
    assert not store.contains(sha)


def test_bytes_that_do_not_hash_to_their_name_are_refused_and_nothing_is_kept(
    store: BlobStore, tmp_path: Path
) -> None:
    sha, _ = write(tmp_path / "expected.png", b"the bytes we were promised")
    _, other = write(tmp_path / "other.png", b"something else entirely")
    with pytest.raises(DigestMismatch):
        store.put_file(sha, other)
    assert not store.contains(sha)
    with pytest.raises(BlobNotFound):
        store.size(sha)


def test_a_missing_image_is_reported_as_missing(store: BlobStore, gallery: Database) -> None:
    sha = hashlib.sha256(b"never stored").hexdigest()
    assert not store.contains(sha)
    with pytest.raises(BlobNotFound):
        store.size(sha)
    with pytest.raises(BlobNotFound):
        next(iter(store.iter_chunks(sha)))
    assert store.read_thumbnail(sha) is None
    assert store.discard([sha], gallery=gallery) == 0


@pytest.mark.parametrize("kind", ["thumbnail", "preview"])
def test_thumbnails_and_previews_sit_beside_their_image_and_go_with_it(
    store: BlobStore, gallery: Database, tmp_path: Path, kind: str
) -> None:
    put, read = getattr(store, f"put_{kind}"), getattr(store, f"read_{kind}")
    sha, path = write(tmp_path / "image.png", b"\x89PNG pretend image bytes")
    store.put_file(sha, path)
    put(sha, b"RIFF pretend webp")
    put(sha, b"RIFF pretend webp")  # again: no error, one copy
    assert read(sha) == b"RIFF pretend webp"
    assert store.discard([sha, sha], gallery=gallery) == 1
    assert not store.contains(sha)
    assert read(sha) is None


@pytest.mark.parametrize("kind", ["thumbnail", "preview"])
def test_the_sweep_removes_only_old_unreferenced_images_and_their_thumbnails_and_previews(
    store: BlobStore, gallery: Database, tmp_path: Path, kind: str
) -> None:
    put, read = getattr(store, f"put_{kind}"), getattr(store, f"read_{kind}")
    kept, kept_path = write(tmp_path / "kept.png", b"an image a job points at")
    orphan, orphan_path = write(tmp_path / "orphan.png", b"an image nothing points at")
    for sha, path in ((kept, kept_path), (orphan, orphan_path)):
        store.put_file(sha, path)
        put(sha, b"rendition of " + sha.encode())
    # One whose image never arrived (a crash between the two writes), or went before a
    # preview made for it was stored.
    lone = hashlib.sha256(b"lost").hexdigest()
    put(lone, b"rendition without an image")

    name_in_gallery(gallery, kept)

    assert store.sweep(gallery=gallery) == 0, "recent bytes are spared: a writer may be mid-commit"
    assert store.contains(orphan) and read(lone) is not None
    assert store.sweep(gallery=gallery, older_than_seconds=-60) == 1
    assert store.contains(kept) and read(kept) is not None
    assert not store.contains(orphan) and read(orphan) is None
    assert read(lone) is None


def test_bytes_an_image_row_names_are_neither_discarded_nor_swept(
    store: BlobStore, gallery: Database, tmp_path: Path
) -> None:
    named, named_path = write(tmp_path / "named.png", b"bytes an image row names")
    spare, spare_path = write(tmp_path / "spare.png", b"bytes nothing names")
    for sha, path in ((named, named_path), (spare, spare_path)):
        store.put_file(sha, path)
        store.put_thumbnail(sha, b"thumbnail of " + sha.encode())
    image_id = name_in_gallery(gallery, named)

    # The caller need not have looked: the store looks at the rows as it deletes.
    assert store.discard([named, spare], gallery=gallery) == 1
    assert store.sweep(gallery=gallery, older_than_seconds=-60) == 0
    assert store.contains(named) and store.read_thumbnail(named) is not None
    assert not store.contains(spare) and store.read_thumbnail(spare) is None
    with gallery.write() as session:
        session.execute(sa.delete(Image).where(col(Image.id) == image_id))
    assert store.discard([named], gallery=gallery) == 1
    assert not store.contains(named)


def test_an_s3_store_spares_what_was_stored_within_the_grace_and_storing_again_renews_it(
    s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    """S3 deletes without a transaction it could share with the rows: an image stored (or
    stored again) within the grace may be named by rows about to be committed."""
    settings = Settings(_env_file=None, data_dir=tmp_path, **s3_bucket.settings())
    gallery = Database.at_path(settings.database_path)
    gallery.migrate()
    store = open_blob_store(settings, database_url=gallery.url)
    assert isinstance(store, S3BlobStore)
    try:
        sha, path = write(tmp_path / "image.png", b"bytes stored just now")
        store.put_file(sha, path)
        assert store.discard([sha], gallery=gallery) == 0, "stored within the grace"
        assert store.sweep(gallery=gallery) == 0
        assert store.contains(sha)

        # Storing the bytes again moves their date on (S3 keeps it to the second).
        first = stored_at(store, sha)
        deadline = time.monotonic() + 10
        while stored_at(store, sha) == first:
            assert time.monotonic() < deadline, "storing again never renewed the date"
            store.put_file(sha, path)
        assert stored_at(store, sha) > first
        assert store.renew(sha)
        assert not store.renew(hashlib.sha256(b"never stored").hexdigest())

        store.grace_seconds = 0.0
        assert store.discard([sha], gallery=gallery) == 1
        assert not store.contains(sha)
    finally:
        store.close()
        gallery.dispose()


def stored_at(store: S3BlobStore, sha: str) -> datetime:
    answer = store._client.head_object(Bucket=store._bucket, Key=store._image_key(sha))
    return answer["LastModified"]


def test_a_large_image_is_streamed_both_ways_without_being_held_whole(
    store: BlobStore, tmp_path: Path
) -> None:
    sha, path = write(tmp_path / "large.png", os.urandom(LARGE_BYTES))
    digest = hashlib.sha256()
    tracemalloc.start()
    try:
        store.put_file(sha, path)
        _, stored_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for chunk in store.iter_chunks(sha):
            digest.update(chunk)
        _, served_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert digest.hexdigest() == sha
    # A chunk or two at a time; the whole image would be 8 MiB.
    assert stored_peak < LARGE_BYTES / 2, f"storing peaked at {stored_peak / 2**20:.1f} MiB"
    assert served_peak < LARGE_BYTES / 2, f"serving peaked at {served_peak / 2**20:.1f} MiB"


def test_only_an_s3_store_set_to_redirect_hands_out_urls(store: BlobStore, tmp_path: Path) -> None:
    sha, path = write(tmp_path / "image.png", b"bytes")
    store.put_file(sha, path)
    assert store.redirect_url(sha, content_type="image/png") is None


def test_an_s3_store_set_to_redirect_presigns_expiring_urls_to_the_bytes(
    s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    settings = Settings(
        _env_file=None, data_dir=tmp_path, s3_redirect_seconds=300, **s3_bucket.settings()
    )
    store = open_blob_store(settings, database_url="sqlite:///unused.db")
    try:
        payload = os.urandom(300_000)
        sha, path = write(tmp_path / "image.png", payload)
        store.put_file(sha, path)
        store.put_thumbnail(sha, b"RIFF thumbnail")
        url = store.redirect_url(sha, content_type="image/png")
        assert url is not None
        request = httpx.URL(url)
        assert url.startswith(f"{s3_bucket.endpoint_url}/{s3_bucket.name}/gallery/images/{sha}")
        assert request.params["X-Amz-Expires"] == "300"
        assert request.params["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
        assert "playground-tests-secret" not in url
        answer = httpx.get(url)
        assert answer.status_code == 200
        assert answer.content == payload
        assert answer.headers["content-type"] == "image/png"
        assert "immutable" in answer.headers["cache-control"]
        thumbnail_url = store.redirect_url(sha, content_type="image/webp", thumbnail=True)
        assert thumbnail_url is not None
        thumbnail = httpx.get(thumbnail_url)
        assert thumbnail.content == b"RIFF thumbnail"
        assert thumbnail.headers["content-type"] == "image/webp"
    finally:
        store.close()


def test_the_postgres_store_tables_come_and_go_with_their_migration(
    postgres_url: str, tmp_path: Path
) -> None:
    db = Database(engine_url(postgres_url))
    db.migrate()
    with db.write_engine.begin() as connection:
        assert tables(connection) >= BLOB_STORE_TABLES
        storage: dict[str, str] = dict(
            connection.exec_driver_sql(
                "SELECT c.relname, a.attstorage FROM pg_attribute a"
                " JOIN pg_class c ON c.oid = a.attrelid"
                " WHERE a.attname = 'data' AND c.relname IN ('blob_chunks', 'blob_thumbnails',"
                " 'blob_previews')"
            ).all()
        )
        assert storage == dict.fromkeys(BLOB_STORE_TABLES - {"blobs"}, "e"), "uncompressed"
        config = migrations_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "0009")
        assert not BLOB_STORE_TABLES & tables(connection)
        command.upgrade(config, "head")
        assert tables(connection) >= BLOB_STORE_TABLES
    db.dispose()
    # A SQLite gallery keeps its bytes in a file of their own, never in its database.
    sqlite_db = Database.at_path(tmp_path / "playground.db")
    sqlite_db.migrate()
    with sqlite_db.read_engine.connect() as connection:
        assert not BLOB_STORE_TABLES & tables(connection)
    sqlite_db.dispose()


def tables(connection: sa.Connection) -> set[str]:
    return set(sa.inspect(connection).get_table_names())


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"blob_url": "https://bucket.example/images"}, "PLAYGROUND_BLOB_URL"),
        ({"blob_url": "s3://No_Such_Bucket!"}, "PLAYGROUND_BLOB_URL"),
        ({"s3_endpoint_url": "http://127.0.0.1:9000"}, "PLAYGROUND_BLOB_URL"),
        ({"s3_redirect_seconds": 60}, "PLAYGROUND_BLOB_URL"),
        ({"blob_url": "s3://bucket", "s3_endpoint_url": "minio:9000"}, "ENDPOINT_URL"),
        ({"blob_url": "s3://bucket", "s3_redirect_seconds": 8 * 24 * 3600}, "s3_redirect"),
    ],
)
def test_store_settings_that_cannot_work_are_refused_by_name(
    values: dict[str, Any], named: str, tmp_path: Path
) -> None:
    with pytest.raises(ValidationError, match=named):
        Settings(_env_file=None, data_dir=tmp_path, **values)


def test_a_bucket_that_cannot_be_used_stops_the_app_from_starting(
    s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path,
        blob_url="s3://no-such-bucket/gallery",
        s3_endpoint_url=s3_bucket.endpoint_url,
    )
    with pytest.raises(S3Unavailable, match="no-such-bucket") as refused:
        open_blob_store(settings, database_url="sqlite:///unused.db")
    assert "playground-tests-secret" not in str(refused.value)


def test_commands_say_in_one_line_when_the_bucket_cannot_be_used(
    s3_bucket: S3Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database.at_path(tmp_path / "data" / "playground.db")
    db.migrate()
    db.dispose()
    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PLAYGROUND_BLOB_URL", "s3://no-such-bucket/gallery")
    monkeypatch.setenv("PLAYGROUND_S3_ENDPOINT_URL", s3_bucket.endpoint_url)
    for name in ("export", "backup"):
        with pytest.raises(SystemExit, match=r"Cannot use the image store: .*no-such-bucket"):
            cli.main([name, str(tmp_path / "out")])


def test_a_backup_with_an_s3_store_holds_the_rows_and_says_where_the_bytes_stay(
    s3_bucket: S3Bucket,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data_dir = tmp_path / "data"
    db = Database.at_path(data_dir / "playground.db")
    db.migrate()
    db.dispose()
    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(data_dir))
    monkeypatch.setenv("PLAYGROUND_BLOB_URL", f"s3://{s3_bucket.name}/gallery")
    monkeypatch.setenv("PLAYGROUND_S3_ENDPOINT_URL", s3_bucket.endpoint_url)
    assert cli.main(["backup", str(tmp_path / "gallery.tar")]) == 0
    with tarfile.open(tmp_path / "gallery.tar") as archive:
        assert archive.getnames() == ["playground.db"]
    said = capsys.readouterr().err
    assert f"s3://{s3_bucket.name}/gallery/" in said and "export" in said
