"""`PostgresBlobStore`, the `BlobStore` (app.storage.blobs.protocol) of a gallery whose database is
PostgreSQL: image bytes as `bytea` rows of at most 1 MiB in the same database, so one
backup of the database holds the rows and the bytes they name. Its tables are made by
migrations 0010 and 0017 on PostgreSQL only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from app.core.database_url import engine_url
from app.storage.blobs.protocol import (
    CHUNK_BYTES,
    SWEEP_GRACE_SECONDS,
    BlobNotFound,
    BlobStoreUnavailable,
    DigestMismatch,
    split_chunks,
)
from app.storage.db import postgres
from app.storage.db.blob_tables import BLOB_CHUNKS, BLOB_PREVIEWS, BLOB_THUMBNAILS, BLOBS

if TYPE_CHECKING:
    from app.storage.db.engine import Database

# The gallery's table whose rows name the bytes: deletions look at it in their statement.
_IMAGES = sa.table("images", sa.column("sha256", sa.String))
# Advisory locks of the blob store: (this class, a hash of the digest). Two-key locks
# never collide with single-key ones, whatever else takes advisory locks.
_LOCK_CLASS = 0x626C6F62  # "blob"
# (this class, 0): taken shared by every deletion, and alone by a writer naming more images
# than a lock each would fit in the server's lock table (an import).
_DELETIONS_CLASS = 0x626C6F63
_MANY_DIGESTS = 64
# Stay well under the driver's limit on bound parameters.
_BATCH = 500
# A deletion holds a lock per digest until it commits: a short transaction each.
_DELETE_BATCH = 100
# What serving reads, in the driver's own placeholders (`_read_one`).
_CHUNK_COUNT_QUERY = f"SELECT chunk_count FROM {BLOBS.name} WHERE sha256 = %s"
_CHUNK_QUERY = f"SELECT data FROM {BLOB_CHUNKS.name} WHERE sha256 = %s AND seq = %s"


class PostgresBlobStore:
    """Content-addressed image bytes in PostgreSQL, in chunks, streamed both ways.

    A blob is a row in `blobs` and its bytes `chunk_count` rows of `blob_chunks`,
    written in one transaction (the header first, then each chunk as it is read
    from the file), so readers see all of it or none. Reading fetches one chunk
    per query on a connection borrowed for that query alone: a slow client holds
    no connection and no transaction, and memory holds one chunk. Chunks are
    stored uncompressed (STORAGE EXTERNAL): image formats are compressed already.

    The tables are the gallery database's own, so a deletion (`discard`, `sweep`) is a
    transaction of the gallery's whose DELETE names only blobs no image row names, in
    the same statement. A writer that stored bytes (a no-op: they were there) commits
    rows naming them only after `keeps` says they are still there; the deletion and
    that question exclude each other through advisory locks per digest, held until
    each transaction ends: whichever comes second sees what the first committed (at
    READ COMMITTED each statement reads what was committed before it began, and the
    locks are taken before). A writer naming many images at once takes one lock that
    excludes every deletion instead.
    """

    def __init__(self, url: str | sa.URL, *, pool_size: int = 4) -> None:
        self._url = make_url(engine_url(url))
        self._engine = sa.create_engine(self._url, pool_size=pool_size, max_overflow=pool_size)
        # Checked before use, as the database's own pools are: a server restart otherwise
        # fails the first read of each pooled connection.
        postgres.configure_engine(self._engine)

    def describe(self) -> str:
        return f"PostgreSQL ({self._url.render_as_string(hide_password=True)})"

    def check(self) -> None:
        try:
            with self._engine.connect() as connection:
                connection.execute(sa.select(BLOBS.c.sha256).limit(0)).all()
        except sa.exc.SQLAlchemyError as exc:
            # The class alone: a driver's message may quote the connection string.
            raise BlobStoreUnavailable(
                f"{self.describe()} does not answer ({exc.__class__.__name__})"
            ) from None

    def close(self) -> None:
        self._engine.dispose()

    def put_file(self, sha256: str, path: Path) -> None:
        with self._engine.begin() as connection:
            # Two workers storing the same image queue here; the second finds it stored.
            _lock_each(connection, [sha256], shared=False)
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
        self._put_beside(BLOB_THUMBNAILS, sha256, data)

    def put_preview(self, sha256: str, data: bytes) -> None:
        self._put_beside(BLOB_PREVIEWS, sha256, data)

    def _put_beside(self, table: sa.Table, sha256: str, data: bytes) -> None:
        from sqlalchemy.dialects.postgresql import insert

        with self._engine.begin() as connection:
            connection.execute(
                insert(table)
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
        count = self._read_one(_CHUNK_COUNT_QUERY, (sha256,))
        if count is None:
            raise BlobNotFound(sha256)
        for seq in range(count):
            chunk = self._read_one(_CHUNK_QUERY, (sha256, seq))
            if chunk is None:  # discarded while it was being read
                raise BlobNotFound(sha256)
            yield from split_chunks([bytes(chunk)], chunk_bytes)

    def read_thumbnail(self, sha256: str) -> bytes | None:
        return self._read_beside(BLOB_THUMBNAILS, sha256)

    def read_preview(self, sha256: str) -> bytes | None:
        return self._read_beside(BLOB_PREVIEWS, sha256)

    def _read_beside(self, table: sa.Table, sha256: str) -> bytes | None:
        data = self._read_one(f"SELECT data FROM {table.name} WHERE sha256 = %s", (sha256,))
        return None if data is None else bytes(data)

    def _read_one(self, query: str, parameters: tuple[str | int, ...]) -> Any:
        """The first column of the row `query` selects, or None, in binary format.

        In text format (the driver's default, all SQLAlchemy asks for) the server
        hex-encodes a `bytea` and the driver decodes it: twice the bytes on the wire and
        two passes over them, which made a 2K image come out at a third of the speed."""
        with self._engine.connect() as connection:
            driver = connection.connection.driver_connection
            assert isinstance(driver, psycopg.Connection)
            row = driver.execute(query, parameters, binary=True).fetchone()
        return None if row is None else row[0]

    def redirect_url(self, sha256: str, *, content_type: str, thumbnail: bool = False) -> None:
        return None

    def renew(self, sha256: str) -> bool:
        # Deletions look at the rows in the statement that deletes (see the class): the
        # bytes need no date of their own to be spared.
        return self.contains(sha256)

    def keeps(self, connection: sa.Connection, digests: Collection[str]) -> bool:
        """Whether all these images are stored, asked inside the gallery write transaction
        on `connection` (the same database): its locks keep deletions off them until it
        ends."""
        wanted = list(dict.fromkeys(digests))
        if len(wanted) > _MANY_DIGESTS:
            connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_DELETIONS_CLASS, 0)))
        else:
            _lock_each(connection, wanted, shared=True)
        found = 0
        for batch in _batches(wanted, _BATCH):
            found += connection.execute(
                sa.select(sa.func.count()).where(BLOBS.c.sha256.in_(batch))
            ).scalar_one()
        return found == len(wanted)

    def discard(self, digests: Iterable[str], *, gallery: Database) -> int:
        removed = 0
        for batch in _batches(digests, _DELETE_BATCH):
            with gallery.write() as session:
                removed += _delete_unused(session.connection(), batch, cutoff=None)
        return removed

    def sweep(self, *, gallery: Database, older_than_seconds: float = SWEEP_GRACE_SECONDS) -> int:
        cutoff = sa.func.now() - sa.func.make_interval(0, 0, 0, 0, 0, 0, older_than_seconds)
        # Read without locks; each batch is then deleted looking at the rows again.
        with gallery.read() as session:
            candidates = list(
                session.execute(
                    sa.union(
                        sa.select(BLOBS.c.sha256).where(
                            BLOBS.c.created_at < cutoff, _unused(BLOBS)
                        ),
                        # Thumbnails and previews whose image went (or never came: a crash
                        # between the two writes).
                        *(
                            sa.select(table.c.sha256).where(
                                table.c.created_at < cutoff, _unused(table)
                            )
                            for table in (BLOB_THUMBNAILS, BLOB_PREVIEWS)
                        ),
                    )
                ).scalars()
            )
        removed = 0
        for batch in _batches(candidates, _DELETE_BATCH):
            with gallery.write() as session:
                removed += _delete_unused(session.connection(), batch, cutoff=cutoff)
        return removed

    def backup_to(self, directory: Path) -> None:
        # The bytes are tables of the gallery's own database: its dump holds them.
        return None


def _present(connection: sa.Connection, sha256: str) -> bool:
    found = connection.execute(sa.select(sa.literal(1)).where(BLOBS.c.sha256 == sha256)).first()
    return found is not None


def _unused(table: sa.Table) -> sa.ColumnElement[bool]:
    return ~sa.exists().where(_IMAGES.c.sha256 == table.c.sha256)


def _delete_unused(
    connection: sa.Connection, digests: Sequence[str], *, cutoff: sa.ColumnElement[Any] | None
) -> int:
    """Delete those of these blobs, thumbnails and previews no image row names (and, with `cutoff`,
    stored before it); returns how many blobs went. The caller commits."""
    connection.execute(sa.select(sa.func.pg_advisory_xact_lock_shared(_DELETIONS_CLASS, 0)))
    _lock_each(connection, digests, shared=False)
    blobs = [BLOBS.c.sha256.in_(digests), _unused(BLOBS)]
    if cutoff is not None:
        blobs.append(BLOBS.c.created_at < cutoff)
    gone = list(
        connection.execute(sa.delete(BLOBS).where(*blobs).returning(BLOBS.c.sha256)).scalars()
    )
    if gone:
        connection.execute(sa.delete(BLOB_CHUNKS).where(BLOB_CHUNKS.c.sha256.in_(gone)))
    for table in (BLOB_THUMBNAILS, BLOB_PREVIEWS):
        beside = [table.c.sha256.in_(digests), _unused(table)]
        if cutoff is not None:
            beside.append(table.c.created_at < cutoff)
        connection.execute(sa.delete(table).where(*beside))
    return len(gone)


def _lock_each(connection: sa.Connection, digests: Iterable[str], *, shared: bool) -> None:
    """Take the advisory lock of each digest until the transaction ends, in one order
    everywhere (so two transactions taking several never wait for each other in a ring)."""
    keys = sorted({_lock_key(sha) for sha in digests})
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    # unnest hands the keys on in the array's order, and each is locked as it comes.
    connection.execute(
        sa.text(
            f"SELECT {function}(:lock_class, key) FROM unnest(CAST(:keys AS integer[])) AS key"
        ),
        {"lock_class": _LOCK_CLASS, "keys": keys},
    )


def _lock_key(sha256: str) -> int:
    """A digest's lock key: 32 bits of a hash of it, as the server's int4 takes them."""
    return int.from_bytes(hashlib.blake2b(sha256.encode(), digest_size=4).digest(), signed=True)


def _batches(digests: Iterable[str], size: int) -> Iterator[list[str]]:
    unique = list(dict.fromkeys(digests))
    for start in range(0, len(unique), size):
        yield unique[start : start + size]
