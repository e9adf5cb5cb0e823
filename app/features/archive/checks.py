"""Reading a gallery export as hostile until it has proved otherwise.

An export may come from anyone, so before anything is written `inspect`
reads the whole archive once:

- the zip's directory: at most `max_members` entries (counted from the zip's
  end record, before the directory itself is parsed); every name one that
  `export` writes (nothing else, so no path of the archive's choosing, no
  traversal), none twice, none encrypted, stored or deflated only; each member
  within the size of its kind (an image within the download cap, a thumbnail
  within its own), and all of them together within `max_total_bytes` and the
  free space of the data dir;
- every member, streamed and counted as it is read (a header cannot lie about
  its size): each list of rows within its own cap, a line at a time, no line
  blank (app/features/archive/members.py), each row in key order, fitting its columns
  and the app's own limits (app/features/archive/rows.py); each image's bytes match
  their sha256, pass the same checks as a download (they decode as a PNG, JPEG
  or WebP within the pixel cap) and agree with the rows that name them; each
  thumbnail passes those checks within the thumbnail limits.

The first bad member refuses the whole archive, with one line saying which
and why (`ArchiveError`). Scratch files go to a folder of their own under the
data dir's `tmp/`, removed afterwards whatever happens.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from app.core.errors import plain_reason
from app.features.archive.members import ArchiveError, read_member, records, stream_member
from app.features.archive.rows import OPTIONAL_MEMBERS, ROW_MEMBERS, KeyOrder, checked_row
from app.storage.intake import (
    IMAGE_CONTENT_TYPES,
    IMAGE_EXTENSIONS,
    MAX_IMAGE_PIXELS,
    THUMBNAIL_CONTENT_TYPE,
    THUMBNAIL_MAX_SIDE,
    ImageFacts,
    verify_image,
)
from app.upstream import DownloadRefused

FORMAT = "seedream-playground-gallery"
VERSION = 3
# Version 1, from before thumbnails moved into the blob store, held them as
# thumbnails.jsonl rows and thumbnails/<image id> bytes; version 2 as thumbnails/<sha256>;
# version 3 names images and thumbnails with their extension (blobs/<sha256>.png).
READABLE_VERSIONS = (1, 2, 3)

# The members an export holds besides its lists of rows (app/features/archive/rows.py).
MANIFEST = "manifest.json"
BLOB_MEMBER = re.compile(r"blobs/([0-9a-f]{64})(?:\.(png|jpg|webp))?")
# By the image's digest (versions 2 and 3) or by its id (version 1).
THUMBNAIL_MEMBER = re.compile(r"thumbnails/([0-9a-f]{64}|[1-9][0-9]{0,18})(?:\.(webp))?")
# Folder entries a repacking tool may add; they hold nothing.
FOLDERS = frozenset({"blobs/", "thumbnails/"})
# Left free on the data dir's disk after an import's images are stored.
DISK_RESERVE_BYTES = 1024**3
_END_OF_DIRECTORY = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"


def blob_member(sha: str, content_type: str) -> str:
    """Where an export keeps an image's bytes: by digest, with the extension of its type."""
    return f"blobs/{sha}.{IMAGE_EXTENSIONS[content_type]}"


def thumbnail_member(sha: str) -> str:
    return f"thumbnails/{sha}.{IMAGE_EXTENSIONS[THUMBNAIL_CONTENT_TYPE]}"


@dataclass(frozen=True)
class ImportLimits:
    max_members: int = 1_000_000
    # None: only the free space of the data dir's disk limits the total.
    max_total_bytes: int | None = None
    max_image_bytes: int = 64 * 1024 * 1024
    max_image_pixels: int = MAX_IMAGE_PIXELS
    # Thumbnails are 512 px WebP files of tens of kilobytes; anything far larger is not one.
    max_thumbnail_bytes: int = 4 * 1024 * 1024
    # Thumbnails are at most THUMBNAIL_MAX_SIDE a side; twice that is the most one may be.
    max_thumbnail_pixels: int = (2 * THUMBNAIL_MAX_SIDE) ** 2
    # One row (a line of a .jsonl member); the longest an export writes is tens of KB.
    max_row_bytes: int = 1024 * 1024
    # One list of rows all together: jobs.jsonl holds about 1.2 KB a job, so this is a
    # gallery of a million and a half (--max-rows-bytes raises it).
    max_rows_bytes: int = 2 * 1024**3
    max_manifest_bytes: int = 1024 * 1024

    @property
    def rows_bytes(self) -> int:
        """The most one list of rows may hold: its own cap, or the whole archive's if lower."""
        if self.max_total_bytes is None:
            return self.max_rows_bytes
        return min(self.max_rows_bytes, self.max_total_bytes)


@dataclass
class Inventory:
    """What a checked archive holds."""

    manifest: dict[str, Any]
    blobs: dict[str, zipfile.ZipInfo] = field(default_factory=dict)
    # Thumbnail members by what names them: a digest (version 2) or an image id (1).
    thumbnails: dict[str, zipfile.ZipInfo] = field(default_factory=dict)
    # The thumbnail member of each image, by the image's digest.
    thumbnail_of: dict[str, zipfile.ZipInfo] = field(default_factory=dict)
    rows: dict[str, zipfile.ZipInfo] = field(default_factory=dict)


# --- Opening -------------------------------------------------------------------------------


def open_archive(path: Path, limits: ImportLimits) -> zipfile.ZipFile:
    """The zip, once its entry count is known to be within the limit."""
    try:
        count = declared_member_count(path)
    except OSError as exc:
        raise ArchiveError(f"cannot read {path}: {exc.strerror or exc}") from None
    if count is None:
        raise ArchiveError(f"{path} is not a zip file")
    if count > limits.max_members:
        raise ArchiveError(
            f"the archive has {count:,} members, more than the {limits.max_members:,} "
            "an import reads (--max-members raises it)"
        )
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise ArchiveError(f"cannot read {path}: {plain_reason(exc)}") from None


def declared_member_count(path: Path) -> int | None:
    """The entry count in the zip's end record (zip64 too); None if there is none."""
    with path.open("rb") as stream:
        size = stream.seek(0, io.SEEK_END)
        tail_size = min(size, 22 + 65_535 + 20)
        stream.seek(size - tail_size)
        tail = stream.read(tail_size)
        end = tail.rfind(_END_OF_DIRECTORY)
        if end < 0 or end + 22 > len(tail):
            return None
        (count,) = struct.unpack("<H", tail[end + 10 : end + 12])
        locator = end - 20
        if count == 0xFFFF and locator >= 0 and tail[locator : locator + 4] == _ZIP64_LOCATOR:
            (record_offset,) = struct.unpack("<Q", tail[locator + 8 : locator + 16])
            if record_offset > size - 56:
                return None
            stream.seek(record_offset)
            record = stream.read(56)
            (count,) = struct.unpack("<Q", record[32:40])
        return int(count)


# --- Checking ------------------------------------------------------------------------------


def inspect(archive: zipfile.ZipFile, limits: ImportLimits, *, scratch_dir: Path) -> Inventory:
    """Check everything in the archive (see the module docstring); nothing is written but
    scratch files under `scratch_dir`, each removed once checked."""
    inventory = _check_directory(archive, limits, scratch_dir=scratch_dir)
    images = _check_rows(archive, inventory, limits)
    for sha, info in inventory.blobs.items():
        _check_blob(archive, info, sha, images.get(sha), limits, scratch_dir=scratch_dir)
    for info in inventory.thumbnails.values():
        # Only the bytes count: they go into the blob store beside their image, and a
        # version 1 row's columns are not kept.
        data = read_member(archive, info, limit=limits.max_thumbnail_bytes)
        facts = _verified(info.filename, io.BytesIO(data), limits.max_thumbnail_pixels)
        _named_as(info.filename, facts.content_type)
    return inventory


def _check_directory(
    archive: zipfile.ZipFile, limits: ImportLimits, *, scratch_dir: Path
) -> Inventory:
    if MANIFEST not in archive.NameToInfo:
        raise ArchiveError("this file is not a gallery export: it has no manifest.json")
    seen: set[str] = set()
    total = 0
    found = Inventory(manifest={})
    for info in archive.infolist():
        name = info.filename
        if name in seen:
            raise ArchiveError(f"the archive holds {name!r} twice")
        seen.add(name)
        if info.flag_bits & 0x1:
            raise ArchiveError(f"{name!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ArchiveError(f"{name!r} uses a compression this app does not read")
        if name in FOLDERS:
            continue
        limit = _member_limit(name, limits, found, info)
        if info.file_size > limit:
            raises = ""
            if name in ROW_MEMBERS:
                flag = "--max-rows-bytes" if limit == limits.max_rows_bytes else "--max-bytes"
                raises = f" ({flag} raises it)"
            raise ArchiveError(
                f"{name!r} is {info.file_size:,} bytes uncompressed, over the {limit:,}-byte "
                f"limit for it{raises}"
            )
        total += info.file_size
    missing = [name for name in ROW_MEMBERS if name not in seen and name not in OPTIONAL_MEMBERS]
    found.manifest = _read_manifest(archive, limits)
    if missing:
        raise ArchiveError(f"the archive has no {', '.join(missing)}")
    room = _room(scratch_dir, limits)
    if total > room:
        raise ArchiveError(
            f"the archive holds {total:,} bytes uncompressed, more than the {room:,} an "
            "import may write here (the free space of the data dir, or --max-bytes)"
        )
    return found


def _member_limit(name: str, limits: ImportLimits, found: Inventory, info: zipfile.ZipInfo) -> int:
    """The most this member may hold, by what it is; records where it was found."""
    if name == MANIFEST:
        return limits.max_manifest_bytes
    if name in ROW_MEMBERS:
        found.rows[name] = info
        return limits.rows_bytes
    if match := BLOB_MEMBER.fullmatch(name):
        _found_once(found.blobs, match.group(1), info)
        return limits.max_image_bytes
    if match := THUMBNAIL_MEMBER.fullmatch(name):
        _found_once(found.thumbnails, match.group(1), info)
        if BLOB_MEMBER.fullmatch(f"blobs/{match.group(1)}"):
            found.thumbnail_of[match.group(1)] = info
        return limits.max_thumbnail_bytes
    raise ArchiveError(f"the archive holds {name[:100]!r}, which an export never does")


def _found_once(members: dict[str, zipfile.ZipInfo], key: str, info: zipfile.ZipInfo) -> None:
    """One member for each image or thumbnail, under one name or the other (with or without
    its extension), never both."""
    if key in members:
        raise ArchiveError(
            f"the archive holds {members[key].filename!r} and {info.filename!r}: the same bytes"
        )
    members[key] = info


def _room(scratch_dir: Path, limits: ImportLimits) -> int:
    existing = scratch_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = shutil.disk_usage(existing).free - DISK_RESERVE_BYTES
    if limits.max_total_bytes is not None:
        return max(0, min(free, limits.max_total_bytes))
    return max(0, free)


def _read_manifest(archive: zipfile.ZipFile, limits: ImportLimits) -> dict[str, Any]:
    data = read_member(archive, archive.getinfo(MANIFEST), limit=limits.max_manifest_bytes)
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        raise ArchiveError(f"manifest.json is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArchiveError("this file is not a Seedream Playground gallery export")
    if manifest.get("version") not in READABLE_VERSIONS:
        raise ArchiveError(
            f"this export is format version {str(manifest.get('version'))[:20]}; "
            f"this app reads versions {', '.join(map(str, READABLE_VERSIONS))}"
        )
    return manifest


# What an image row says of its bytes, and a thumbnail row of its own.
Expected = tuple[str, int, int, int | None]


def _check_rows(
    archive: zipfile.ZipFile, inventory: Inventory, limits: ImportLimits
) -> dict[str, Expected]:
    """Every row parses and fits its table; every image and thumbnail row names a member
    the archive holds. Returns what the rows say of each blob."""
    images: dict[str, Expected] = {}
    image_digests: dict[int, str] = {}
    for name, table in ROW_MEMBERS.items():
        info = inventory.rows.get(name)
        if info is None:
            continue
        order = KeyOrder(table)
        for line, record in records(
            archive, info, limit=limits.max_row_bytes, member_limit=limits.rows_bytes
        ):
            where = f"{name} line {line}"
            values = checked_row(name, record, order, where=where)
            if name == "images.jsonl":
                sha = values["sha256"]
                if sha not in inventory.blobs:
                    raise ArchiveError(f"{where}: the archive has no blobs/{sha}")
                image_digests[values["id"]] = sha
                expected = _expected(values, where=where)
                if images.setdefault(sha, expected) != expected:
                    raise ArchiveError(f"{where}: another row says otherwise of blobs/{sha}")
            elif name == "thumbnails.jsonl":  # version 1: thumbnails/<image id>
                key = str(values["image_id"])
                if key not in inventory.thumbnails:
                    raise ArchiveError(f"{where}: the archive has no thumbnails/{key}")
                _expected({**values, "byte_size": None}, where=where)  # an allowed type
                sha = image_digests.get(values["image_id"])
                if sha is not None:
                    inventory.thumbnail_of.setdefault(sha, inventory.thumbnails[key])
    return images


def _expected(values: dict[str, Any], *, where: str) -> Expected:
    content_type = values["content_type"]
    if content_type not in IMAGE_CONTENT_TYPES:
        raise ArchiveError(f"{where}: {content_type[:50]!r} is not a PNG, JPEG or WebP image")
    return (content_type, values["width"], values["height"], values.get("byte_size"))


def _check_blob(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    sha: str,
    expected: Expected | None,
    limits: ImportLimits,
    *,
    scratch_dir: Path,
) -> None:
    scratch = scratch_dir / "check.part"
    try:
        digest = hashlib.sha256()
        size = 0
        with scratch.open("wb") as out:
            for chunk in stream_member(archive, info, limit=limits.max_image_bytes):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha:
            raise ArchiveError(f"{info.filename}: the bytes do not match their sha256")
        with scratch.open("rb") as source:
            facts = _verified(info.filename, source, limits.max_image_pixels)
    finally:
        scratch.unlink(missing_ok=True)
    _named_as(info.filename, facts.content_type)
    if expected is not None:
        _agree(info.filename, facts, expected, size)


def _verified(name: str, source: BinaryIO, max_pixels: int) -> ImageFacts:
    try:
        return verify_image(source, max_pixels=max_pixels)
    except DownloadRefused as refused:
        raise ArchiveError(f"{name}: {refused.message}") from None


def _named_as(name: str, content_type: str) -> None:
    """A member named with an extension holds an image of that type."""
    extension = name.rpartition("/")[2].partition(".")[2]
    if extension and IMAGE_EXTENSIONS[content_type] != extension:
        raise ArchiveError(f"{name}: it is {content_type}, not what its name says")


def _agree(name: str, facts: ImageFacts, expected: Expected, size: int) -> None:
    content_type, width, height, byte_size = expected
    if facts.content_type != content_type:
        raise ArchiveError(f"{name}: it is {facts.content_type}, but its row says {content_type}")
    if (facts.width, facts.height) != (width, height):
        raise ArchiveError(
            f"{name}: it is {facts.width}×{facts.height} pixels, but its row says {width}×{height}"
        )
    if byte_size != size:
        raise ArchiveError(f"{name}: it is {size:,} bytes, but its row says {byte_size}")
