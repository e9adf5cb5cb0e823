"""Which database a test's apps use: the SQLite file in their data dir, or a PostgreSQL
database of the test's own (the fixtures that make them are in tests/conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from app.storage.db.engine import Database


@dataclass(frozen=True)
class DatabaseChoice:
    """The database a test's apps use: the SQLite file in their data dir (url None), or a
    PostgreSQL database of the test's own, already migrated."""

    kind: str
    url: str | None = None

    def open(self, data_dir: Path) -> Database:
        """The database an app with this data dir uses, opened directly."""
        if self.url is None:
            return Database.at_path(data_dir / "playground.db")
        return Database(self.url)

    def environment(self) -> dict[str, str]:
        """What an app started as a process needs to use it."""
        return {} if self.url is None else {"PLAYGROUND_DATABASE_URL": self.url}

    def use_in_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Point commands run in this process (`cli.main`) at this database."""
        if self.url is None:
            monkeypatch.delenv("PLAYGROUND_DATABASE_URL", raising=False)
        else:
            monkeypatch.setenv("PLAYGROUND_DATABASE_URL", self.url)


SQLITE = DatabaseChoice("sqlite")
DATABASE_KINDS = ("sqlite", "postgresql")
