"""`seedream-playground backup FILE`: a consistent copy of a running app's data, 0600.

With the default stores the gallery is two SQLite files: job rows, and the
image bytes they point at (with their thumbnails). Each is copied from one
snapshot; the rows first, then the bytes, so every image a copied row names is
in the copied bytes (bytes are written before the rows that name them). Only a
purge running between the two copies could break that; the result is checked,
and copied again if it happened.

A blob store that is not a file of ours (a bucket) is not copied: the archive
holds the rows, and the bytes stay where they are, content-addressed and never
rewritten, to be backed up with that service's own tools.
"""

from __future__ import annotations

import os
import tarfile
import tempfile
from pathlib import Path

from app.core.config import Settings
from app.core.datadir import create_private_file, open_private
from app.storage.blobs.protocol import BlobStore
from app.storage.db.sqlite import backup_database, blob_digests_in, image_digests_in

ATTEMPTS = 3


class BackupError(Exception):
    pass


def backup(settings: Settings, destination: Path, *, blobs: BlobStore) -> dict[str, int | None]:
    """Write a tar archive holding `playground.db` and, when the image bytes are a file of
    ours, that file (`images.db`); returns what it holds (`stored_files` None: not copied)."""
    if not settings.database_path.is_file():
        raise BackupError(f"there is no database at {settings.database_path}")
    # The copy keeps the schema it has: migrating here could change a database under an
    # older server still running on it. The app migrates a restored copy when it starts.
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=destination.parent, prefix=".backup-") as scratch:
        rows = Path(scratch) / settings.database_path.name
        stored: set[str] | None = None
        for _ in range(ATTEMPTS):
            # Made 0600 first: the copies keep that mode, in the archive and once restored.
            create_private_file(rows)
            backup_database(settings.database_path, rows)
            copied = blobs.backup_to(Path(scratch))
            if copied is not None:
                create_private_file(copied)  # the copy's mode travels in the archive
            referenced = image_digests_in(rows)
            if copied is None:
                break
            stored = blob_digests_in(copied)
            if referenced <= stored:
                break
            rows.unlink()
            copied.unlink()
        else:
            raise BackupError("the images kept changing while they were copied; try again")
        partial = destination.with_name(destination.name + ".part")
        with (
            os.fdopen(open_private(partial), "wb") as stream,
            tarfile.open(fileobj=stream, mode="w") as archive,
        ):
            archive.add(rows, arcname=rows.name)
            if copied is not None:
                archive.add(copied, arcname=copied.name)
        partial.replace(destination)
    return {"images": len(referenced), "stored_files": None if stored is None else len(stored)}
