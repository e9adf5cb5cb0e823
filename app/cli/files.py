"""Where the command line writes, checked before anything is paid for.

A job is paid for when it is sent; a folder that cannot take its images must be found
out before that, not after, with a traceback.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from app.cli.remote import RemoteError


def prepare_folder(path: Path, *, option: str = "--out") -> Path:
    """A folder the command can write its files into (made if missing), or why not."""
    if path.exists() and not path.is_dir():
        raise RemoteError(f"{option} {path}: that is a file, not a folder", code="bad_out")
    try:
        path.mkdir(parents=True, exist_ok=True)
        # Writing is the only sure test (permissions, a read-only mount, a full disk).
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise RemoteError(
            f"{option} {path}: cannot write there ({reason})", code="bad_out"
        ) from None
    return path
