"""What the commands that work on this machine's gallery share: its settings, its database
and its image store, each opened with a one-line reason when it cannot be.

They import what they need when they run: `generate` and its kind talk to a server over
HTTP and should start in a moment, without the database or the web stack.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from pydantic import ValidationError

from app.core.config import Settings, env_name

if TYPE_CHECKING:
    from app.storage.db.engine import Database

# Who the audit log says did what the command line did.
CLI_ACTOR = "(command line)"


def quiet() -> bool:
    """Whether the command running was told -q."""
    context = click.get_current_context(silent=True)
    return bool(context is not None and context.find_root().meta.get("quiet"))


def load_settings() -> Settings:
    """Settings from the environment and `.env`; a bad value exits with a readable message.

    Says which data dir it is: a command run against the wrong one is the first
    thing to rule out when a playground looks empty.
    """
    try:
        settings = Settings()
    except ValidationError as exc:
        # Never echo the input: it may be the API key. One line, for a container's log.
        problems = [
            _settings_problem(error) for error in exc.errors(include_input=False, include_url=False)
        ]
        raise SystemExit("Invalid settings: " + "; ".join(problems)) from None
    if not quiet():
        where = "PLAYGROUND_DATA_DIR" if os.environ.get("PLAYGROUND_DATA_DIR") else "default"
        print(f"Data dir: {settings.data_dir.resolve()} ({where})", file=sys.stderr)
    return settings


def _settings_problem(error: Mapping[str, Any]) -> str:
    """One refused setting, named as it is set (PLAYGROUND_SECRET_KEY, not secret_key)."""
    message = str(error["msg"]).removeprefix("Value error, ")
    where = str(error["loc"][0]) if error["loc"] else ""
    name = env_name(where) if where in Settings.model_fields else where
    return message if not name or message.startswith(name) else f"{name}: {message}"


def open_database(settings: Settings) -> Database:
    from app.core import datadir
    from app.storage.db.engine import Database

    datadir.prepare(settings)
    db = Database.for_settings(settings)
    db.migrate()
    return db


def open_gallery(settings: Settings) -> tuple[Any, Any]:
    db = open_database(settings)
    try:
        return db, open_blob_store(settings, database_url=db.url)
    except SystemExit:
        db.dispose()
        raise


def open_blob_store(settings: Settings, *, database_url: Any) -> Any:
    """The store the settings name; one that cannot be used ends the command with why."""
    from app.storage.blobs.choose import open_blob_store as choose
    from app.storage.blobs.protocol import BlobStoreUnavailable

    try:
        return choose(settings, database_url=database_url)
    except BlobStoreUnavailable as exc:
        raise SystemExit(f"Cannot use the image store: {exc}") from None


def database_name(settings: Settings) -> str:
    from app.core.database_url import display_url

    return display_url(settings.sqlalchemy_url)


def gallery_name(settings: Settings) -> str:
    if settings.uses_postgres:
        return database_name(settings)
    return str(settings.data_dir.resolve())


def sign_in_on(settings: Settings) -> bool:
    from app.features.people import accounts

    db = open_database(settings)
    try:
        return accounts.users_exist(db)
    finally:
        db.dispose()


def writable_file(path: Path, *, what: str) -> Path:
    """A file the command may write: its folder exists, and it is not a folder itself."""
    if path.is_dir():
        raise SystemExit(f"{what} {path}: that is a folder; give a file name")
    if not path.parent.is_dir():
        raise SystemExit(f"{what} {path}: the folder {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK):
        raise SystemExit(f"{what} {path}: the folder {path.parent} cannot be written to")
    return path


def readable_file(path: Path, *, what: str) -> Path:
    if not path.is_file():
        raise SystemExit(f"{what} {path}: there is no such file")
    return path
