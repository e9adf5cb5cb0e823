"""`SQLiteBlobStore`, the default `BlobStore` (app.storage.blobs.protocol): image bytes in a file
of their
own beside the gallery's, `images.db`, with 64 KiB pages, read and written through
incremental blob I/O (docs: performance notes: large pages and `blobopen` make full-size
images several times faster than a plain `SELECT`, and keep memory flat), and each
image's thumbnail and preview beside it in the same file.
"""

from __future__ import annotations

import hashlib
import queue
import sqlite3
import time
import urllib.parse
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from app.storage.blobs.protocol import (
    CHUNK_BYTES,
    SWEEP_GRACE_SECONDS,
    BlobNotFound,
    BlobStoreUnavailable,
    DigestMismatch,
)
from app.storage.db.sqlite import BUSY_TIMEOUT_MS, backup_database, use_wal

if TYPE_CHECKING:
    import sqlalchemy as sa

    from app.storage.db.engine import Database

BLOB_PAGE_SIZE = 65_536


class SQLiteBlobStore:
    """Content-addressed image bytes in a SQLite file: one row per distinct sha256, written once.

    Bytes are committed before the job rows that point at them, in a separate
    transaction; storing the same content again is a no-op. A crash between the
    two leaves an unreferenced blob, never a job pointing at missing bytes, and
    `sweep` removes such orphans.

    Thumbnails sit in a table of their own beside the blobs, keyed by the image's
    digest: a 24 KB thumbnail fits in one 64 KiB page, so serving one is a single
    indexed read.

    Deleting (`discard`, `sweep`) happens on a connection to the gallery's file with
    this one attached, in `BEGIN IMMEDIATE` transactions: SQLite then holds the write
    lock of both files, the gallery's first, and each DELETE names only blobs that no
    image row names (`NOT EXISTS`) in the same statement. No image row can be committed
    meanwhile: every gallery write holds that same lock (app.storage.db.engine). A writer whose
    bytes were there when it stored them but went before its rows commit is caught by
    `keeps`, asked inside its write transaction: holding the gallery's lock, it sees
    whatever a deletion committed before, and no deletion can start until it commits.
    One connection and one statement, rather than a protocol of marks between two
    connections, because the lock SQLite takes for the attached gallery is the very
    lock its writers queue on: there is nothing of our own to get wrong, or to leave
    behind if a process dies. Only the store's file is written there, so the commit is
    atomic even though WAL does not make a commit across files atomic.
    """

    def __init__(self, path: Path, *, pool_size: int = 8) -> None:
        self.path = path
        self._pool: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        self._created = 0
        self._pool_size = pool_size
        self._create_schema()

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
        )
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        connection.execute("PRAGMA synchronous = FULL")
        return connection

    def _create_schema(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = self._connect()
        try:
            # Page size only takes effect before the first table exists.
            connection.execute(f"PRAGMA page_size = {BLOB_PAGE_SIZE}")
            use_wal(connection)
            connection.execute(
                "CREATE TABLE IF NOT EXISTS blobs ("
                " id INTEGER PRIMARY KEY,"
                " sha256 TEXT NOT NULL UNIQUE,"
                " byte_size INTEGER NOT NULL,"
                " created_at REAL NOT NULL,"
                " data BLOB NOT NULL)"
            )
            # The start-up sweep lists blobs by age; without this index it reads every
            # row, and a row carries its blob's first kilobytes: gigabytes for a big gallery.
            connection.execute(
                "CREATE INDEX IF NOT EXISTS ix_blobs_created_at ON blobs (created_at, sha256)"
            )
            # A store made before thumbnails moved here gains the table on its next start.
            connection.execute(
                "CREATE TABLE IF NOT EXISTS thumbnails ("
                " id INTEGER PRIMARY KEY,"
                " sha256 TEXT NOT NULL UNIQUE,"
                " created_at REAL NOT NULL,"
                " data BLOB NOT NULL)"
            )
            connection.execute(
                "CREATE INDEX IF NOT EXISTS ix_thumbnails_created_at"
                " ON thumbnails (created_at, sha256)"
            )
            # Previews came later still; a store gains the table the same way.
            connection.execute(
                "CREATE TABLE IF NOT EXISTS previews ("
                " id INTEGER PRIMARY KEY,"
                " sha256 TEXT NOT NULL UNIQUE,"
                " created_at REAL NOT NULL,"
                " data BLOB NOT NULL)"
            )
            connection.execute(
                "CREATE INDEX IF NOT EXISTS ix_previews_created_at ON previews (created_at, sha256)"
            )
        finally:
            connection.close()

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        try:
            connection = self._pool.get_nowait()
        except queue.Empty:
            connection = self._connect()
        try:
            yield connection
        finally:
            if self._pool.qsize() < self._pool_size:
                self._pool.put(connection)
            else:
                connection.close()

    def close(self) -> None:
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                return

    def check(self) -> None:
        try:
            with self._connection() as connection:
                connection.execute("SELECT 1 FROM blobs LIMIT 0").fetchall()
        except sqlite3.Error as exc:
            raise BlobStoreUnavailable(f"{self.describe()}: {exc}") from None

    def describe(self) -> str:
        return f"the SQLite file {self.path}"

    def put_file(self, sha256: str, path: Path) -> None:
        """Store the file's bytes under `sha256`, streaming in chunks; no-op if present."""
        size = path.stat().st_size
        with self._connection() as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                if connection.execute("SELECT 1 FROM blobs WHERE sha256 = ?", (sha256,)).fetchone():
                    connection.execute("COMMIT")
                    return
                cursor = connection.execute(
                    "INSERT INTO blobs (sha256, byte_size, created_at, data)"
                    " VALUES (?, ?, ?, zeroblob(?))",
                    (sha256, size, time.time(), size),
                )
                rowid = cursor.lastrowid
                assert rowid is not None
                digest = hashlib.sha256()
                with connection.blobopen("blobs", "data", rowid) as blob, path.open("rb") as source:
                    while chunk := source.read(CHUNK_BYTES):
                        digest.update(chunk)
                        blob.write(chunk)
                if digest.hexdigest() != sha256:
                    raise DigestMismatch(f"the bytes stored as {sha256[:12]}… hash otherwise")
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise

    def put_thumbnail(self, sha256: str, data: bytes) -> None:
        self._put_beside("thumbnails", sha256, data)

    def put_preview(self, sha256: str, data: bytes) -> None:
        self._put_beside("previews", sha256, data)

    def _put_beside(self, table: str, sha256: str, data: bytes) -> None:
        with self._connection() as connection:
            connection.execute(
                f"INSERT INTO {table} (sha256, created_at, data) VALUES (?, ?, ?)"
                " ON CONFLICT (sha256) DO NOTHING",
                (sha256, time.time(), data),
            )

    def contains(self, sha256: str) -> bool:
        with self._connection() as connection:
            row = connection.execute("SELECT 1 FROM blobs WHERE sha256 = ?", (sha256,)).fetchone()
        return row is not None

    def size(self, sha256: str) -> int:
        with self._connection() as connection:
            row = connection.execute(
                "SELECT byte_size FROM blobs WHERE sha256 = ?", (sha256,)
            ).fetchone()
        if row is None:
            raise BlobNotFound(sha256)
        return int(row[0])

    def iter_chunks(self, sha256: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
        """Yield the bytes in chunks, holding one connection and one chunk at a time."""
        with self._connection() as connection:
            row = connection.execute("SELECT id FROM blobs WHERE sha256 = ?", (sha256,)).fetchone()
            if row is None:
                raise BlobNotFound(sha256)
            with connection.blobopen("blobs", "data", row[0], readonly=True) as blob:
                while chunk := blob.read(chunk_bytes):
                    yield chunk

    def read(self, sha256: str) -> bytes:
        return b"".join(self.iter_chunks(sha256))

    def read_thumbnail(self, sha256: str) -> bytes | None:
        return self._read_beside("thumbnails", sha256)

    def read_preview(self, sha256: str) -> bytes | None:
        return self._read_beside("previews", sha256)

    def _read_beside(self, table: str, sha256: str) -> bytes | None:
        # A plain SELECT: below ~100 KB it beats incremental I/O (performance notes).
        with self._connection() as connection:
            row = connection.execute(
                f"SELECT data FROM {table} WHERE sha256 = ?", (sha256,)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def redirect_url(self, sha256: str, *, content_type: str, thumbnail: bool = False) -> None:
        return None

    def digests(self) -> set[str]:
        with self._connection() as connection:
            return {row[0] for row in connection.execute("SELECT sha256 FROM blobs")}

    def renew(self, sha256: str) -> bool:
        # Deletions here see the rows in the statement that deletes (see the class): the
        # bytes need no date of their own to be spared.
        return self.contains(sha256)

    def keeps(self, connection: sa.Connection, digests: Collection[str]) -> bool:
        """Whether all these images are stored, asked inside the gallery write transaction
        on `connection`: it holds the gallery's write lock, which deletions take too."""
        if not connection.in_transaction():
            raise ValueError("keeps is asked inside the transaction that writes the rows")
        wanted = list(dict.fromkeys(digests))
        found = 0
        with self._connection() as own:
            for batch in _batches(wanted):
                marks = ",".join("?" * len(batch))
                found += own.execute(
                    f"SELECT count(*) FROM blobs WHERE sha256 IN ({marks})", batch
                ).fetchone()[0]
        return found == len(wanted)

    def discard(self, digests: Iterable[str], *, gallery: Database) -> int:
        """Delete those of these blobs (and thumbnails, previews) no image row in `gallery`
        names."""
        removed = 0
        with self._beside(gallery) as connection:
            for batch in _batches(digests):
                removed += _delete_unused(connection, batch, older_than=None)
        return removed

    def sweep(self, *, gallery: Database, older_than_seconds: float = SWEEP_GRACE_SECONDS) -> int:
        """Delete blobs no image points at; recent ones are spared, a writer may be mid-commit.

        The candidates are read without a lock (a snapshot of both files); each batch is
        then deleted under the locks, looking at the rows again."""
        cutoff = time.time() - older_than_seconds
        with self._beside(gallery) as connection:
            candidates = [
                row[0] for row in connection.execute(SWEEP_CANDIDATES, (cutoff, cutoff, cutoff))
            ]
            return sum(
                _delete_unused(connection, batch, older_than=cutoff)
                for batch in _batches(candidates)
            )

    @contextmanager
    def _beside(self, gallery: Database) -> Iterator[sqlite3.Connection]:
        """A connection to the gallery's file with this store attached as `store` (see the
        class docstring for why); closed afterwards."""
        if gallery.dialect != "sqlite" or not gallery.url.database:
            raise ValueError("a SQLite blob store keeps the images of a SQLite gallery")
        connection = sqlite3.connect(
            _existing(Path(gallery.url.database)),
            uri=True,
            isolation_level=None,
            check_same_thread=False,
            timeout=BUSY_TIMEOUT_MS / 1000,
        )
        try:
            connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            connection.execute("ATTACH DATABASE ? AS store", (_existing(self.path),))
            connection.execute("PRAGMA store.synchronous = FULL")
            yield connection
        finally:
            connection.close()

    def backup_to(self, directory: Path) -> Path:
        copy = directory / self.path.name
        backup_database(self.path, copy)
        return copy


# Deleting in one statement with the check (`_delete_unused`): the gallery is `main`, the
# store `store`; the gallery has a `thumbnails` table of its own, so names are qualified.
def _unused(alias: str) -> str:
    return f"NOT EXISTS (SELECT 1 FROM main.images AS i WHERE i.sha256 = {alias}.sha256)"


SWEEP_CANDIDATES = (
    f"SELECT sha256 FROM store.blobs AS b WHERE created_at < ? AND {_unused('b')}"
    f" UNION SELECT sha256 FROM store.thumbnails AS t WHERE created_at < ? AND {_unused('t')}"
    f" UNION SELECT sha256 FROM store.previews AS p WHERE created_at < ? AND {_unused('p')}"
)
# Well under SQLite's limit on bound parameters, and a short hold of the write lock.
_BATCH = 500


def _delete_unused(
    connection: sqlite3.Connection, digests: Sequence[str], *, older_than: float | None
) -> int:
    """Delete those of these blobs, thumbnails and previews no image row names (and, with
    `older_than`, stored before it), in one transaction holding both files' write locks;
    returns how many blobs went."""
    marks = ",".join("?" * len(digests))
    age = "" if older_than is None else " AND created_at < ?"
    arguments = [*digests] + ([] if older_than is None else [older_than])
    connection.execute("BEGIN IMMEDIATE")
    try:
        gone = connection.execute(
            f"DELETE FROM store.blobs AS b WHERE sha256 IN ({marks}){age} AND {_unused('b')}",
            arguments,
        ).rowcount
        for table in ("thumbnails", "previews"):
            connection.execute(
                f"DELETE FROM store.{table} AS t WHERE sha256 IN ({marks}){age} AND {_unused('t')}",
                arguments,
            )
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return int(gone)


def _batches(digests: Iterable[str]) -> Iterator[list[str]]:
    unique = list(dict.fromkeys(digests))
    for start in range(0, len(unique), _BATCH):
        yield unique[start : start + _BATCH]


def _existing(path: Path) -> str:
    """A URI opening the database at `path` only if it exists: a gallery or store that is
    not there is an error, not an empty file in which nothing is referenced."""
    return f"file:{urllib.parse.quote(str(path.resolve()))}?mode=rw"
