"""Engines, sessions and migrations.

Two engines on the same database: readers run concurrently, and writes go
through a writer engine whose pool holds one connection, so inside a process
writes queue up instead of fighting over SQLite's lock (across processes,
`BEGIN IMMEDIATE` and the busy timeout do the queueing). On a server database
the writer is just a second ordinary pool.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlmodel import Session

from app import postgres, sqlite
from app.resources import MIGRATIONS_DIR


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.read_engine = sa.create_engine(url, pool_size=8, max_overflow=8)
        self.write_engine = sa.create_engine(url, pool_size=1, max_overflow=0, pool_timeout=60)
        if sqlite.is_sqlite(self.write_engine):
            sqlite.configure_engine(self.read_engine, writer=False)
            sqlite.configure_engine(self.write_engine, writer=True)

    @classmethod
    def at_path(cls, path: Path) -> Database:
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(f"sqlite:///{path}")

    def migrate(self) -> None:
        """Bring the schema to the newest revision; safe to run from several processes."""
        with self.write_engine.begin() as connection:
            config = migrations_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.read_engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One short write transaction: committed on success, rolled back on error."""
        with Session(self.write_engine, expire_on_commit=False) as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.read_engine.dispose()
        self.write_engine.dispose()


def include_in_comparison(name: str | None, type_: str, parent_names: Any) -> bool:
    """What schema comparisons look at: everything but the SQLite search index's tables
    and the PostgreSQL blob store's (migrations make them; the models do not describe them)."""
    return not (
        type_ == "table"
        and (sqlite.is_search_index_table(name) or postgres.is_blob_store_table(name))
    )


def migrations_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config
