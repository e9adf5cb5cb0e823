"""`seedream-playground backup FILE`: a consistent copy of a running app's data.

The gallery is two SQLite files: job rows, and the image bytes they point at.
Each is copied from one snapshot; the rows first, then the bytes, so every
image a copied row names is in the copied bytes (bytes are written before the
rows that name them). Only a purge running between the two copies could break
that; the result is checked, and copied again if it happened.
"""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path

from app.config import Settings
from app.sqlite import backup_database, blob_digests_in, image_digests_in

ATTEMPTS = 3


class BackupError(Exception):
    pass


def backup(settings: Settings, destination: Path) -> dict[str, int]:
    """Write a tar archive holding `playground.db` and `images.db`; returns what it holds."""
    if not settings.database_path.is_file():
        raise BackupError(f"there is no database at {settings.database_path}")
    # The copy keeps the schema it has: migrating here could change a database under an
    # older server still running on it. The app migrates a restored copy when it starts.
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=destination.parent, prefix=".backup-") as scratch:
        rows = Path(scratch) / settings.database_path.name
        blobs = Path(scratch) / settings.image_store_path.name
        for _ in range(ATTEMPTS):
            backup_database(settings.database_path, rows)
            if settings.image_store_path.is_file():
                backup_database(settings.image_store_path, blobs)
                stored = blob_digests_in(blobs)
            else:
                stored = set()
            referenced = image_digests_in(rows)
            if referenced <= stored:
                break
            rows.unlink()
            blobs.unlink(missing_ok=True)
        else:
            raise BackupError("the images kept changing while they were copied; try again")
        partial = destination.with_name(destination.name + ".part")
        with tarfile.open(partial, "w") as archive:
            archive.add(rows, arcname=rows.name)
            if blobs.exists():
                archive.add(blobs, arcname=blobs.name)
        partial.replace(destination)
    return {"images": len(referenced), "stored_files": len(stored)}
