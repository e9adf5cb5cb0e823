"""`PostgresBlobStore`, the `BlobStore` (app.blobs) of a gallery whose database is
PostgreSQL: image bytes as `bytea` rows of at most 1 MiB in the same database, so one
backup of the database holds the rows and the bytes they name. Its tables are made by
migration 0010 on PostgreSQL only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from app.blobs import (
    CHUNK_BYTES,
    SWEEP_GRACE_SECONDS,
    BlobNotFound,
    DigestMismatch,
    split_chunks,
)
from app.postgres import engine_url

# The tables migration 0010 makes; the models do not describe them (they are the store's).
_blob_metadata = sa.MetaData()
BLOBS = sa.Table(
    "blobs",
    _blob_metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("byte_size", sa.BigInteger, nullable=False),
    sa.Column("chunk_count", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
BLOB_CHUNKS = sa.Table(
    "blob_chunks",
    _blob_metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
)
BLOB_THUMBNAILS = sa.Table(
    "blob_thumbnails",
    _blob_metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
)
BLOB_STORE_TABLES = frozenset(table.name for table in _blob_metadata.sorted_tables)
# Advisory locks of the blob store: (this class, a hash of the digest). Two-key locks
# never collide with single-key ones, whatever else takes advisory locks.
_LOCK_CLASS = 0x626C6F62  # "blob"
# Stay well under the driver's limit on bound parameters.
_BATCH = 500


def is_blob_store_table(name: str | None) -> bool:
    return name in BLOB_STORE_TABLES


class PostgresBlobStore:
    """Content-addressed image bytes in PostgreSQL, in chunks, streamed both ways.

    A blob is a row in `blobs` and its bytes `chunk_count` rows of `blob_chunks`,
    written in one transaction (the header first, then each chunk as it is read
    from the file), so readers see all of it or none. Reading fetches one chunk
    per query on a connection borrowed for that query alone: a slow client holds
    no connection and no transaction, and memory holds one chunk. Chunks are
    stored uncompressed (STORAGE EXTERNAL): image formats are compressed already.
    """

    def __init__(self, url: str | sa.URL, *, pool_size: int = 4) -> None:
        self._url = make_url(engine_url(url))
        self._engine = sa.create_engine(self._url, pool_size=pool_size, max_overflow=pool_size)

    def describe(self) -> str:
        return f"PostgreSQL ({self._url.render_as_string(hide_password=True)})"

    def close(self) -> None:
        self._engine.dispose()

    def put_file(self, sha256: str, path: Path) -> None:
        with self._engine.begin() as connection:
            # Two workers storing the same image queue here; the second finds it stored.
            connection.execute(
                sa.select(sa.func.pg_advisory_xact_lock(_LOCK_CLASS, sa.func.hashtext(sha256)))
            )
            if _present(connection, sha256):
                return
            connection.execute(
                sa.insert(BLOBS).values(
                    sha256=sha256, byte_size=0, chunk_count=0, created_at=sa.func.now()
                )
            )
            digest = hashlib.sha256()
            count = size = 0
            with path.open("rb") as source:
                while chunk := source.read(CHUNK_BYTES):
                    digest.update(chunk)
                    connection.execute(
                        sa.insert(BLOB_CHUNKS).values(sha256=sha256, seq=count, data=chunk)
                    )
                    count += 1
                    size += len(chunk)
            if digest.hexdigest() != sha256:
                # Leaving the block rolls the header and the chunks back.
                raise DigestMismatch(f"the bytes stored as {sha256[:12]}… hash otherwise")
            connection.execute(
                sa.update(BLOBS)
                .where(BLOBS.c.sha256 == sha256)
                .values(byte_size=size, chunk_count=count)
            )

    def put_thumbnail(self, sha256: str, data: bytes) -> None:
        from sqlalchemy.dialects.postgresql import insert

        with self._engine.begin() as connection:
            connection.execute(
                insert(BLOB_THUMBNAILS)
                .values(sha256=sha256, data=data, created_at=sa.func.now())
                .on_conflict_do_nothing(index_elements=["sha256"])
            )

    def contains(self, sha256: str) -> bool:
        with self._engine.connect() as connection:
            return _present(connection, sha256)

    def size(self, sha256: str) -> int:
        with self._engine.connect() as connection:
            size = connection.execute(
                sa.select(BLOBS.c.byte_size).where(BLOBS.c.sha256 == sha256)
            ).scalar_one_or_none()
        if size is None:
            raise BlobNotFound(sha256)
        return int(size)

    def iter_chunks(self, sha256: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
        with self._engine.connect() as connection:
            count = connection.execute(
                sa.select(BLOBS.c.chunk_count).where(BLOBS.c.sha256 == sha256)
            ).scalar_one_or_none()
        if count is None:
            raise BlobNotFound(sha256)
        query = sa.select(BLOB_CHUNKS.c.data).where(
            BLOB_CHUNKS.c.sha256 == sha256, BLOB_CHUNKS.c.seq == sa.bindparam("seq")
        )
        for seq in range(count):
            with self._engine.connect() as connection:
                chunk = connection.execute(query, {"seq": seq}).scalar_one_or_none()
            if chunk is None:  # discarded while it was being read
                raise BlobNotFound(sha256)
            yield from split_chunks([bytes(chunk)], chunk_bytes)

    def read_thumbnail(self, sha256: str) -> bytes | None:
        with self._engine.connect() as connection:
            data = connection.execute(
                sa.select(BLOB_THUMBNAILS.c.data).where(BLOB_THUMBNAILS.c.sha256 == sha256)
            ).scalar_one_or_none()
        return None if data is None else bytes(data)

    def redirect_url(self, sha256: str, *, content_type: str, thumbnail: bool = False) -> None:
        return None

    def discard(self, digests: Iterable[str]) -> int:
        removed = 0
        with self._engine.begin() as connection:
            for batch in _batches(digests):
                removed += _delete(connection, batch)
        return removed

    def sweep(
        self, referenced: set[str], *, older_than_seconds: float = SWEEP_GRACE_SECONDS
    ) -> int:
        cutoff = sa.func.now() - sa.func.make_interval(0, 0, 0, 0, 0, 0, older_than_seconds)
        with self._engine.connect() as connection:
            candidates = [
                sha
                for sha in connection.execute(
                    sa.select(BLOBS.c.sha256).where(BLOBS.c.created_at < cutoff)
                ).scalars()
                if sha not in referenced
            ]
            # Thumbnails whose image went (or never came: a crash between the two writes).
            orphans = [
                sha
                for sha in connection.execute(
                    sa.select(BLOB_THUMBNAILS.c.sha256).where(BLOB_THUMBNAILS.c.created_at < cutoff)
                ).scalars()
                if sha not in referenced
            ]
        removed = 0
        with self._engine.begin() as connection:
            for batch in _batches(candidates):
                removed += _delete(connection, batch)
            for batch in _batches(orphans):
                connection.execute(
                    sa.delete(BLOB_THUMBNAILS).where(BLOB_THUMBNAILS.c.sha256.in_(batch))
                )
        return removed

    def backup_to(self, directory: Path) -> None:
        # The bytes are tables of the gallery's own database: its dump holds them.
        return None


def _present(connection: sa.Connection, sha256: str) -> bool:
    found = connection.execute(sa.select(sa.literal(1)).where(BLOBS.c.sha256 == sha256)).first()
    return found is not None


def _delete(connection: sa.Connection, digests: Sequence[str]) -> int:
    connection.execute(sa.delete(BLOB_CHUNKS).where(BLOB_CHUNKS.c.sha256.in_(digests)))
    connection.execute(sa.delete(BLOB_THUMBNAILS).where(BLOB_THUMBNAILS.c.sha256.in_(digests)))
    result = connection.execute(sa.delete(BLOBS).where(BLOBS.c.sha256.in_(digests)))
    return int(result.rowcount)


def _batches(digests: Iterable[str]) -> Iterator[list[str]]:
    unique = list(dict.fromkeys(digests))
    for start in range(0, len(unique), _BATCH):
        yield unique[start : start + _BATCH]
