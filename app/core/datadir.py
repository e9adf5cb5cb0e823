"""The data dir is the app's alone: the dir 0700, the files that hold the gallery or its keys
0600, whatever the umask of whoever started the app.

SQLite creates a database's `-wal` and `-shm` files with the database file's own
permissions, so creating the database file 0600 before SQLite opens it covers those too.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from app.core.config import Settings

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")

log = logging.getLogger(__name__)


def prepare(settings: Settings) -> None:
    """Create the data dir (or tighten it), and its databases as files only we can read."""
    make_private_dir(settings.data_dir)
    for database in _sqlite_files(settings):
        create_private_file(database)
        for suffix in SQLITE_COMPANIONS:
            companion = database.with_name(database.name + suffix)
            if companion.exists():
                _tighten(companion, PRIVATE_FILE_MODE)


def _sqlite_files(settings: Settings) -> tuple[Path, ...]:
    """The SQLite files the app keeps in the data dir: none on PostgreSQL, which holds the
    rows and (unless they are in a bucket) the images."""
    if settings.uses_postgres:
        return ()
    return (settings.database_path, settings.image_store_path)


def make_private_dir(path: Path) -> None:
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    _tighten(path, PRIVATE_DIR_MODE)


def create_private_file(path: Path) -> None:
    """Make sure `path` exists (empty if new) with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE_MODE))
    _tighten(path, PRIVATE_FILE_MODE)


def open_private(path: Path) -> int:
    """A new file (truncated if it exists) only we can read, as a file descriptor."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    with contextlib.suppress(OSError):
        os.fchmod(descriptor, PRIVATE_FILE_MODE)
    return descriptor


def _tighten(path: Path, mode: int) -> None:
    try:
        if path.stat().st_mode & 0o777 != mode:
            os.chmod(path, mode)
    except PermissionError:
        # Not ours (a mounted volume, say): say so rather than refuse to start.
        log.warning("cannot set %s to mode %o; check who owns it", path, mode)
