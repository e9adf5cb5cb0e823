"""Everything that only PostgreSQL needs, behind one seam (app/storage/db/sqlite.py is SQLite's).

The rest of the app speaks SQLAlchemy and runs on either database; here live the
parts that are PostgreSQL's own:

- `engine_url`: the URL people write (`postgresql://…`) with the driver we ship,
  psycopg 3, named for SQLAlchemy;
- engine options: ordinary connection pools (no single writer: the server takes row
  locks, so writers in every process run side by side), checked before use;
- `lock_for_migrations`: a transaction-level advisory lock, so processes starting
  together run the migrations once, one after the other;
- prompt search: a `tsvector` column generated from `jobs.prompt` with a GIN index
  over it (created by the gallery migration). Its tokens are FTS5's `unicode61
  remove_diacritics 2` tokens (letters and digits; lower case; accents taken off
  Latin letters), so a search finds on PostgreSQL what it finds on SQLite: bare words
  match as prefixes, "quoted phrases" exactly. `prompt_term_matches` is the condition;
- job changes: a trigger NOTIFYs `JOB_CHANGES_CHANNEL` when a job is created or changes
  in a way a page shows, and `listen_for_job_changes` hears it in every process: a page
  served by one web process sees a job finished by a worker elsewhere at once;
- `advance_id_sequences`: ids written explicitly (an import) do not move a sequence;
- `is_integer_overflow`: how the server refuses a number too large for its column;
- `CredentialNotices`: LISTEN/NOTIFY on one channel, so a change to sessions, tokens or
  people made by one process empties every process's cache of them
  (app/features/people/credentials.py);
- `PostgresBlobStore`, the `BlobStore` (app.storage.blobs.protocol) of a gallery whose database is
  PostgreSQL: image bytes as `bytea` rows of at most 1 MiB in the same database,
  so one backup of the database holds the rows and the bytes they name. Its
  tables are made by migration 0010 on PostgreSQL only.

Text search needs a UTF-8 database (the migration says so otherwise) and uses the ICU
collation `und-x-icu` for Unicode case and letters where the server has it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from app.storage.blobs.protocol import (
    CHUNK_BYTES,
    SWEEP_GRACE_SECONDS,
    BlobNotFound,
    BlobStoreUnavailable,
    DigestMismatch,
    split_chunks,
)

log = logging.getLogger(__name__)

POSTGRES_SCHEMES = ("postgresql", "postgres")
DRIVER = "psycopg"


def is_postgres_url(url: str | sa.URL) -> bool:
    return make_url(url).get_backend_name() in POSTGRES_SCHEMES


def engine_url(url: str | sa.URL) -> str:
    """`postgresql://…` (or `postgres://…`) as SQLAlchemy's name for it with psycopg 3."""
    parsed = make_url(url)
    if parsed.get_backend_name() not in POSTGRES_SCHEMES:
        raise ValueError("not a PostgreSQL URL")
    return parsed.set(drivername=f"postgresql+{DRIVER}").render_as_string(hide_password=False)


# Pools per process and engine. The server's connection limit (100 by default) is
# shared by every web process and worker, so each keeps its pools small.
READ_POOL = {"pool_size": 5, "max_overflow": 5}
WRITE_POOL = {"pool_size": 3, "max_overflow": 2}
APPLICATION_NAME = "seedream-playground"

# Any constant will do, as long as it is the same in every process of this app.
MIGRATION_LOCK_KEY = 0x5EED_DEA3_0000_0001

# SQLSTATE 22003, numeric_value_out_of_range: "integer out of range", "bigint out of range".
NUMERIC_VALUE_OUT_OF_RANGE = "22003"

# The search column and its index (made by the gallery migration, invisible to the models).
PROMPT_SEARCH_COLUMN = "prompt_search"
PROMPT_SEARCH_INDEX = "ix_jobs_prompt_search"


def engine_options(*, writer: bool) -> dict[str, Any]:
    return {
        **(WRITE_POOL if writer else READ_POOL),
        # A server restart or a proxy's idle timeout leaves dead connections in the pool.
        "pool_pre_ping": True,
        "connect_args": {"application_name": APPLICATION_NAME},
    }


def lock_for_migrations(connection: sa.Connection) -> None:
    """Wait for any other process migrating this database; released when the transaction ends.

    The second process then finds the schema at the newest revision and has nothing to do.
    """
    connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})


def advance_id_sequences(connection: sa.Connection, tables: Sequence[sa.Table]) -> None:
    """Move each table's id sequence past its largest id: rows written with explicit ids
    (an import keeping them) do not move it, and the next new row would take a used id."""
    for table in tables:
        connection.execute(
            sa.text(
                "SELECT setval(pg_get_serial_sequence(:table, 'id'),"
                f" COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)"
            ),
            {"table": table.name},
        )


# --- Job changes, heard by every process ------------------------------------------------

# A trigger (migration 0013) sends the job's id on this channel when a job is created or
# its status, error or cost changes: what a page shows and what a worker must pick up;
# since migration 0015 also when PixelDojo calls back about it (a worker must poll it now).
JOB_CHANGES_CHANNEL = "playground_job_changes"
_TRIGGER_FUNCTION = "playground_job_changed"
# Each migration that changes the trigger names its own columns: an old migration must
# keep creating the trigger it created then, over the columns that existed then.
JOB_CHANGE_COLUMNS_0013 = ("status", "error", "credit_cost")


def job_change_trigger_ddl(columns: Sequence[str]) -> list[str]:
    notify = f"""
        CREATE OR REPLACE FUNCTION {_TRIGGER_FUNCTION}() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{JOB_CHANGES_CHANNEL}', NEW.id::text);
            RETURN NULL;
        END $$
    """
    # Row triggers with a WHEN clause: the poller's bookkeeping (leases, heartbeats, poll
    # counts) notifies nobody; NOTIFY folds repeats of one payload within a transaction.
    return [
        notify,
        f"CREATE TRIGGER jobs_notify_insert AFTER INSERT ON jobs "
        f"FOR EACH ROW EXECUTE FUNCTION {_TRIGGER_FUNCTION}()",
        job_update_trigger_ddl(columns),
    ]


def job_update_trigger_ddl(columns: Sequence[str]) -> str:
    changed = " OR ".join(f"OLD.{name} IS DISTINCT FROM NEW.{name}" for name in columns)
    return (
        f"CREATE TRIGGER jobs_notify_update AFTER UPDATE ON jobs FOR EACH ROW WHEN ({changed}) "
        f"EXECUTE FUNCTION {_TRIGGER_FUNCTION}()"
    )


def drop_job_change_trigger_ddl() -> list[str]:
    return [
        "DROP TRIGGER IF EXISTS jobs_notify_update ON jobs",
        "DROP TRIGGER IF EXISTS jobs_notify_insert ON jobs",
        f"DROP FUNCTION IF EXISTS {_TRIGGER_FUNCTION}()",
    ]


def listen_for_job_changes(
    url: str | sa.URL, on_change: Callable[[], None], stop: threading.Event
) -> None:
    """Call `on_change` for each job change any process commits, until `stop` is set.
    Changes missed while the connection was lost are caught by the pages' periodic look
    and the workers' periodic claim."""
    listen(url, JOB_CHANGES_CHANNEL, on_change, stop)


def listen(
    url: str | sa.URL,
    channel: str,
    on_change: Callable[[], None],
    stop: threading.Event,
    *,
    listening: threading.Event | None = None,
) -> None:
    """Call `on_change` for each NOTIFY on `channel`, until `stop` is set; and once each
    time LISTEN takes effect (for what was committed before it, or while the connection
    was lost). `listening` is set while LISTEN is in effect.

    Runs in a thread of its own, on a connection of its own outside the pools (LISTEN
    holds its connection). A lost connection is made again.
    """
    # libpq's own URL form: without SQLAlchemy's "+psycopg".
    dsn = (
        sa.make_url(engine_url(url))
        .set(drivername="postgresql")
        .render_as_string(hide_password=False)
    )
    # Here, not at the top: the module is imported on SQLite too, where psycopg may be
    # absent (it is the [postgres] extra, app/core/extras.py).
    import psycopg

    while not stop.is_set():
        try:
            with psycopg.connect(
                dsn, autocommit=True, application_name=f"{APPLICATION_NAME} listener"
            ) as connection:
                connection.execute(f"LISTEN {channel}")
                if listening is not None:
                    listening.set()
                on_change()
                while not stop.is_set():
                    # A short timeout, so `stop` is noticed within a moment.
                    for _ in connection.notifies(timeout=LISTEN_WAKE_SECONDS, stop_after=1):
                        on_change()
        except psycopg.Error:
            if listening is not None:
                listening.clear()
            log.warning("lost the database connection listening on %s; trying again", channel)
            stop.wait(LISTEN_RETRY_SECONDS)


LISTEN_WAKE_SECONDS = 0.5
LISTEN_RETRY_SECONDS = 2.0


def is_integer_overflow(exc: BaseException) -> bool:
    """Whether `exc` is the server refusing a number too large for the column it meets."""
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    return getattr(exc.orig, "sqlstate", None) == NUMERIC_VALUE_OUT_OF_RANGE


def is_search_index_name(type_: str, name: str | None) -> bool:
    """The search column and its index: made by migration, invisible to the models."""
    return (type_ == "column" and name == PROMPT_SEARCH_COLUMN) or (
        type_ == "index" and name == PROMPT_SEARCH_INDEX
    )


def prompt_matches(terms: Sequence[tuple[str, bool]]) -> sa.ColumnElement[bool]:
    """Jobs whose prompt holds every (text, is_phrase) term (`prompt_term_matches` each)."""
    return sa.and_(
        *(
            prompt_term_matches(sa.bindparam(None, text, type_=sa.Text), phrase=phrase)
            for text, phrase in terms
        )
    )


def prompt_term_matches(text: sa.ColumnElement[str], *, phrase: bool) -> sa.ColumnElement[bool]:
    """Jobs whose prompt holds the term `text` (a bound parameter: a statement built once
    is run with any term).

    The term becomes a `tsquery` in the database (the migration's function tokenizes it
    as the prompts were tokenized): its tokens in a row, the last one a prefix unless the
    term was quoted. Nothing the user types is tsquery syntax. A term with no letter or
    digit in it matches nothing, as in FTS5.
    """
    prompt_search: sa.ColumnElement[Any] = sa.literal_column(f"jobs.{PROMPT_SEARCH_COLUMN}")
    return prompt_search.op("@@", is_comparison=True)(
        sa.func.playground_prompt_query(text, sa.false() if phrase else sa.true())
    )


# --- Credentials changed elsewhere ------------------------------------------------------

CREDENTIALS_CHANNEL = "playground_credentials"


def notify_credentials_changed(engine: sa.Engine) -> None:
    """Tell every process listening (`CredentialNotices`) that credentials changed."""
    with engine.begin() as connection:
        connection.exec_driver_sql(f"NOTIFY {CREDENTIALS_CHANNEL}")


class CredentialNotices:
    """A thread that `listen`s for `notify_credentials_changed` and calls `on_change` for
    each notice (and after a lost connection comes back: notices sent meanwhile were
    missed)."""

    def __init__(self, url: sa.URL, on_change: Callable[[], None]) -> None:
        self._url = url
        self._on_change = on_change
        self._stopping = threading.Event()
        self.listening = threading.Event()
        self._thread = threading.Thread(target=self._run, name="credential notices", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=LISTEN_WAKE_SECONDS * 5)

    def _run(self) -> None:
        listen(
            self._url,
            CREDENTIALS_CHANNEL,
            self._on_change,
            self._stopping,
            listening=self.listening,
        )


# --- Blob store ------------------------------------------------------------------------

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
        # Checked before use, as the database's own pools are (engine_options): a server
        # restart otherwise fails the first read of each pooled connection.
        self._engine = sa.create_engine(
            self._url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
        )

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
