"""Export a whole gallery to one file, and import it into another instance, losing nothing.

The file is a zip:

    manifest.json            format, version, app version, row counts
    jobs.jsonl               one row a line, every column
    images.jsonl             (favourites and trash state included)
    collections.jsonl
    collection_images.jsonl
    users.jsonl              the people who made the jobs: names only, never passwords
    blobs/<sha256>           each distinct image's bytes, once
    thumbnails/<sha256>      its WebP thumbnail, beside it as in the blob store

Version 1 files, from before thumbnails moved into the blob store, held them as
`thumbnails.jsonl` rows and `thumbnails/<image id>` bytes; they import as well.

Rows are written column by column from the tables themselves, so a column a
later migration adds travels without a change here. Importing into an empty
gallery keeps every id, so links keep working; importing into one that has jobs
gives the newcomers fresh ids (and skips jobs it has already, by their upstream
job id), and merges collections by name. Image bytes are checked against their
sha256 as they are stored, in whichever blob store the target uses; rows are
written in one transaction, so an import that fails leaves the gallery as it was.

People travel as names, so each job stays attributed: someone the target knows
(by name) is matched; anyone else arrives as a removed account that cannot sign
in, and importing never turns sign-in on or gives anybody access.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa

from app import __version__
from app.blobs import BlobStore, DigestMismatch
from app.database import Database
from app.datadir import open_private
from app.models import (
    Collection,
    CollectionImage,
    Image,
    Job,
    JobStatus,
    User,
    UTCDateTime,
    utcnow,
)
from app.thumbnails import Thumbnails

FORMAT = "seedream-playground-gallery"
VERSION = 2
READABLE_VERSIONS = (1, 2)
_BATCH = 1000
# Thumbnails are 512 px WebP files of tens of kilobytes; anything far larger is not one.
THUMBNAIL_MAX_BYTES = 4 * 1024 * 1024
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

JOBS = Job.__table__  # type: ignore[attr-defined]
IMAGES = Image.__table__  # type: ignore[attr-defined]
COLLECTIONS = Collection.__table__  # type: ignore[attr-defined]
COLLECTION_IMAGES = CollectionImage.__table__  # type: ignore[attr-defined]
USERS = User.__table__  # type: ignore[attr-defined]
# What travels of a person: enough to name them, nothing to sign in with.
USER_COLUMNS = ("id", "name", "name_key", "created_at", "removed_at")
# Not an argon2 hash, so no password ever matches it.
NO_PASSWORD = "!imported"


class ArchiveError(Exception):
    pass


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
    with (
        db.read() as session,
        # Only we can read it: it holds every image and prompt of the gallery.
        os.fdopen(open_private(partial), "wb") as stream,
        zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_DEFLATED) as archive,
    ):
        connection = session.connection()
        digests: set[str] = set()
        for name, table in (
            ("jobs", JOBS),
            ("images", IMAGES),
            ("collections", COLLECTIONS),
            ("collection_images", COLLECTION_IMAGES),
        ):
            with archive.open(f"{name}.jsonl", "w") as out:
                for row in _rows(connection, table):
                    out.write(_line({k: _to_json(v) for k, v in row.items()}))
                    setattr(counts, name, getattr(counts, name) + 1)
                    if table is IMAGES:
                        digests.add(row["sha256"])
        with archive.open("users.jsonl", "w") as out:
            for row in _rows(connection, USERS):
                out.write(_line({k: _to_json(row[k]) for k in USER_COLUMNS}))
                counts.users += 1
        for sha in sorted(digests):
            # Stored, not deflated: image formats are compressed already.
            info = zipfile.ZipInfo(f"blobs/{sha}")
            info.compress_type = zipfile.ZIP_STORED
            with archive.open(info, "w", force_zip64=True) as out:
                for chunk in blobs.iter_chunks(sha):
                    out.write(chunk)
            counts.blobs += 1
            thumbnail = thumbnails.read(sha)
            if thumbnail is not None:
                archive.writestr(
                    zipfile.ZipInfo(f"thumbnails/{sha}"),
                    thumbnail,
                    compress_type=zipfile.ZIP_STORED,
                )
                counts.thumbnails += 1
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "app_version": __version__,
            "exported_at": utcnow().isoformat(),
            "counts": counts.as_dict(),
        }
        archive.writestr("manifest.json", json.dumps(manifest, indent=2) + "\n")
    partial.replace(path)
    return counts


def _line(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


# --- Import ------------------------------------------------------------------------------


def _from_json(table: sa.Table, record: dict[str, Any]) -> dict[str, Any]:
    """The record's values for the columns this table has, in Python types."""
    values: dict[str, Any] = {}
    for column in table.columns:
        if column.name not in record:
            continue
        value = record[column.name]
        if (
            value is not None
            and isinstance(column.type, sa.Integer)
            and (isinstance(value, bool) or not isinstance(value, int))
        ):
            raise ArchiveError(f"{table.name}.{column.name} holds {value!r}, not a whole number")
        if value is not None and isinstance(column.type, UTCDateTime):
            value = datetime.fromisoformat(value)
        elif value is not None and column.name == "status" and table is JOBS:
            value = JobStatus(value)
        values[column.name] = value
    return values


def _records(archive: zipfile.ZipFile, name: str) -> Iterator[dict[str, Any]]:
    with archive.open(name) as stream:
        for line in stream:
            if line.strip():
                yield json.loads(line)


def _read_manifest(archive: zipfile.ZipFile) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads(archive.read("manifest.json"))
    except KeyError:
        raise ArchiveError("this file is not a gallery export: it has no manifest.json") from None
    if manifest.get("format") != FORMAT:
        raise ArchiveError("this file is not a Seedream Playground gallery export")
    if manifest.get("version") not in READABLE_VERSIONS:
        raise ArchiveError(
            f"this export is format version {manifest.get('version')}; "
            f"this app reads versions {', '.join(map(str, READABLE_VERSIONS))}"
        )
    return manifest


def _store_blobs(
    archive: zipfile.ZipFile, blobs: BlobStore, scratch_dir: Path, counts: Counts
) -> None:
    scratch_dir.mkdir(parents=True, exist_ok=True)
    for info in archive.infolist():
        if not info.filename.startswith("blobs/") or info.is_dir():
            continue
        sha = info.filename.removeprefix("blobs/")
        if blobs.contains(sha):
            continue
        with tempfile.NamedTemporaryFile(dir=scratch_dir, prefix="import-", delete=False) as out:
            temporary = Path(out.name)
            with archive.open(info) as source:
                _copy(source, out)
        try:
            # put_file checks the bytes against their digest: a damaged file is refused.
            blobs.put_file(sha, temporary)
        except DigestMismatch:
            raise ArchiveError(f"the image bytes {sha[:12]}… do not match their digest") from None
        finally:
            temporary.unlink(missing_ok=True)
        counts.blobs += 1


def _store_thumbnails(
    archive: zipfile.ZipFile, blobs: BlobStore, version: int, counts: Counts
) -> None:
    """Each image's thumbnail into the store beside it, under the image's digest."""
    digests = {record["id"]: record["sha256"] for record in _records(archive, "images.jsonl")}
    members: dict[str, str] = {}  # member name → the digest of the image it belongs to
    if version == 1:
        # thumbnails/<image id>, each named in thumbnails.jsonl.
        for record in _records(archive, "thumbnails.jsonl"):
            sha = digests.get(record.get("image_id"))
            if isinstance(sha, str):
                members.setdefault(f"thumbnails/{record['image_id']}", sha)
    else:
        known = set(digests.values())
        for info in archive.infolist():
            sha = info.filename.removeprefix("thumbnails/")
            if info.filename.startswith("thumbnails/") and sha in known:
                members[info.filename] = sha
    stored: set[str] = set()
    for name, sha in members.items():
        if sha in stored or not _SHA256.match(sha):
            continue
        try:
            info = archive.getinfo(name)
        except KeyError:
            raise ArchiveError(f"{name} is named but missing") from None
        if info.file_size > THUMBNAIL_MAX_BYTES:
            raise ArchiveError(f"{name} is {info.file_size:,} bytes: too large for a thumbnail")
        blobs.put_thumbnail(sha, archive.read(info))
        stored.add(sha)
        counts.thumbnails += 1


def _copy(source: IO[bytes], target: IO[bytes]) -> None:
    while chunk := source.read(1024 * 1024):
        target.write(chunk)


def import_gallery(db: Database, blobs: BlobStore, path: Path, *, scratch_dir: Path) -> Counts:
    """Add the gallery in `path` to this one (see the module docstring for how ids are kept)."""
    counts = Counts()
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ArchiveError(f"cannot read {path}: {exc}") from None
    with archive:
        manifest = _read_manifest(archive)
        # Bytes first, rows after: no row ever names bytes the store lacks.
        _store_blobs(archive, blobs, scratch_dir, counts)
        _store_thumbnails(archive, blobs, manifest["version"], counts)
        with db.write() as session:
            connection = session.connection()
            _import_rows(connection, archive, counts)
            if connection.dialect.name == "postgresql":
                _advance_sequences(connection)
    return counts


def _insert(connection: sa.Connection, table: sa.Table, values: dict[str, Any], keep: bool) -> Any:
    if keep:
        connection.execute(sa.insert(table), values)
        return values["id"]
    values = {k: v for k, v in values.items() if k != "id"}
    return connection.execute(sa.insert(table).returning(table.c.id), values).scalar_one()


def _import_rows(connection: sa.Connection, archive: zipfile.ZipFile, counts: Counts) -> None:
    keep_ids = connection.execute(sa.select(sa.func.count()).select_from(JOBS)).scalar_one() == 0
    # Jobs already here, by what names them across galleries: their local numbers.
    known_upstream = {
        value: job_id
        for job_id, value in connection.execute(sa.select(JOBS.c.id, JOBS.c.upstream_job_id))
        if value
    }
    known_keys = {
        value: job_id
        for job_id, value in connection.execute(sa.select(JOBS.c.id, JOBS.c.idempotency_key))
        if value
    }

    user_ids = _import_people(connection, archive, counts)

    job_ids: dict[int, int] = {}
    # Where each exported job is now, also those already here (a remix names its source).
    local_ids: dict[int, int] = {}
    for record in _records(archive, "jobs.jsonl"):
        values = _from_json(JOBS, record)
        if values.get("user_id") is not None:
            values["user_id"] = user_ids.get(values["user_id"])
        if values.get("remix_of_job_id") is not None and not keep_ids:
            # Sources come first (jobs are written in id order); one purged before the
            # export cannot be named by its old number.
            values["remix_of_job_id"] = local_ids.get(values["remix_of_job_id"])
            if values["remix_of_job_id"] is None:
                values["remix_of_image_index"] = None
        here = known_upstream.get(values.get("upstream_job_id") or "") or known_keys.get(
            values.get("idempotency_key") or ""
        )
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
        counts.jobs += 1

    image_ids: dict[int, int] = {}
    for record in _records(archive, "images.jsonl"):
        if record["job_id"] not in job_ids:
            continue
        values = _from_json(IMAGES, record)
        values["job_id"] = job_ids[record["job_id"]]
        image_ids[record["id"]] = _insert(connection, IMAGES, values, keep_ids)
        counts.images += 1

    by_name = {
        name: collection_id
        for collection_id, name in connection.execute(
            sa.select(COLLECTIONS.c.id, COLLECTIONS.c.name)
        )
    }
    collection_ids: dict[int, int] = {}
    for record in _records(archive, "collections.jsonl"):
        if record["name"] in by_name:
            collection_ids[record["id"]] = by_name[record["name"]]
            continue
        keep = keep_ids and not by_name
        collection_ids[record["id"]] = _insert(
            connection, COLLECTIONS, _from_json(COLLECTIONS, record), keep
        )
        counts.collections += 1

    present = {
        (c, i)
        for c, i in connection.execute(
            sa.select(COLLECTION_IMAGES.c.collection_id, COLLECTION_IMAGES.c.image_id)
        )
    }
    for record in _records(archive, "collection_images.jsonl"):
        if record["image_id"] not in image_ids or record["collection_id"] not in collection_ids:
            continue
        values = _from_json(COLLECTION_IMAGES, record)
        values["collection_id"] = collection_ids[record["collection_id"]]
        values["image_id"] = image_ids[record["image_id"]]
        if (values["collection_id"], values["image_id"]) in present:
            continue
        connection.execute(sa.insert(COLLECTION_IMAGES), values)
        counts.collection_images += 1


def _import_people(
    connection: sa.Connection, archive: zipfile.ZipFile, counts: Counts
) -> dict[int, int]:
    """Exported user id -> this gallery's user id (see the module docstring)."""
    if "users.jsonl" not in archive.namelist():
        return {}
    known = {
        key: user_id for user_id, key in connection.execute(sa.select(USERS.c.id, USERS.c.name_key))
    }
    keep_ids = not known
    now = utcnow()
    mapping: dict[int, int] = {}
    for record in _records(archive, "users.jsonl"):
        values = _from_json(USERS, {k: record.get(k) for k in USER_COLUMNS})
        if values["name_key"] in known:
            mapping[record["id"]] = known[values["name_key"]]
            continue
        values.update(password_hash=NO_PASSWORD, is_admin=False)
        values["removed_at"] = values.get("removed_at") or now
        mapping[record["id"]] = _insert(connection, USERS, values, keep_ids)
        counts.users += 1
    return mapping


def _advance_sequences(connection: sa.Connection) -> None:
    """Explicit ids do not move a PostgreSQL sequence; move it past them."""
    for table in (JOBS, IMAGES, COLLECTIONS, USERS):
        connection.execute(
            sa.text(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                f"COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)"
            )
        )
