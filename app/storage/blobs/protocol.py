"""Where image bytes live: the `BlobStore` protocol every store keeps.

A store holds each distinct image once, named by the sha256 of its bytes, and
beside it that image's thumbnail and preview (app/storage/previews.py), named by the
same digest. Three stores keep
the promise (`app.storage.blobs.choose` picks one from the settings):

- a SQLite file in the data dir, the default (`app.storage.db.sqlite`);
- tables in the PostgreSQL database, the default there (`app.storage.db.postgres`);
- an S3-compatible bucket: AWS, MinIO, R2 (`app.storage.blobs.s3`).

What every store promises:

- `put_file` streams a file in and checks it against its digest; storing a
  digest that is present already only renews it (`renew`), so two workers
  storing the same image at once both succeed. Bytes are stored before the rows
  that name them are committed.
- `iter_chunks` streams an image out a chunk at a time: no store holds a whole
  image in memory, on the way in or out.
- Bytes are deleted only when no image row names them at the moment they go.
  `discard` (what a purge no longer needs) and `sweep` (what a crash left
  behind, older than a grace period) look at the gallery's rows themselves.
  Storage is by content, so a writer may store bytes (a no-op: they are there)
  just before a deletion takes them, and commit its rows just after. So a
  writer asks `keeps` inside the transaction that commits its rows, and stores
  again if the bytes went (`store_then_commit`). On SQLite and PostgreSQL the
  deletion and that question exclude each other, so no row is ever committed
  naming deleted bytes. S3 offers no transaction: there `put_file` and `renew`
  renew the object's date, and deletions spare anything renewed within
  `SWEEP_GRACE_SECONDS` (see app/storage/blobs/s3.py for what that leaves).
- `check` asks the store whether it answers, for the readiness probe;
- `redirect_url` is the S3 store's alone: a presigned, expiring URL to send a
  browser to instead of streaming through the app, when the settings ask for it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:
    import sqlalchemy as sa

    from app.storage.db.engine import Database

# Read and written a chunk at a time: large enough for few round trips, small
# enough that streaming a 20 MB image never holds more than this of it.
CHUNK_BYTES = 1024 * 1024
# Sweeps spare bytes younger than this: their rows may not be committed yet. It is also
# as long as a writer may take from storing bytes to committing its rows on S3, where
# deletions spare bytes stored (or renewed) this recently.
SWEEP_GRACE_SECONDS = 3600.0
# How often a writer stores its bytes again when deletions keep taking them first.
STORE_ATTEMPTS = 3

_T = TypeVar("_T")


class BlobNotFound(KeyError):
    """No bytes are stored under this digest."""


class DigestMismatch(ValueError):
    """The bytes do not hash to the digest they were to be stored under."""


class BlobStoreUnavailable(RuntimeError):
    """The store the settings name cannot be reached or used (said when it is opened)."""


class BlobTaken(BlobNotFound):
    """Bytes stored for rows were deleted, as unused, before the rows were committed: the
    transaction is rolled back, and the bytes are stored again (`store_then_commit`)."""


class BlobStore(Protocol):
    """Content-addressed image bytes, with each image's thumbnail beside it."""

    def put_file(self, sha256: str, path: Path) -> None:
        """Store the file's bytes under `sha256`, streaming; if present, only `renew` them.

        Raises DigestMismatch, storing nothing, if the bytes hash to another digest.
        """

    def renew(self, sha256: str) -> bool:
        """Whether the image is stored; if so, it counts as stored just now (on S3,
        deletions spare it for the grace period), as `put_file` of present bytes does."""

    def keeps(self, connection: sa.Connection, digests: Collection[str]) -> bool:
        """Whether every one of these images is stored and stays so until the transaction
        on `connection` ends: asked inside a write transaction of the gallery, before it
        commits rows naming them. False: a deletion took one since it was stored."""

    def put_thumbnail(self, sha256: str, data: bytes) -> None:
        """Store the thumbnail of the image whose digest is `sha256`."""

    def put_preview(self, sha256: str, data: bytes) -> None:
        """Store the preview (app/storage/previews.py) of the image whose digest is `sha256`."""

    def read_preview(self, sha256: str) -> bytes | None:
        """The preview stored beside the image `sha256`, or None."""

    def contains(self, sha256: str) -> bool:
        """Whether the image bytes for `sha256` are stored."""

    def size(self, sha256: str) -> int:
        """The stored image's length in bytes; BlobNotFound if absent."""

    def iter_chunks(self, sha256: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
        """The image's bytes, at most `chunk_bytes` at a time; BlobNotFound if absent."""

    def read_thumbnail(self, sha256: str) -> bytes | None:
        """The thumbnail stored beside the image `sha256`, or None."""

    def redirect_url(
        self, sha256: str, *, content_type: str, thumbnail: bool = False
    ) -> str | None:
        """A URL a browser may fetch the bytes from directly, or None: stream them instead."""

    def discard(self, digests: Iterable[str], *, gallery: Database) -> int:
        """Delete those of these images (with their thumbnails and previews) that no image row in
        `gallery` names when they go; returns how many images went."""

    def sweep(self, *, gallery: Database, older_than_seconds: float = SWEEP_GRACE_SECONDS) -> int:
        """Delete images (and thumbnails, previews) stored longer ago than the grace that no
        image row in `gallery` names when they go; returns how many images went."""

    def backup_to(self, directory: Path) -> Path | None:
        """Copy the store into `directory` as one consistent file for a backup, returning it;
        None when its bytes are not a file of ours (they are backed up where they live)."""

    def check(self) -> None:
        """Raise BlobStoreUnavailable unless the store answers now: one round trip, asked by
        the readiness probe (app/features/ops/probes.py)."""

    def describe(self) -> str:
        """Where the bytes are, for people: a path, a database or a bucket (never a secret)."""

    def close(self) -> None:
        """Release connections; the store is not used afterwards."""


def ensure_kept(blobs: BlobStore, connection: sa.Connection, digests: Collection[str]) -> None:
    """Raise BlobTaken unless the store `keeps` these images for the transaction on
    `connection`; called last before it commits rows naming them."""
    if digests and not blobs.keeps(connection, digests):
        raise BlobTaken(", ".join(sorted(digests)))


def store_then_commit(attempt: Callable[[], _T]) -> _T:
    """Run `attempt`, which stores bytes and then commits rows naming them (calling
    `ensure_kept` before the commit), again if a deletion took the bytes in between:
    each time the deletion has gone by, so the next attempt stores them afresh."""
    for _ in range(STORE_ATTEMPTS - 1):
        try:
            return attempt()
        except BlobTaken:
            continue
    return attempt()


def file_sha256(path: Path) -> str:
    """The digest of a file, read a chunk at a time."""
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def split_chunks(chunks: Iterable[bytes], chunk_bytes: int) -> Iterator[bytes]:
    """Hand on chunks no larger than `chunk_bytes` (stores keep theirs at CHUNK_BYTES)."""
    for chunk in chunks:
        if len(chunk) <= chunk_bytes:
            yield chunk
            continue
        view = memoryview(chunk)
        for start in range(0, len(view), chunk_bytes):
            yield bytes(view[start : start + chunk_bytes])
