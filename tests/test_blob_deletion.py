"""Stored bytes go only when no image row names them (app.storage.blobs.protocol), however a
deletion and a
writer storing the same bytes interleave. Storage is by content: a writer finding its bytes
stored already stores nothing, so a purge or the sweep could take them between that and the
writer's rows. Raced many times on SQLite and on PostgreSQL, and each writer shown the
deletion landing in exactly that gap."""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest
import sqlalchemy as sa
from PIL import Image as PILImage
from sqlmodel import col, select

from app.core.config import Settings
from app.features.archive import transfer as archive
from app.features.gallery import trash
from app.features.jobs import queue, reads, references
from app.storage.blobs.choose import open_blob_store
from app.storage.blobs.protocol import BlobStore
from app.storage.db.engine import Database
from app.storage.db.tables import Image, Job, JobStatus, utcnow
from tests.support.jobs import downloading_job, staged_image

pytestmark = pytest.mark.both_databases

ROUNDS = 60


@pytest.fixture
def blobs(tmp_path: Path, db: Database) -> Iterator[BlobStore]:
    """The store the app opens beside `db` (on SQLite, `images.db` beside its file)."""
    store = open_blob_store(Settings(_env_file=None, data_dir=tmp_path), database_url=db.url)
    yield store
    store.close()


def png(path: Path, colour: tuple[int, int, int] = (30, 120, 200)) -> tuple[Path, str]:
    buffer = io.BytesIO()
    PILImage.new("RGB", (48, 32), colour).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())
    return path, hashlib.sha256(buffer.getvalue()).hexdigest()


def rows_without_bytes(db: Database, blobs: BlobStore) -> list[int]:
    """Image rows naming bytes the store no longer has."""
    with db.read() as session:
        rows = session.exec(select(Image.id, Image.sha256)).all()
    return [image_id for image_id, sha in rows if image_id is not None and not blobs.contains(sha)]


def race(first: Callable[[], object], second: Callable[[], object]) -> None:
    """Run both at once, released together."""
    start = threading.Barrier(2)

    def released(step: Callable[[], object]) -> object:
        start.wait(timeout=30)
        return step()

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(released, first), pool.submit(released, second)]
        for future in futures:
            future.result(timeout=60)


def test_a_purge_racing_an_upload_of_the_same_bytes_never_leaves_a_row_without_them(
    tmp_path: Path, db: Database, blobs: BlobStore
) -> None:
    path, sha = png(tmp_path / "upload.png")
    latest = references.store_upload(db, blobs, path, name="first", user=None)
    for round_ in range(ROUNDS):
        # The last upload is in the trash: purging it deletes the bytes unless the same
        # bytes, uploaded again at this moment, are named by a row by then.
        trash.move_to_trash(db, image_ids=[latest])
        race(
            partial(trash.purge, db, blobs, image_ids=[latest]),
            partial(references.store_upload, db, blobs, path, name="again", user=None),
        )
        assert rows_without_bytes(db, blobs) == [], f"round {round_}"
        with db.read() as session:
            newest = session.exec(select(sa.func.max(Image.id))).one()
        assert newest is not None and newest != latest
        latest = newest
    # Once nothing names them, they go.
    trash.move_to_trash(db, image_ids=[latest])
    assert trash.purge(db, blobs, image_ids=[latest]) == trash.PurgeResult(images=1, blobs=1)
    assert not blobs.contains(sha)


def test_the_sweep_racing_an_upload_of_the_same_bytes_never_leaves_a_row_without_them(
    tmp_path: Path, db: Database, blobs: BlobStore
) -> None:
    path, sha = png(tmp_path / "upload.png", (200, 200, 20))
    blobs.put_file(sha, path)
    for round_ in range(ROUNDS):
        # Bytes nothing names (a crash left them), old enough to sweep, uploaded again.
        race(
            lambda: blobs.sweep(gallery=db, older_than_seconds=-60),
            lambda: references.store_upload(db, blobs, path, name="again", user=None),
        )
        assert rows_without_bytes(db, blobs) == [], f"round {round_}"
        with db.write() as session:
            session.execute(sa.delete(Job))
        blobs.put_file(sha, path)
    assert blobs.sweep(gallery=db, older_than_seconds=-60) == 1
    assert not blobs.contains(sha)


class TakenAfterStoring:
    """The store, with a deletion landing right after the writer stored (or renewed) the
    bytes and before it committed its rows: the worst moment, every time, `times` times."""

    def __init__(self, store: BlobStore, gallery: Database, *, times: int = 1) -> None:
        self._store = store
        self._gallery = gallery
        self.left = times

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    def _take(self, sha256: str) -> None:
        if self.left:
            self.left -= 1
            assert self._store.discard([sha256], gallery=self._gallery) == 1

    def put_file(self, sha256: str, path: Path) -> None:
        self._store.put_file(sha256, path)
        self._take(sha256)

    def renew(self, sha256: str) -> bool:
        renewed = self._store.renew(sha256)
        if renewed:
            self._take(sha256)
        return renewed

    def keeps(self, connection: sa.Connection, digests: Collection[str]) -> bool:
        return self._store.keeps(connection, digests)

    def discard(self, digests: Iterable[str], *, gallery: Database) -> int:
        return self._store.discard(digests, gallery=gallery)


def test_an_upload_whose_bytes_a_purge_took_before_its_rows_stores_them_again(
    tmp_path: Path, db: Database, blobs: BlobStore
) -> None:
    path, sha = png(tmp_path / "upload.png")
    earlier = references.store_upload(db, blobs, path, name="earlier", user=None)
    trash.move_to_trash(db, image_ids=[earlier])
    with db.write() as session:
        # Purged already, all but its bytes: the purge is about to take them.
        session.execute(sa.delete(Image).where(col(Image.id) == earlier))
    taken = TakenAfterStoring(blobs, db)
    image_id = references.store_upload(db, taken, path, name="again", user=None)  # type: ignore[arg-type]
    assert taken.left == 0, "the deletion came between storing and committing"
    assert blobs.contains(sha) and blobs.read_thumbnail(sha) is not None
    assert rows_without_bytes(db, blobs) == []
    with db.read() as session:
        assert session.get(Image, image_id) is not None


def test_a_worker_whose_bytes_a_purge_took_before_its_rows_stores_them_again(
    tmp_path: Path, db: Database, blobs: BlobStore
) -> None:
    image = staged_image(tmp_path, "downloaded.png")
    job_id = downloading_job(db)
    queue.register_worker(db, worker_id="w")
    [job] = queue.claim_due_jobs(db, owner="w", now=utcnow(), lease_seconds=30, limit=1)
    taken = TakenAfterStoring(blobs, db)
    assert queue.store_images(
        db,
        taken,  # type: ignore[arg-type]
        job_id=job_id,
        owner="w",
        token=job.lease_token,
        staged=[image],
    )
    assert taken.left == 0
    assert rows_without_bytes(db, blobs) == []
    stored = reads.get_job(db, job_id=job_id)
    assert stored is not None and stored.job.status is JobStatus.COMPLETED
    assert [row.sha256 for row in stored.images] == [image.sha256]


def test_an_import_whose_bytes_a_purge_took_before_its_rows_stores_them_again(
    tmp_path: Path, db: Database, blobs: BlobStore
) -> None:
    path, sha = png(tmp_path / "upload.png")
    references.store_upload(db, blobs, path, name="exported", user=None)
    exported = tmp_path / "gallery.zip"
    archive.export_gallery(db, blobs, exported)
    with db.write() as session:
        # Purged since, all but its bytes: the import finds them stored, renews them, and
        # then the purge takes them.
        session.execute(sa.delete(Job))
    taken = TakenAfterStoring(blobs, db)
    counts = archive.import_gallery(db, taken, exported, scratch_dir=tmp_path / "scratch")  # type: ignore[arg-type]
    assert taken.left == 0
    assert counts.images == 1
    assert blobs.contains(sha)
    assert rows_without_bytes(db, blobs) == []


def test_a_writer_asks_inside_its_transaction_whether_the_store_keeps_its_bytes(
    tmp_path: Path, db: Database, blobs: BlobStore
) -> None:
    path, sha = png(tmp_path / "image.png")
    blobs.put_file(sha, path)
    with db.write() as session:
        assert blobs.keeps(session.connection(), {sha})
    assert blobs.discard([sha], gallery=db) == 1
    with db.write() as session:
        assert not blobs.keeps(session.connection(), {sha})
        # Many at once (an import) are answered as well, without a lock for each.
        many = {hashlib.sha256(bytes([n])).hexdigest() for n in range(200)}
        assert not blobs.keeps(session.connection(), many)
