"""Reference images: gallery images sent with a run, and images uploaded to be sent.

A model whose schema has an image input (app/domain/rules.py `image_input`) takes
references: gallery images, by id. When the job is submitted each one is read
from the blob store and sent in one of two ways:

    data: URI (default)       the bytes, base64, inside the run body
    signed URL                with PLAYGROUND_PUBLIC_URL set: a link to this app that
                              expires, signed (app/core/signing.py `REFERENCE_LINK`)

Either way the image is first made to fit: within the schema's limits where it
states them, else at most 4,096 px a side and 10 MB (scaled down, re-encoded as
JPEG, or PNG if it has transparency); an image that fits goes as stored.

Uploads (a file picked or pasted in the reference dialog) are checked like a
download (an allowed type, the byte cap, the pixel cap, decodable to the end) and
kept in the gallery as a job of their own, marked as an upload.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from PIL import Image as PILImage
from PIL import ImageOps
from sqlmodel import col

from app.core import signing
from app.core.errors import InvalidParameters
from app.domain.rules import ImageInput
from app.domain.runs import REFERENCES_FIELD
from app.features.gallery import lookups
from app.features.gallery.listing import GalleryEntry
from app.storage.blobs.protocol import BlobStore, ensure_kept, store_then_commit
from app.storage.db.engine import Database
from app.storage.db.tables import Image, Job, JobStatus, User, utcnow
from app.storage.intake import IMAGE_CONTENT_TYPES, check_image

# The model name that marks a job as an upload (never a PixelDojo apiId: the run path
# refuses it), so uploads sit in the gallery, its filters and exports like any image.
UPLOAD_MODEL = "upload"
# How long a signed reference URL works: long enough for PixelDojo to fetch it while the
# job runs (PLAYGROUND_JOB_DEADLINE_SECONDS is 15 minutes by default).
SIGNED_URL_SECONDS = 3600
# The query parameter a signed URL carries its signature in (the access log hides it).
SIGNATURE_PARAMETER = "signature"
JPEG_QUALITY = 90
# Shrunk by this much each time a re-encoded image is still over the byte cap.
_SHRINK_STEP = 0.8
UPLOAD_NAME_MAX_CHARS = 200
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class PreparedReference:
    """An image as it is sent: its bytes and their type."""

    content_type: str
    data: bytes
    width: int
    height: int

    def data_uri(self) -> str:
        return f"data:{self.content_type};base64,{base64.b64encode(self.data).decode('ascii')}"


# --- Which images --------------------------------------------------------------------------


def load_references(db: Database, image_ids: Sequence[int]) -> list[GalleryEntry]:
    """The gallery images named as references, in order; refuses unknown and trashed ones
    (with the field named, before anything is sent)."""
    if len(set(image_ids)) != len(image_ids):
        raise InvalidParameters({REFERENCES_FIELD: "names the same image twice"})
    entries = {entry.image_id: entry for entry in lookups.get_entries(db, image_ids=image_ids)}
    for image_id in image_ids:
        entry = entries.get(image_id)
        if entry is None:
            raise InvalidParameters({REFERENCES_FIELD: f"there is no image {image_id}"})
        if entry.deleted_at is not None:
            raise InvalidParameters({REFERENCES_FIELD: f"image {image_id} is in the trash"})
    return [entries[image_id] for image_id in image_ids]


def placeholder(image_id: int) -> str:
    """What a job keeps, and pages show, in place of a reference's bytes."""
    return f"<gallery image {image_id}>"


_PLACEHOLDER = re.compile(r"<gallery image (\d+)>")


def placeholder_ids(value: object) -> list[int]:
    """The gallery images a kept body value names by their placeholders (one, or a list of
    them), so pages show them as thumbnails; [] for any other value."""
    values = value if isinstance(value, list) else [value]
    found = [_PLACEHOLDER.fullmatch(item) if isinstance(item, str) else None for item in values]
    if not values or not all(found):
        return []
    return [int(match.group(1)) for match in found if match is not None]


# --- Making them fit ---------------------------------------------------------------------


def prepare(
    blobs: BlobStore, entry: GalleryEntry, *, max_side: int, max_bytes: int
) -> PreparedReference:
    """The image as sent: as stored if it fits the limits, else scaled down to fit."""
    fits = (
        max(entry.width, entry.height) <= max_side
        and entry.byte_size <= max_bytes
        and entry.content_type in IMAGE_CONTENT_TYPES
    )
    data = b"".join(blobs.iter_chunks(entry.sha256))
    if fits:
        return PreparedReference(entry.content_type, data, entry.width, entry.height)
    return shrink(data, max_side=max_side, max_bytes=max_bytes)


def shrink(data: bytes, *, max_side: int, max_bytes: int) -> PreparedReference:
    """Scale an image down until it is at most `max_side` a side and `max_bytes` long."""
    with PILImage.open(io.BytesIO(data)) as opened:
        image = ImageOps.exif_transpose(opened)
        image.load()
    alpha = image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info)
    image = image.convert("RGBA" if alpha else "RGB")
    scale = min(1.0, max_side / max(image.size))
    while True:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        resized = image.resize(size, PILImage.Resampling.LANCZOS) if scale < 1 else image
        buffer = io.BytesIO()
        if alpha:
            resized.save(buffer, format="PNG", optimize=True)
        else:
            resized.save(buffer, format="JPEG", quality=JPEG_QUALITY)
        if buffer.tell() <= max_bytes or max(size) <= 64:
            return PreparedReference(
                "image/png" if alpha else "image/jpeg", buffer.getvalue(), *size
            )
        scale *= _SHRINK_STEP


# --- Signed URLs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedReference:
    """What a signed reference URL names: the image, the limits it is fitted to, and until
    when the link works."""

    image_id: int
    max_side: int
    max_bytes: int
    expires: int

    def signature(self, signer: signing.Signer) -> str:
        return signer.sign(signing.REFERENCE_LINK, self._signed())

    def url(self, public_url: str, signer: signing.Signer) -> str:
        return (
            f"{public_url.rstrip('/')}/references/{self.image_id}?expires={self.expires}"
            f"&side={self.max_side}&bytes={self.max_bytes}"
            f"&{SIGNATURE_PARAMETER}={self.signature(signer)}"
        )

    def valid(self, signer: signing.Signer, signature: str, *, now: float | None = None) -> bool:
        if self.expires < (time.time() if now is None else now):
            return False
        return signer.valid(signing.REFERENCE_LINK, self._signed(), signature)

    def _signed(self) -> str:
        return f"reference:{self.image_id}:{self.max_side}:{self.max_bytes}:{self.expires}"


def signed_url(
    public_url: str,
    signer: signing.Signer,
    entry: GalleryEntry,
    limits: ImageInput,
    *,
    now: float | None = None,
) -> str:
    """A link to the reference's bytes that works for SIGNED_URL_SECONDS, for PixelDojo to
    fetch: the image id, the limits, the expiry and a signature (never the key)."""
    expires = int((time.time() if now is None else now) + SIGNED_URL_SECONDS)
    signed = SignedReference(entry.image_id, limits.max_side, limits.max_bytes, expires)
    return signed.url(public_url, signer)


def body_references(
    blobs: BlobStore,
    entries: Sequence[GalleryEntry],
    limits: ImageInput,
    *,
    public_url: str | None,
    signer: signing.Signer,
) -> list[str]:
    """What goes in the run body for these references: data: URIs, or signed URLs."""
    if public_url:
        return [signed_url(public_url, signer, entry, limits) for entry in entries]
    return [
        prepare(blobs, entry, max_side=limits.max_side, max_bytes=limits.max_bytes).data_uri()
        for entry in entries
    ]


# --- Uploads -------------------------------------------------------------------------------


def upload_name(name: str | None) -> str:
    """A file name fit to show: no control characters, no folders, not too long."""
    cleaned = _UNSAFE_NAME.sub(" ", (name or "").replace("\\", "/").rsplit("/", 1)[-1]).strip()
    return cleaned[:UPLOAD_NAME_MAX_CHARS] or "pasted image"


def store_upload(
    db: Database,
    blobs: BlobStore,
    path: Path,
    *,
    name: str | None,
    user: User | None,
) -> int:
    """Check an uploaded file like a download, keep it in the gallery, and return its image
    id; the same bytes uploaded again give the earlier upload's image."""
    checked = check_image(path)  # DownloadRefused: not an image we keep
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(1024 * 1024):
            digest.update(chunk)
    sha256 = digest.hexdigest()
    earlier = _earlier_upload(db, sha256)
    if earlier is not None:
        return earlier
    shown = upload_name(name)
    byte_size = path.stat().st_size

    def store() -> int:
        # Bytes, thumbnail and preview first, then the rows, which commit only while the bytes stay.
        blobs.put_file(sha256, path)
        blobs.put_thumbnail(sha256, checked.thumbnail.data)
        if checked.preview is not None:
            blobs.put_preview(sha256, checked.preview.data)
        now = utcnow()
        with db.write() as session:
            job = Job(
                model=UPLOAD_MODEL,
                prompt=shown,
                image_size="custom",
                custom_width=checked.width,
                custom_height=checked.height,
                num_images=1,
                request_body={},
                status=JobStatus.COMPLETED,
                created_at=now,
                updated_at=now,
                finished_at=now,
                credit_cost=0.0,
                user_id=user.id if user is not None else None,
            )
            session.add(job)
            session.flush()
            assert job.id is not None
            image = Image(
                job_id=job.id,
                index=0,
                content_type=checked.content_type,
                width=checked.width,
                height=checked.height,
                byte_size=byte_size,
                sha256=sha256,
                source_url=f"upload:{shown}",
                created_at=now,
            )
            session.add(image)
            session.flush()
            assert image.id is not None
            ensure_kept(blobs, session.connection(), {sha256})
            return image.id

    # Again if a purge took the bytes (an earlier upload's, in the trash) in between.
    return store_then_commit(store)


def _earlier_upload(db: Database, sha256: str) -> int | None:
    with db.read() as session:
        found = session.execute(
            sa.select(col(Image.id))
            .join(Job, col(Job.id) == col(Image.job_id))
            .where(
                col(Image.sha256) == sha256,
                col(Job.model) == UPLOAD_MODEL,
                col(Image.deleted_at).is_(None),
            )
            .limit(1)
        ).scalar_one_or_none()
    return int(found) if found is not None else None


def is_upload(model: str) -> bool:
    return model == UPLOAD_MODEL
