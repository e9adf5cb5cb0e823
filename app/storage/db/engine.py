"""Engines, sessions and migrations, on SQLite or PostgreSQL.

Two engines on the same database: readers run concurrently, and writes go
through a writer engine. On SQLite its pool holds one connection, so inside a
process writes queue up instead of fighting over SQLite's lock (across
processes, `BEGIN IMMEDIATE` and the busy timeout do the queueing). On
PostgreSQL the writer is just a second ordinary pool: the server locks rows.

Each database's own code lives behind its seam, `app/storage/db/sqlite.py` and
`app/storage/db/postgres.py`. Choosing between them is done here, and only where the
two must differ elsewhere: the gallery's search, the job queue's claim, the
archive's id sequences and the gallery migration, each saying why.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import Session

from app.core import extras
from app.core.config import Settings
from app.core.database_url import display_url, engine_url, is_postgres_url
from app.core.resources import MIGRATIONS_DIR
from app.storage.db import postgres, sqlite
from app.storage.db.blob_tables import is_blob_store_table
from app.storage.db.change_marker import ChangeMarker

# Beside the database file, as SQLite's own -wal and -shm are.
CREDENTIALS_MARKER_SUFFIX = "-credentials-changed"


class Database:
    def __init__(self, url: str | sa.URL) -> None:
        if is_postgres_url(url):
            # Said in one line here, not as SQLAlchemy's ModuleNotFoundError.
            extras.require(extras.POSTGRES)
            url = engine_url(url)
        self.url = sa.make_url(url)
        if self.url.get_backend_name() == "sqlite":
            self.read_engine = sa.create_engine(self.url, pool_size=8, max_overflow=8)
            self.write_engine = sa.create_engine(
                self.url, pool_size=1, max_overflow=0, pool_timeout=60
            )
            # Heartbeats' own connection: queued behind this process's other writes, a
            # worker's heartbeat could run late enough under load that its jobs look
            # abandoned. (Across connections SQLite's busy handler takes turns.)
            self.urgent_engine = sa.create_engine(
                self.url, pool_size=1, max_overflow=0, pool_timeout=60
            )
            # Listings: reads of one statement each, with no transaction begun and ended
            # around them (on SQLite that was a third of a listing's database time).
            self.rows_engine = sa.create_engine(
                self.url, pool_size=8, max_overflow=8, isolation_level="AUTOCOMMIT"
            )
            sqlite.configure_engine(self.read_engine, writer=False)
            sqlite.configure_engine(self.write_engine, writer=True)
            sqlite.configure_engine(self.urgent_engine, writer=True)
            sqlite.configure_engine(self.rows_engine, writer=False, transactions=False)
        elif self.url.get_backend_name() == "postgresql":
            self.read_engine = sa.create_engine(self.url, **postgres.engine_options(writer=False))
            self.write_engine = sa.create_engine(self.url, **postgres.engine_options(writer=True))
            postgres.configure_engine(self.read_engine)
            postgres.configure_engine(self.write_engine)
            # Row locks, not one writer: heartbeats need no connection of their own.
            self.urgent_engine = self.write_engine
            # The read pool's connections, in autocommit: the server's connection limit is
            # shared by every process, so listings take no pool of their own.
            self.rows_engine = self.read_engine.execution_options(isolation_level="AUTOCOMMIT")
        else:
            raise ValueError(f"{self.url.get_backend_name()} databases are not supported")
        self._credential_listeners: list[Callable[[], None]] = []
        self._credential_lock = threading.Lock()
        self._notices: postgres.CredentialNotices | None = None
        self._credentials_marker: ChangeMarker | None = None

    @classmethod
    def at_path(cls, path: Path) -> Database:
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(f"sqlite:///{path}")

    @classmethod
    def for_settings(cls, settings: Settings) -> Database:
        """The database the settings name: PLAYGROUND_DATABASE_URL, else the data dir's file."""
        if settings.database_url is None:
            return cls.at_path(settings.database_path)
        return cls(settings.sqlalchemy_url)

    @property
    def dialect(self) -> str:
        """The backend: sqlite or postgresql."""
        return self.url.get_backend_name()

    @property
    def display_url(self) -> str:
        return display_url(self.url)

    def migrate(self) -> tuple[str | None, str | None]:
        """Bring the schema to the newest revision; returns the revisions before and after.

        Safe to run from many processes at once: on SQLite the writer's `BEGIN IMMEDIATE`
        lets one migrate at a time, on PostgreSQL an advisory lock does; the others then
        find nothing left to do.
        """
        with self.write_engine.begin() as connection:
            if self.dialect == "postgresql":
                postgres.lock_for_migrations(connection)
            before = MigrationContext.configure(connection).get_current_revision()
            config = migrations_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            after = MigrationContext.configure(connection).get_current_revision()
        return before, after

    def schema_revision(self) -> str | None:
        """The schema's revision as the database answers now, on a connection of the read
        pool (a round trip: `SELECT 1`, then the revision); raises if it does not answer."""
        with self.read_engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
            return MigrationContext.configure(connection).get_current_revision()

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.read_engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def read_rows(self) -> Iterator[sa.Connection]:
        """A plain connection for reads that load no ORM objects and need no snapshot across
        statements: listings read rows, and an ORM session and a transaction around them
        cost as much as the query (docs/benchmarks.md)."""
        with self.rows_engine.connect() as connection:
            yield connection

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One short write transaction: committed on success, rolled back on error."""
        with Session(self.write_engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def write_urgently(self) -> Iterator[Session]:
        """A short write that must not queue behind this process's others (a heartbeat)."""
        with Session(self.urgent_engine, expire_on_commit=False) as session, session.begin():
            yield session

    def watch_changes(self, on_change: Callable[[], None], stop: threading.Event) -> None:
        """Call `on_change` whenever any process may have changed a job, until `stop` is set;
        blocks, so it runs in a thread of its own. PostgreSQL hears NOTIFYs from a trigger,
        SQLite watches its change counter."""
        if self.dialect == "postgresql":
            postgres.listen_for_job_changes(self.url, on_change, stop)
        else:
            assert self.url.database is not None
            sqlite.watch_for_changes(Path(self.url.database), on_change, stop)

    def on_credentials_changed(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` whenever a session, token or person changes; returns the undo.

        `app.features.people.accounts` announces its own writes (`credentials_changed`); on
        PostgreSQL
        the other processes' writes are heard too, through LISTEN/NOTIFY
        (`app.storage.db.postgres.CredentialNotices`, a thread while anyone listens). On SQLite
        nothing is heard: a cache reads `credentials_marker` instead."""
        with self._credential_lock:
            self._credential_listeners.append(listener)
            if self.dialect == "postgresql" and self._notices is None:
                self._notices = postgres.CredentialNotices(self.url, self._tell_listeners)
                self._notices.start()

        def undo() -> None:
            with self._credential_lock:
                self._credential_listeners.remove(listener)
                notices = self._notices if not self._credential_listeners else None
                if notices is not None:
                    self._notices = None
            if notices is not None:
                notices.stop()

        return undo

    def credentials_changed(self) -> None:
        """Sessions, tokens or people changed (committed): tell this process's listeners at
        once, and every other process: on SQLite by moving the marker they read before
        trusting what they remember (`credentials_marker`), on PostgreSQL by a NOTIFY."""
        marker = self._marker()
        if marker is not None:
            # Before the listeners: their caches take the moved mark as already seen.
            marker.move()
        self._tell_listeners()
        if self.dialect == "postgresql":
            postgres.notify_credentials_changed(self.write_engine)

    def credentials_marker(self) -> Callable[[], bytes] | None:
        """What a cache of credentials reads before trusting itself: different bytes once any
        process changed a session, token or person (app/storage/db/change_marker.py). SQLite only;
        None on PostgreSQL, whose processes hear of changes (`on_credentials_changed`)."""
        marker = self._marker()
        return marker.read if marker is not None else None

    def _marker(self) -> ChangeMarker | None:
        if self.dialect != "sqlite" or self.url.database in (None, "", ":memory:"):
            return None
        with self._credential_lock:
            if self._credentials_marker is None:
                path = Path(self.url.database)
                self._credentials_marker = ChangeMarker(
                    path.with_name(path.name + CREDENTIALS_MARKER_SUFFIX)
                )
            return self._credentials_marker

    def _tell_listeners(self) -> None:
        for listener in list(self._credential_listeners):
            listener()

    def dispose(self) -> None:
        with self._credential_lock:
            notices, self._notices = self._notices, None
        if notices is not None:
            notices.stop()
        self.read_engine.dispose()
        self.write_engine.dispose()
        self.urgent_engine.dispose()
        self.rows_engine.dispose()  # on PostgreSQL the read pool's, already gone


def include_in_comparison(name: str | None, type_: str, parent_names: Any) -> bool:
    """What schema comparisons look at: everything but the search indexes, which each
    database builds its own way, and the PostgreSQL blob store's tables (migrations make
    them; the models do not describe them)."""
    if type_ == "table" and (sqlite.is_search_index_table(name) or is_blob_store_table(name)):
        return False
    return not postgres.is_search_index_name(type_, name)


def is_number_out_of_range(exc: BaseException) -> bool:
    """Whether `exc` is the database (or its driver) refusing a number too large for a column:
    no record can have it, so the web layer answers 404 rather than 500."""
    return sqlite.is_integer_overflow(exc) or postgres.is_integer_overflow(exc)


@functools.cache
def newest_revision() -> str | None:
    """The revision this version of the app migrates to (its migrations' head)."""
    return ScriptDirectory.from_config(migrations_config()).get_current_head()


def migrations_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config
