"""Export a whole gallery to one file, and import it into another instance, losing nothing.

The file is a zip:

    manifest.json            format, version, app version, row counts
    jobs.jsonl               one row a line, every column
    images.jsonl             (favourites and trash state included)
    collections.jsonl
    collection_images.jsonl
    users.jsonl              the people who made the jobs: names only, never passwords
    blobs/<sha256>.png       each distinct image's bytes, once (.png, .jpg or .webp)
    thumbnails/<sha256>.webp its thumbnail, beside it as in the blob store

Every member is dated: an image and its thumbnail when the first image with those
bytes was made, the rest when the snapshot was taken (app/core/zips.py writes them).
The rows and the manifest follow the JSON Schema in
app/web/static/schemas/gallery-export.schema.json.

Older files import as well: version 2 named images and thumbnails by their digest
alone (`blobs/<sha256>`), and version 1, from before thumbnails moved into the blob
store, held them as `thumbnails.jsonl` rows and `thumbnails/<image id>` bytes.

Rows are written column by column from the tables themselves, so a column a
later migration adds travels without a change here. Importing into an empty
gallery keeps every id, so links keep working; importing into one that has jobs
gives the newcomers fresh ids (and skips jobs it has already, by their upstream
job id or what else names them: `_KnownJobs`), and merges collections by name, so
importing an archive again adds nothing. An archive is read as hostile until it
has proved otherwise: before anything is written, every member is checked
(app/features/archive/checks.py: names, sizes, counts, rows, and every image and thumbnail
through the same checks as a download); the first bad member refuses the whole
archive. Image bytes go into whichever blob store the target uses; rows are
written in one transaction, so an import that fails leaves the gallery as it was.

People travel as names, so each job stays attributed: someone the target knows
(by name) is matched; anyone else arrives as a removed account that cannot sign
in, and importing never turns sign-in on or gives anybody access.

It stays one module, long as it is: export and import are two directions of one format,
and keeping the writer and the reader side by side is what keeps them agreeing.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from app import __version__
from app.core.datadir import open_private
from app.core.zips import ZipWriter
from app.features.archive.checks import (
    FORMAT,
    MANIFEST,
    VERSION,
    ImportLimits,
    Inventory,
    blob_member,
    inspect,
    open_archive,
    thumbnail_member,
)
from app.features.archive.members import ArchiveError, read_member, records, stream_member
from app.features.archive.rows import (
    COLLECTION_IMAGES,
    COLLECTIONS,
    IMAGES,
    JOBS,
    USER_COLUMNS,
    USERS,
    from_json,
)
from app.storage.blobs.protocol import BlobStore, DigestMismatch, ensure_kept, store_then_commit
from app.storage.db import postgres
from app.storage.db.engine import Database
from app.storage.db.tables import JobStatus, utcnow
from app.storage.thumbnails import Thumbnails

__all__ = [
    "COLLECTIONS",
    "COLLECTION_IMAGES",
    "IMAGES",
    "JOBS",
    "ArchiveError",
    "Counts",
    "ImportLimits",
    "export_gallery",
    "import_gallery",
]

_BATCH = 1000
# Not an argon2 hash, so no password ever matches it.
NO_PASSWORD = "!imported"


@dataclass
class Counts:
    jobs: int = 0
    images: int = 0
    thumbnails: int = 0
    collections: int = 0
    collection_images: int = 0
    users: int = 0
    blobs: int = 0
    skipped_jobs: int = 0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {
            "jobs": self.jobs,
            "images": self.images,
            "thumbnails": self.thumbnails,
            "collections": self.collections,
            "collection_images": self.collection_images,
            "users": self.users,
            "blobs": self.blobs,
        }


# --- Export ------------------------------------------------------------------------------


def _to_json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


def _rows(connection: sa.Connection, table: sa.Table) -> Iterator[dict[str, Any]]:
    """Every row, in primary-key order, a batch at a time (keyset, never OFFSET)."""
    keys = list(table.primary_key.columns)
    last: tuple[Any, ...] | None = None
    while True:
        statement = sa.select(table).order_by(*keys).limit(_BATCH)
        if last is not None:
            statement = statement.where(sa.tuple_(*keys) > sa.tuple_(*last))
        batch = list(connection.execute(statement).mappings())
        if not batch:
            return
        yield from (dict(row) for row in batch)
        last = tuple(batch[-1][key.name] for key in keys)


def export_gallery(db: Database, blobs: BlobStore, path: Path) -> Counts:
    """Write the whole gallery to `path` (a zip), from one consistent snapshot."""
    thumbnails = Thumbnails(db, blobs)
    counts = Counts()
    partial = path.with_name(path.name + ".partial")
    exported_at = utcnow()
    with (
        db.read() as session,
        # Only we can read it: it holds every image and prompt of the gallery.
        os.fdopen(open_private(partial), "wb") as stream,
        ZipWriter(stream) as archive,
    ):
        connection = session.connection()
        # Each distinct image's bytes: its type, and when the first image with them was made.
        digests: dict[str, tuple[str, datetime]] = {}
        for name, table in (
            ("jobs", JOBS),
            ("images", IMAGES),
            ("collections", COLLECTIONS),
            ("collection_images", COLLECTION_IMAGES),
        ):
            with archive.open(f"{name}.jsonl", modified=exported_at, large=True) as out:
                for row in _rows(connection, table):
                    out.write(_line({k: _to_json(v) for k, v in row.items()}))
                    setattr(counts, name, getattr(counts, name) + 1)
                    if table is IMAGES:
                        digests.setdefault(row["sha256"], (row["content_type"], row["created_at"]))
        with archive.open("users.jsonl", modified=exported_at, large=True) as out:
            for row in _rows(connection, USERS):
                out.write(_line({k: _to_json(row[k]) for k in USER_COLUMNS}))
                counts.users += 1
        for sha in sorted(digests):
            content_type, made_at = digests[sha]
            with archive.open(
                blob_member(sha, content_type), modified=made_at, packed=True, large=True
            ) as out:
                for chunk in blobs.iter_chunks(sha):
                    out.write(chunk)
            counts.blobs += 1
            thumbnail = thumbnails.read(sha)
            if thumbnail is not None:
                archive.add(thumbnail_member(sha), thumbnail, modified=made_at, packed=True)
                counts.thumbnails += 1
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "app_version": __version__,
            "exported_at": exported_at.isoformat(),
            "counts": counts.as_dict(),
        }
        archive.add(MANIFEST, json.dumps(manifest, indent=2) + "\n", modified=exported_at)
    partial.replace(path)
    return counts


def _line(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


# --- Import ------------------------------------------------------------------------------


def import_gallery(
    db: Database,
    blobs: BlobStore,
    path: Path,
    *,
    scratch_dir: Path,
    limits: ImportLimits | None = None,
) -> Counts:
    """Add the gallery in `path` to this one (see the module docstring for how ids are kept).

    Raises ArchiveError, one line, for anything wrong with the archive; the gallery is
    then as it was, and nothing is left in `scratch_dir`.
    """
    limits = limits or ImportLimits()
    scratch_dir.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(dir=scratch_dir, prefix="import-") as scratch,
        open_archive(path, limits) as archive,
    ):
        inventory = inspect(archive, limits, scratch_dir=Path(scratch))
        stored: list[str] = []

        def store() -> Counts:
            counts = Counts()
            # Bytes first, rows after, committed only while the store keeps the bytes (a
            # purge may take those it had already, in between: then all again).
            _store_blobs(archive, inventory, blobs, Path(scratch), limits, stored)
            _store_thumbnails(archive, inventory, blobs, limits, counts)
            with db.write() as session:
                connection = session.connection()
                _import_rows(connection, archive, inventory, limits, counts)
                if connection.dialect.name == "postgresql":
                    # Rows imported with their ids leave PostgreSQL's id sequences behind.
                    postgres.advance_id_sequences(connection, [JOBS, IMAGES, COLLECTIONS, USERS])
                ensure_kept(blobs, connection, inventory.blobs.keys())
            counts.blobs = len(set(stored))
            return counts

        try:
            return store_then_commit(store)
        except Exception as exc:
            # Bytes stored for rows that never arrived: take them out again.
            if stored:
                blobs.discard(stored, gallery=db)
            if isinstance(exc, ArchiveError):
                raise
            raise ArchiveError(f"the rows could not be written ({exc})") from None


def _store_blobs(
    archive: zipfile.ZipFile,
    inventory: Inventory,
    blobs: BlobStore,
    scratch_dir: Path,
    limits: ImportLimits,
    stored: list[str],
) -> None:
    """Store the checked images this gallery lacks, adding their digests to `stored`."""
    for sha, info in inventory.blobs.items():
        if blobs.renew(sha):
            continue
        temporary = scratch_dir / "store.part"
        try:
            with temporary.open("wb") as out:
                for chunk in stream_member(archive, info, limit=limits.max_image_bytes):
                    out.write(chunk)
            # put_file checks the bytes against their digest again: they are the ones checked.
            blobs.put_file(sha, temporary)
        except DigestMismatch:
            raise ArchiveError(f"{info.filename}: the bytes changed while being read") from None
        finally:
            temporary.unlink(missing_ok=True)
        stored.append(sha)


def _store_thumbnails(
    archive: zipfile.ZipFile,
    inventory: Inventory,
    blobs: BlobStore,
    limits: ImportLimits,
    counts: Counts,
) -> None:
    """Each image's (checked) thumbnail into the store beside it, under the image's digest."""
    for sha, info in inventory.thumbnail_of.items():
        if sha not in inventory.blobs:
            continue
        blobs.put_thumbnail(sha, read_member(archive, info, limit=limits.max_thumbnail_bytes))
        counts.thumbnails += 1


def _insert(connection: sa.Connection, table: sa.Table, values: dict[str, Any], keep: bool) -> Any:
    if keep:
        connection.execute(sa.insert(table), values)
        return values["id"]
    values = {k: v for k, v in values.items() if k != "id"}
    return connection.execute(sa.insert(table).returning(table.c.id), values).scalar_one()


def _import_rows(
    connection: sa.Connection,
    archive: zipfile.ZipFile,
    inventory: Inventory,
    limits: ImportLimits,
    counts: Counts,
) -> None:
    def rows(name: str) -> Iterator[dict[str, Any]]:
        info = inventory.rows.get(name)
        if info is not None:
            for _, record in records(
                archive, info, limit=limits.max_row_bytes, member_limit=limits.rows_bytes
            ):
                yield record

    keep_ids = connection.execute(sa.select(sa.func.count()).select_from(JOBS)).scalar_one() == 0
    known = _KnownJobs(connection)

    user_ids = _import_people(connection, rows("users.jsonl"), counts)

    job_ids: dict[int, int] = {}
    # Jobs whose reference images name exported image ids, renumbered once images are in.
    with_references: dict[int, list[int]] = {}
    # Where each exported job is now, also those already here (a remix names its source).
    local_ids: dict[int, int] = {}
    for record in rows("jobs.jsonl"):
        values = from_json(JOBS, record)
        if values.get("user_id") is not None:
            values["user_id"] = user_ids.get(values["user_id"])
        if values.get("remix_of_job_id") is not None and not keep_ids:
            # Sources come first (jobs are written in id order); one purged before the
            # export cannot be named by its old number.
            values["remix_of_job_id"] = local_ids.get(values["remix_of_job_id"])
            if values["remix_of_job_id"] is None:
                values["remix_of_image_index"] = None
        here = known.find(values)
        if here is not None:
            local_ids[record["id"]] = here
            counts.skipped_jobs += 1
            continue
        if values.get("status") not in (
            JobStatus.COMPLETED,
            JobStatus.FAILED,
            JobStatus.EXPIRED,
            JobStatus.UNKNOWN,
        ):
            # This instance's worker takes over an unfinished job as soon as it is due.
            values["lease_owner"] = None
            values["lease_expires_at"] = None
        job_ids[record["id"]] = local_ids[record["id"]] = _insert(
            connection, JOBS, values, keep_ids
        )
        if values.get("reference_images") and not keep_ids:
            with_references[job_ids[record["id"]]] = list(values["reference_images"])
        counts.jobs += 1

    image_ids: dict[int, int] = {}
    # Images of jobs this gallery has already: where they are here, by (job, index).
    already: dict[int, tuple[int, int]] = {}
    for record in rows("images.jsonl"):
        if record["job_id"] not in job_ids:
            if record["job_id"] in local_ids:
                already[record["id"]] = (local_ids[record["job_id"]], record["index"])
            continue
        values = from_json(IMAGES, record)
        values["job_id"] = job_ids[record["job_id"]]
        image_ids[record["id"]] = _insert(connection, IMAGES, values, keep_ids)
        counts.images += 1

    _renumber_references(connection, with_references, image_ids, already)

    by_name = {
        name: collection_id
        for collection_id, name in connection.execute(
            sa.select(COLLECTIONS.c.id, COLLECTIONS.c.name)
        )
    }
    collection_ids: dict[int, int] = {}
    for record in rows("collections.jsonl"):
        if record["name"] in by_name:
            collection_ids[record["id"]] = by_name[record["name"]]
            continue
        keep = keep_ids and not by_name
        collection_ids[record["id"]] = _insert(
            connection, COLLECTIONS, from_json(COLLECTIONS, record), keep
        )
        counts.collections += 1

    present = {
        (c, i)
        for c, i in connection.execute(
            sa.select(COLLECTION_IMAGES.c.collection_id, COLLECTION_IMAGES.c.image_id)
        )
    }
    for record in rows("collection_images.jsonl"):
        if record["image_id"] not in image_ids or record["collection_id"] not in collection_ids:
            continue
        values = from_json(COLLECTION_IMAGES, record)
        values["collection_id"] = collection_ids[record["collection_id"]]
        values["image_id"] = image_ids[record["image_id"]]
        if (values["collection_id"], values["image_id"]) in present:
            continue
        connection.execute(sa.insert(COLLECTION_IMAGES), values)
        counts.collection_images += 1


class _KnownJobs:
    """The jobs already here, by what names a job across galleries: its upstream job id, or
    its idempotency key; a job with neither (an upload, a run refused before PixelDojo took
    it) by the moment it was made, its model and its prompt, which an export keeps exactly.
    Only those jobs' prompts are read, so a large gallery's prompts are never all held."""

    def __init__(self, connection: sa.Connection) -> None:
        self.upstream: dict[str, int] = {}
        self.keys: dict[str, int] = {}
        for job_id, upstream_id, key in connection.execute(
            sa.select(JOBS.c.id, JOBS.c.upstream_job_id, JOBS.c.idempotency_key)
        ):
            if upstream_id:
                self.upstream[upstream_id] = job_id
            if key:
                self.keys[key] = job_id
        self.made = {
            (created_at, model, prompt): job_id
            for job_id, created_at, model, prompt in connection.execute(
                sa.select(JOBS.c.id, JOBS.c.created_at, JOBS.c.model, JOBS.c.prompt).where(
                    JOBS.c.upstream_job_id.is_(None), JOBS.c.idempotency_key.is_(None)
                )
            )
        }

    def find(self, values: dict[str, Any]) -> int | None:
        """This gallery's number for the exported job, if it has it already."""
        upstream_id, key = values.get("upstream_job_id"), values.get("idempotency_key")
        if upstream_id or key:
            return self.upstream.get(upstream_id or "") or self.keys.get(key or "")
        return self.made.get((values.get("created_at"), values.get("model"), values.get("prompt")))


def _renumber_references(
    connection: sa.Connection,
    with_references: dict[int, list[int]],
    image_ids: dict[int, int],
    already: dict[int, tuple[int, int]],
) -> None:
    """Point imported jobs' references at the images' numbers here; a reference to an image
    the export did not hold (purged before it) is dropped."""
    if not with_references:
        return
    found = dict(image_ids)
    wanted = {image_id for references in with_references.values() for image_id in references}
    for exported in wanted & already.keys():
        job_id, index = already[exported]
        here = connection.execute(
            sa.select(IMAGES.c.id).where(IMAGES.c.job_id == job_id, IMAGES.c.index == index)
        ).scalar_one_or_none()
        if here is not None:
            found[exported] = here
    for job_id, references in with_references.items():
        renumbered = [found[image_id] for image_id in references if image_id in found]
        connection.execute(
            sa.update(JOBS).where(JOBS.c.id == job_id).values(reference_images=renumbered or None)
        )


def _import_people(
    connection: sa.Connection, people: Iterator[dict[str, Any]], counts: Counts
) -> dict[int, int]:
    """Exported user id -> this gallery's user id (see the module docstring)."""
    known = {
        key: user_id for user_id, key in connection.execute(sa.select(USERS.c.id, USERS.c.name_key))
    }
    keep_ids = not known
    now = utcnow()
    mapping: dict[int, int] = {}
    for record in people:
        values = from_json(USERS, {k: record.get(k) for k in USER_COLUMNS})
        if values["name_key"] in known:
            mapping[record["id"]] = known[values["name_key"]]
            continue
        values.update(password_hash=NO_PASSWORD, is_admin=False)
        values["removed_at"] = values.get("removed_at") or now
        mapping[record["id"]] = _insert(connection, USERS, values, keep_ids)
        counts.users += 1
    return mapping
