"""Thumbnails: kept in the blob store beside their images, found wherever they are.

The blob store (app.storage.blobs.protocol) holds each image's WebP thumbnail under the image's
digest, so a gallery whose images live in PostgreSQL or a bucket keeps its
thumbnails there too, and the database holds rows only.

Galleries from before kept every thumbnail as a row of the `thumbnails` table
in the main database. They keep working: `Thumbnails.move_legacy_batch` takes
those rows into the store a batch at a time (the app does it in the background
after it starts; nothing is lost if it stops halfway), and until none are left
`find` looks in the old table first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import anyio
import sqlalchemy as sa
from sqlmodel import col, select

from app.storage.blobs.protocol import BlobStore
from app.storage.db.engine import Database
from app.storage.db.tables import Image, Thumbnail
from app.storage.intake import THUMBNAIL_CONTENT_TYPE

log = logging.getLogger(__name__)

# Rows moved per transaction: a few megabytes of thumbnails, a short write.
MOVE_BATCH = 200


@dataclass(frozen=True)
class FoundThumbnail:
    """A thumbnail's bytes, or where to send the browser for them (`redirect`)."""

    content_type: str
    data: bytes = b""
    redirect: str | None = None


class Thumbnails:
    def __init__(self, db: Database, blobs: BlobStore) -> None:
        self._db = db
        self._blobs = blobs
        # Until looked at, assume a gallery from before: its old rows are served.
        self._legacy_left = True

    @property
    def legacy_left(self) -> bool:
        return self._legacy_left

    def find(self, *, image_id: int, sha256: str) -> FoundThumbnail | None:
        """The thumbnail of this image (whose bytes have this digest), or None."""
        if self._legacy_left:
            with self._db.read() as session:
                row = session.get(Thumbnail, image_id)
            if row is not None:
                return FoundThumbnail(row.content_type, row.data)
        url = self._blobs.redirect_url(sha256, content_type=THUMBNAIL_CONTENT_TYPE, thumbnail=True)
        if url is not None:
            return FoundThumbnail(THUMBNAIL_CONTENT_TYPE, redirect=url)
        data = self._blobs.read_thumbnail(sha256)
        return None if data is None else FoundThumbnail(THUMBNAIL_CONTENT_TYPE, data)

    def data_for(self, *, image_id: int, sha256: str) -> bytes | None:
        """The thumbnail's bytes wherever they are, never a redirect (to draw with)."""
        if self._legacy_left:
            with self._db.read() as session:
                row = session.get(Thumbnail, image_id)
            if row is not None:
                return row.data
        return self._blobs.read_thumbnail(sha256)

    def read(self, sha256: str) -> bytes | None:
        """The thumbnail of the image with this digest, wherever it is (for exports)."""
        data = self._blobs.read_thumbnail(sha256)
        if data is not None or not self._legacy_left:
            return data
        with self._db.read() as session:
            return session.exec(
                select(Thumbnail.data)
                .join(Image, col(Image.id) == col(Thumbnail.image_id))
                .where(col(Image.sha256) == sha256)
                .limit(1)
            ).first()

    def move_legacy_batch(self, *, limit: int = MOVE_BATCH) -> int:
        """Move up to `limit` thumbnails from the old table into the store; returns how many.

        Bytes go to the store before their rows are deleted, so a crash in between
        leaves a thumbnail in both places, never in neither.
        """
        if not self._legacy_left:
            return 0
        with self._db.read() as session:
            rows = session.exec(
                select(Thumbnail.image_id, Image.sha256, Thumbnail.data)
                .join(Image, col(Image.id) == col(Thumbnail.image_id))
                .order_by(col(Thumbnail.image_id))
                .limit(limit)
            ).all()
        if not rows:
            self._legacy_left = False
            return 0
        for _, sha256, data in rows:
            self._blobs.put_thumbnail(sha256, data)
        with self._db.write() as session:
            session.execute(
                sa.delete(Thumbnail).where(col(Thumbnail.image_id).in_([row[0] for row in rows]))
            )
        return len(rows)

    def move_legacy(self) -> int:
        """Move every thumbnail left in the old table; returns how many moved."""
        moved = 0
        while count := self.move_legacy_batch():
            moved += count
        return moved


async def move_legacy_in_background(thumbnails: Thumbnails) -> None:
    """Move a gallery's old thumbnails into the blob store, a batch at a time, then stop.

    Each batch runs in a worker thread; between batches the task can be cancelled,
    so a server stopping mid-move stops at once and the next start carries on.
    """
    moved = 0
    try:
        while count := await anyio.to_thread.run_sync(thumbnails.move_legacy_batch):
            moved += count
    except Exception:
        # They are still served from the database; the next start tries again.
        log.exception("moving thumbnails into the blob store failed after %d", moved)
        return
    if moved:
        log.info("moved %d thumbnail(s) from the database into the blob store", moved)
