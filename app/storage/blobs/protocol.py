"""Where image bytes live: the `BlobStore` protocol every store keeps.

A store holds each distinct image once, named by the sha256 of its bytes, and
beside it that image's thumbnail, named by the same digest. Three stores keep
the promise (`app.storage.blobs.choose` picks one from the settings):

- a SQLite file in the data dir, the default (`app.storage.db.sqlite`);
- tables in the PostgreSQL database, the default there (`app.storage.db.postgres`);
- an S3-compatible bucket: AWS, MinIO, R2 (`app.storage.blobs.s3`).

What every store promises:

- `put_file` streams a file in and checks it against its digest; storing a
  digest that is present already is a no-op, so two workers storing the same
  image at once both succeed. Bytes are stored before the rows that name them
  are committed, so no row ever points at missing bytes.
- `iter_chunks` streams an image out a chunk at a time: no store holds a whole
  image in memory, on the way in or out.
- `discard` deletes what the caller has checked nobody references; `sweep`
  deletes unreferenced bytes older than a grace period (a writer may be between
  storing bytes and committing its rows).
- `check` asks the store whether it answers, for the readiness probe;
- `redirect_url` is the S3 store's alone: a presigned, expiring URL to send a
  browser to instead of streaming through the app, when the settings ask for it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

# Read and written a chunk at a time: large enough for few round trips, small
# enough that streaming a 20 MB image never holds more than this of it.
CHUNK_BYTES = 1024 * 1024
# Sweeps spare bytes younger than this: their rows may not be committed yet.
SWEEP_GRACE_SECONDS = 3600.0


class BlobNotFound(KeyError):
    """No bytes are stored under this digest."""


class DigestMismatch(ValueError):
    """The bytes do not hash to the digest they were to be stored under."""


class BlobStoreUnavailable(RuntimeError):
    """The store the settings name cannot be reached or used (said when it is opened)."""


class BlobStore(Protocol):
    """Content-addressed image bytes, with each image's thumbnail beside it."""

    def put_file(self, sha256: str, path: Path) -> None:
        """Store the file's bytes under `sha256`, streaming; no-op if present.

        Raises DigestMismatch, storing nothing, if the bytes hash to another digest.
        """

    def put_thumbnail(self, sha256: str, data: bytes) -> None:
        """Store the thumbnail of the image whose digest is `sha256`."""

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

    def discard(self, digests: Iterable[str]) -> int:
        """Delete these images and their thumbnails; returns how many images went."""

    def sweep(
        self, referenced: set[str], *, older_than_seconds: float = SWEEP_GRACE_SECONDS
    ) -> int:
        """Delete images (and thumbnails) not in `referenced` stored longer ago than the grace."""

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
