"""Taking images away: one image with its parameters embedded, or many as a zip.

Everything streams: image bytes come from the blob store a chunk at a time and
a zip is written as it is sent (app/core/zips.py), so a download of a thousand
images holds one chunk in memory.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import col, select

from app.core.errors import InvalidParameters, NotFoundError
from app.core.zips import ZipStream
from app.features.gallery import boards, lookups
from app.features.gallery import listing as gallery
from app.features.gallery.image_metadata import (
    GENERATOR,
    PNG_CONTENT_TYPE,
    file_name,
    file_stem,
    png_chunks_for,
    record,
    sidecar_bytes,
    splice_after_header,
)
from app.features.gallery.listing import GalleryEntry, GalleryFilters
from app.storage.blobs.protocol import BlobStore
from app.storage.db.engine import Database
from app.storage.db.tables import Job, utcnow

# A selection larger than this is refused with a pointer to `export`.
ZIP_MAX_IMAGES = 1000


@dataclass(frozen=True)
class ImageDownload:
    name: str
    content_type: str
    length: int
    chunks: Iterator[bytes]
    # Names these exact bytes: the stored image's digest, and that of what is spliced in.
    etag: str


def jobs_for(db: Database, entries: Sequence[GalleryEntry]) -> dict[int, Job]:
    """The jobs behind these images, in one query."""
    ids = list({entry.job_id for entry in entries})
    if not ids:
        return {}
    with db.read() as session:
        return {
            job.id: job
            for job in session.exec(select(Job).where(col(Job.id).in_(ids))).all()
            if job.id is not None
        }


def image_download(
    blobs: BlobStore, entry: GalleryEntry, job: Job, *, base_url: str
) -> ImageDownload:
    """The stored image, with its parameters in text chunks when it is a PNG."""
    chunks = blobs.iter_chunks(entry.sha256)
    if entry.content_type != PNG_CONTENT_TYPE:
        # JPEG and WebP go out as stored; their parameters travel in the sidecar.
        return ImageDownload(
            file_name(entry), entry.content_type, entry.byte_size, chunks, f'"{entry.sha256}"'
        )
    extra = png_chunks_for(entry, job, base_url=base_url)
    spliced = hashlib.sha256(extra).hexdigest()[:16]
    return ImageDownload(
        file_name(entry),
        entry.content_type,
        entry.byte_size + len(extra),
        splice_after_header(chunks, extra),
        f'"{entry.sha256}-{spliced}"',
    )


@dataclass(frozen=True)
class ZipSelection:
    entries: list[GalleryEntry]
    # What the manifest says was asked for.
    selection: dict[str, Any]
    name: str


def zip_selection(db: Database, ids: Sequence[int], filters: GalleryFilters) -> ZipSelection:
    """The images a zip holds: the picked ones, or everything the filters match."""
    if ids:
        if len(set(ids)) > ZIP_MAX_IMAGES:
            raise InvalidParameters({"ids": f"pick at most {ZIP_MAX_IMAGES} images"})
        entries = lookups.get_entries(db, image_ids=ids)
        missing = sorted(set(ids) - {entry.image_id for entry in entries})
        if missing:
            raise NotFoundError(f"There is no image {', '.join(map(str, missing[:20]))}.")
        return ZipSelection(
            entries, {"image_ids": list(dict.fromkeys(ids))}, "seedream-selection.zip"
        )
    page = gallery.search_images(db, filters=filters, limit=ZIP_MAX_IMAGES)
    if page.next_cursor is not None:
        raise InvalidParameters(
            {
                "selection": f"more than {ZIP_MAX_IMAGES} images match; narrow the search, "
                "or export the whole gallery with `seedream-playground export`"
            }
        )
    if not page.items:
        raise NotFoundError("No images match, so there is nothing to put in a zip.")
    name = "seedream-gallery.zip"
    if filters.collection is not None:
        board = boards.get_board(db, collection_id=filters.collection)
        slug = re.sub(r"[^a-z0-9]+", "-", board.name.lower()).strip("-") or str(board.id)
        name = f"seedream-{slug}.zip"
    elif not filters.is_empty:
        name = "seedream-search.zip"
    return ZipSelection(page.items, {"filters": dict(filters.query_items())}, name)


def zip_stream(
    blobs: BlobStore,
    entries: Sequence[GalleryEntry],
    jobs: dict[int, Job],
    *,
    base_url: str,
    selection: dict[str, Any],
) -> Iterator[bytes]:
    """A zip of the images (parameters embedded), a JSON sidecar each, and manifest.json, each
    member dated when its job was made (app/core/zips.py says what every reader needs)."""
    manifest: dict[str, Any] = {
        "generator": GENERATOR,
        "created_at": utcnow().isoformat(),
        "selection": selection,
        "count": len(entries),
        "images": [],
    }
    with ZipStream() as archive:
        for entry in entries:
            job = jobs[entry.job_id]
            download = image_download(blobs, entry, job, base_url=base_url)
            with archive.open(download.name, modified=job.created_at, packed=True) as member:
                for chunk in download.chunks:
                    member.write(chunk)
                    if data := archive.take():
                        yield data
            sidecar_name = f"{file_stem(entry)}.json"
            archive.add(
                sidecar_name, sidecar_bytes(entry, job, base_url=base_url), modified=job.created_at
            )
            document = record(entry, job, base_url=base_url)
            manifest["images"].append({"file": download.name, "sidecar": sidecar_name, **document})
            if data := archive.take():
                yield data
        archive.add(
            "manifest.json",
            json.dumps(manifest, indent=2, ensure_ascii=False) + "\n",
            modified=utcnow(),
        )
    yield archive.take()
