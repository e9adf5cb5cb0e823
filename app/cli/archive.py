"""`export`, `import` and `backup`: the whole gallery to one file and back, and a consistent
copy of the data dir. Where they write is checked before they start."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import click

from app.cli.local import (
    gallery_name,
    load_settings,
    open_blob_store,
    open_gallery,
    readable_file,
    writable_file,
)
from app.cli.options import common, examples


@click.command(
    name="export",
    short_help="Write the whole gallery to one file.",
    epilog=examples("export gallery.zip"),
)
@click.argument("file", type=click.Path(path_type=Path))
@common
def export_command(file: Path) -> int:
    """Write the whole gallery (jobs, images, collections) to one zip file.

    From a consistent snapshot: the server may keep running.
    """
    from app.features.archive.transfer import export_gallery

    writable_file(file, what="export")
    settings = load_settings()
    if not settings.uses_postgres and not settings.database_path.exists():
        raise SystemExit(f"There is no gallery in {settings.data_dir.resolve()} to export.")
    db, blobs = open_gallery(settings)
    try:
        counts = export_gallery(db, blobs, file)
    finally:
        blobs.close()
        db.dispose()
    print(
        f"Exported {counts.jobs} jobs, {counts.images} images ({counts.blobs} files) and "
        f"{counts.collections} collections to {file}",
        file=sys.stderr,
    )
    return 0


@click.command(
    name="import",
    short_help="Add an exported gallery to this one.",
    epilog=examples("import gallery.zip"),
)
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--max-members",
    type=click.IntRange(min=1),
    default=1_000_000,
    show_default=True,
    help="Refuse an archive with more members than this.",
)
@click.option(
    "--max-bytes",
    type=click.IntRange(min=1),
    default=None,
    help="Refuse an archive holding more bytes uncompressed than this "
    "[default: the free space of the data dir].",
)
@click.option(
    "--max-rows-bytes",
    type=click.IntRange(min=1),
    default=None,
    help="Refuse an archive whose jobs.jsonl (or another list of rows) holds more bytes "
    "uncompressed than this [default: 2 GiB, about a million and a half jobs].",
)
@common
def import_command(
    file: Path, max_members: int, max_bytes: int | None, max_rows_bytes: int | None
) -> int:
    """Add a gallery written by `export` to this one (read as hostile until proved not)."""
    from app.features.archive.transfer import ArchiveError, ImportLimits, import_gallery

    readable_file(file, what="import")
    settings = load_settings()
    limits = ImportLimits(
        max_members=max_members,
        max_total_bytes=max_bytes,
        max_image_bytes=settings.download_max_bytes,
    )
    if max_rows_bytes is not None:  # else ImportLimits' own default
        limits = dataclasses.replace(limits, max_rows_bytes=max_rows_bytes)
    db, blobs = open_gallery(settings)
    try:
        counts = import_gallery(db, blobs, file, scratch_dir=settings.scratch_dir, limits=limits)
    except ArchiveError as exc:
        raise SystemExit(f"Import failed, nothing was changed: {exc}") from None
    finally:
        blobs.close()
        db.dispose()
    skipped = f"; {counts.skipped_jobs} jobs were here already" if counts.skipped_jobs else ""
    print(
        f"Imported {counts.jobs} jobs, {counts.images} images and {counts.collections} "
        f"collections into {gallery_name(settings)}{skipped}",
        file=sys.stderr,
    )
    return 0


@click.command(
    short_help="Copy the data dir into a tar file.", epilog=examples("backup gallery.tar")
)
@click.argument("file", type=click.Path(path_type=Path))
@common
def backup(file: Path) -> int:
    """Copy the data dir consistently into a tar file, even while the app runs.

    On PostgreSQL it says how to back up instead (pg_dump, or export).
    """
    from app.storage.backup import BackupError
    from app.storage.backup import backup as make_backup

    settings = load_settings()
    if settings.uses_postgres:
        import sqlalchemy as sa

        # As pg_dump takes it: no driver name; the password hidden (it may be in ~/.pgpass).
        url = sa.make_url(settings.sqlalchemy_url).set(drivername="postgresql")
        shown = url.render_as_string(hide_password=True)
        raise SystemExit(
            "Backup: the gallery is in PostgreSQL (PLAYGROUND_DATABASE_URL); back it up with "
            "`pg_dump -Fc -f playground.dump "
            f"'{shown}'` (images included unless PLAYGROUND_BLOB_URL names a bucket: back that "
            "up too), or `seedream-playground export FILE` for one file."
        )
    writable_file(file, what="backup")
    if not settings.database_path.is_file():
        raise SystemExit(f"Backup failed: there is no database at {settings.database_path}")
    blobs = open_blob_store(settings, database_url=f"sqlite:///{settings.database_path}")
    try:
        summary = make_backup(settings, file, blobs=blobs)
    except BackupError as exc:
        raise SystemExit(f"Backup failed: {exc}") from None
    finally:
        blobs.close()
    print(
        f"Backed up {settings.data_dir} to {file} "
        f"({summary['images']} images). Restore with: tar -xf {file} -C <data dir>",
        file=sys.stderr,
    )
    if summary["stored_files"] is None:
        print(
            f"The image bytes stay in {blobs.describe()}: back that up with its own tools "
            "(bucket versioning or replication), or use `export` for one file with everything.",
            file=sys.stderr,
        )
    return 0
