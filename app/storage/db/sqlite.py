"""Everything that only SQLite needs, behind one seam.

The rest of the app speaks SQLAlchemy and would run on another database; here
live the parts that are SQLite's own:

- connection pragmas (WAL, `synchronous=FULL`, busy timeout, foreign keys) and
  write transactions begun as `BEGIN IMMEDIATE`, so a writer takes the lock up
  front instead of failing halfway with "database is locked";
- `SQLiteBlobStore`, the default `BlobStore` (app.storage.blobs.protocol): image bytes in a file
  of their own with 64 KiB pages, read and written through incremental blob I/O
  (docs: performance notes: large pages and `blobopen` make full-size images
  several times faster than a plain `SELECT`, and keep memory flat), and each
  image's thumbnail beside it in the same file;
- prompt search: an FTS5 index over `jobs.prompt` with rowid = job id (created
  by the gallery migration, kept in step by triggers). `app.features.gallery.listing` asks
  `matching_job_ids` for job ids newest first, a chunk at a time (PostgreSQL's
  counterpart, tokenized alike, is in app/storage/db/postgres.py);
- `watch_for_changes`: other processes' commits, seen through `PRAGMA data_version`
  (SQLite's stand-in for PostgreSQL's LISTEN/NOTIFY, for live pages and workers);
- `is_integer_overflow`: how the driver refuses a number past 64 bits (the web
  layer answers 404: no record can have it);
- `utc_datetime_from_text`: reading back the text SQLite keeps datetimes as.
"""

from __future__ import annotations

import hashlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from app.storage.blobs.protocol import (
    CHUNK_BYTES,
    SWEEP_GRACE_SECONDS,
    BlobNotFound,
    BlobStoreUnavailable,
    DigestMismatch,
)

BUSY_TIMEOUT_MS = 30_000
BLOB_PAGE_SIZE = 65_536


def is_integer_overflow(exc: BaseException) -> bool:
    """Whether `exc` is the sqlite3 driver refusing an int too large for an INTEGER."""
    return isinstance(exc, OverflowError) and "SQLite INTEGER" in str(exc)


def utc_datetime_from_text(
    fallback: Callable[[Any], datetime | None] | None,
) -> Callable[[str | None], datetime | None]:
    """A result processor for UTC datetimes stored as SQLite text (`YYYY-MM-DD HH:MM:SS.ffffff`,
    naive UTC as `app.storage.db.tables.UTCDateTime` writes them), handing back aware UTC.

    A listing reads several datetimes a row; parsing with the C `fromisoformat`, the
    time zone in the same step, costs a fraction of a regex parse and a `replace`.
    Text in another shape goes to `fallback` (SQLAlchemy's own parser)."""

    def parse(value: str | None) -> datetime | None:
        if value is None:
            return None
        try:
            return datetime.fromisoformat(value + "+00:00")
        except (TypeError, ValueError):
            parsed = fallback(value) if fallback is not None else value
            if isinstance(parsed, datetime):
                return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed
            raise

    return parse


def configure_engine(engine: sa.Engine, *, writer: bool, transactions: bool = True) -> None:
    """Pragmas on every new connection; explicit BEGIN (IMMEDIATE for the writer), unless
    `transactions` is off (an AUTOCOMMIT engine: each statement on its own)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below open transactions, not pysqlite.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        # FULL: a committed job survives a power cut, not only a crash.
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    if not transactions:
        return
    begin = "BEGIN IMMEDIATE" if writer else "BEGIN"

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql(begin)


# How often another process's commits are looked for (`watch_for_changes`).
CHANGE_POLL_SECONDS = 0.2


def watch_for_changes(path: Path, on_change: Callable[[], None], stop: threading.Event) -> None:
    """Call `on_change` whenever another connection, in any process, commits to the database
    at `path`, until `stop` is set. SQLite has no notifications; `PRAGMA data_version` is
    its change counter, read from the connection's shared memory without touching the
    file, so looking five times a second costs nothing."""
    connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        last = connection.execute("PRAGMA data_version").fetchone()[0]
        while not stop.wait(CHANGE_POLL_SECONDS):
            try:
                current = connection.execute("PRAGMA data_version").fetchone()[0]
            except sqlite3.OperationalError:
                continue  # busy for a moment: look again next time
            if current != last:
                last = current
                on_change()
    finally:
        connection.close()


def is_sqlite(engine: sa.Engine) -> bool:
    return engine.dialect.name == "sqlite"


# --- Prompt search (FTS5) -------------------------------------------------------------

PROMPT_INDEX = "jobs_fts"


def is_search_index_table(name: str | None) -> bool:
    """The FTS table and its shadow tables: made by migration, invisible to the models."""
    return bool(name) and (name == PROMPT_INDEX or str(name).startswith(PROMPT_INDEX + "_"))


def fts_match_expression(terms: Sequence[tuple[str, bool]]) -> str | None:
    """An FTS5 query for (text, is_phrase) terms, all of which must match.

    Every term is quoted, so nothing the user types is FTS syntax; bare words
    match as prefixes ("light" finds "lighthouse"), quoted phrases exactly.
    """
    parts = []
    for text, is_phrase in terms:
        quoted = '"' + text.replace('"', '""') + '"'
        parts.append(quoted if is_phrase else quoted + "*")
    return " AND ".join(parts) or None


def matching_job_ids(
    connection: sa.Connection, match: str, *, at_most: int | None, limit: int
) -> list[int]:
    """Ids of jobs whose prompt matches, newest first, at most `at_most`.

    FTS5 walks its index in rowid order and stops at the limit, so a chunk costs
    the same however many prompts match; the caller asks for the next chunk
    below the last id it got. Prefix terms walk the same way thanks to the
    index's prefix indexes (migration 0014), up to 10 characters; a longer word
    typed as a prefix is answered by gathering the entries of the words it
    begins, fewer the longer it is.
    """
    # Plain SQL on the driver: this runs on every search, and SQLAlchemy's handling of a
    # text statement (parsing its parameters, describing its result) cost more than FTS5.
    if at_most is None:
        rows = connection.exec_driver_sql(_MATCHING, (match, limit))
    else:
        rows = connection.exec_driver_sql(_MATCHING_BELOW, (match, at_most, limit))
    return [row[0] for row in rows.fetchall()]


# Each write of a job adds a small segment to the prompt index, and FTS5 merges them four
# at a time; a search then seeks in every segment, and seeking a few hundred thousand jobs
# down takes a millisecond per big segment instead of a tenth. A little merging now and
# then (bounded work, a short write) keeps them few; the migration that built the index
# left it in one piece ("optimize").
TIDY_PAGES = 256


def tidy_search_index(connection: sa.Connection) -> None:
    """Merge some of the prompt index's segments: at most `TIDY_PAGES` pages of work."""
    connection.exec_driver_sql(
        f"INSERT INTO {PROMPT_INDEX} ({PROMPT_INDEX}, rank) VALUES ('merge', ?)", (TIDY_PAGES,)
    )


def optimize_search_index(connection: sa.Connection) -> None:
    """Merge the prompt index into one segment: seconds per hundred thousand jobs."""
    connection.exec_driver_sql(f"INSERT INTO {PROMPT_INDEX} ({PROMPT_INDEX}) VALUES ('optimize')")


def matching_job_ids_select() -> sa.Select[Any]:
    """`matching_job_ids` as a subquery, for a query to take the first chunk in the same
    statement: parameters `match`, `at_most` and `chunk` (its limit)."""
    index = sa.table(PROMPT_INDEX, sa.column("rowid"))
    rowid = index.c.rowid
    return (
        sa.select(rowid)
        .where(
            sa.literal_column(PROMPT_INDEX).op("MATCH")(sa.bindparam("match")),
            rowid <= sa.bindparam("at_most"),
        )
        .order_by(rowid.desc())
        .limit(sa.bindparam("chunk"))
    )


_MATCHING = (
    f"SELECT rowid FROM {PROMPT_INDEX} WHERE {PROMPT_INDEX} MATCH ? ORDER BY rowid DESC LIMIT ?"
)
_MATCHING_BELOW = (
    f"SELECT rowid FROM {PROMPT_INDEX} WHERE {PROMPT_INDEX} MATCH ? AND rowid <= ?"
    " ORDER BY rowid DESC LIMIT ?"
)


class SQLiteBlobStore:
    """Content-addressed image bytes in a SQLite file: one row per distinct sha256, written once.

    Bytes are committed before the job rows that point at them, in a separate
    transaction; storing the same content again is a no-op. A crash between the
    two leaves an unreferenced blob, never a job pointing at missing bytes, and
    `sweep` removes such orphans.

    Thumbnails sit in a table of their own beside the blobs, keyed by the image's
    digest: a 24 KB thumbnail fits in one 64 KiB page, so serving one is a single
    indexed read.
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
            connection.execute("PRAGMA journal_mode = WAL")
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

    def describe(self) -> str:
        return f"the SQLite file {self.path}"

    def check(self) -> None:
        try:
            with self._connection() as connection:
                connection.execute("SELECT 1 FROM blobs LIMIT 0").fetchall()
        except sqlite3.Error as exc:
            raise BlobStoreUnavailable(f"{self.describe()}: {exc}") from None

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
        with self._connection() as connection:
            connection.execute(
                "INSERT INTO thumbnails (sha256, created_at, data) VALUES (?, ?, ?)"
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
        # A plain SELECT: below ~100 KB it beats incremental I/O (performance notes).
        with self._connection() as connection:
            row = connection.execute(
                "SELECT data FROM thumbnails WHERE sha256 = ?", (sha256,)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def redirect_url(self, sha256: str, *, content_type: str, thumbnail: bool = False) -> None:
        return None

    def digests(self) -> set[str]:
        with self._connection() as connection:
            return {row[0] for row in connection.execute("SELECT sha256 FROM blobs")}

    def discard(self, digests: Iterable[str]) -> int:
        """Delete these blobs; the caller has checked that no image points at them."""
        removed = 0
        with self._connection() as connection:
            for sha in digests:
                removed += connection.execute("DELETE FROM blobs WHERE sha256 = ?", (sha,)).rowcount
                connection.execute("DELETE FROM thumbnails WHERE sha256 = ?", (sha,))
        return removed

    def sweep(
        self, referenced: set[str], *, older_than_seconds: float = SWEEP_GRACE_SECONDS
    ) -> int:
        """Delete blobs no image points at; recent ones are spared, a writer may be mid-commit."""
        cutoff = time.time() - older_than_seconds
        with self._connection() as connection:
            candidates = [
                sha
                for (sha,) in connection.execute(
                    "SELECT sha256 FROM blobs WHERE created_at < ?", (cutoff,)
                )
                if sha not in referenced
            ]
            for sha in candidates:
                connection.execute("DELETE FROM blobs WHERE sha256 = ?", (sha,))
            # Thumbnails whose image went (or never came: a crash between the two writes).
            orphans = [
                sha
                for (sha,) in connection.execute(
                    "SELECT sha256 FROM thumbnails WHERE created_at < ?", (cutoff,)
                )
                if sha not in referenced
            ]
            for sha in orphans:
                connection.execute("DELETE FROM thumbnails WHERE sha256 = ?", (sha,))
        return len(candidates)

    def backup_to(self, directory: Path) -> Path:
        copy = directory / self.path.name
        backup_database(self.path, copy)
        return copy


def backup_database(source: Path, destination: Path) -> None:
    """Copy a live database with SQLite's backup API.

    One step, so the copy reads a single snapshot: in WAL mode that holds no lock
    writers wait for, and the copy is consistent however busy the app is.
    """
    with (
        closing(sqlite3.connect(source, timeout=BUSY_TIMEOUT_MS / 1000)) as live,
        closing(sqlite3.connect(destination)) as copy,
    ):
        live.backup(copy)
        # A standalone file: no -wal beside it to carry around.
        copy.execute("PRAGMA journal_mode = DELETE")


def image_digests_in(database: Path) -> set[str]:
    """The sha256 of every image a (copied) main database refers to."""
    with closing(sqlite3.connect(database)) as connection:
        return {row[0] for row in connection.execute("SELECT sha256 FROM images")}


def blob_digests_in(store: Path) -> set[str]:
    with closing(sqlite3.connect(store)) as connection:
        return {row[0] for row in connection.execute("SELECT sha256 FROM blobs")}
