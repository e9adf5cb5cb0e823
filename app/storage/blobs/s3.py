"""The S3-compatible `BlobStore` (app.storage.blobs.protocol): AWS S3, MinIO, Cloudflare R2 and the
like.

Chosen with `PLAYGROUND_BLOB_URL=s3://bucket/prefix`; `PLAYGROUND_S3_ENDPOINT_URL`
names a service other than AWS. Credentials and the region come the way every
AWS tool reads them (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
a profile, an instance role): the app never sees or stores them.

Under the prefix:

    images/<sha256>        an image's bytes, once per distinct image
    thumbnails/<sha256>    its WebP thumbnail, named by the image's digest
    previews/<sha256>      its WebP preview (app/storage/previews.py), likewise

The bytes under a key never change, so a presigned URL for one can be cached by a
browser for as long as it likes.

Deleting only what no image row names: S3 has no transaction to share with the
gallery's, so this store keeps a date instead. Each image object's LastModified is
when it was last stored: `put_file` of bytes already there, and `renew`, copy the
object onto itself (the same bytes) to move it on. A deletion reads the gallery's
rows first, then each candidate's date, and spares any stored within the grace
period (`grace_seconds`, SWEEP_GRACE_SECONDS): a writer that stored bytes before the
rows were read commits its own rows within the grace, so it is either seen by the
read or spared by its date. What is left: a writer slower than the grace, or one
whose store lands in the instant between a deletion's look at the date and its
DELETE (S3-compatible services offer no delete conditional on a date).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from sqlmodel import col, select

from app.storage.blobs.protocol import (
    CHUNK_BYTES,
    SWEEP_GRACE_SECONDS,
    BlobNotFound,
    BlobStoreUnavailable,
    DigestMismatch,
    file_sha256,
)
from app.storage.db.tables import Image

if TYPE_CHECKING:
    import sqlalchemy as sa

    from app.storage.db.engine import Database

IMAGES = "images/"
THUMBNAILS = "thumbnails/"
PREVIEWS = "previews/"
THUMBNAIL_CONTENT_TYPE = "image/webp"
IMAGE_CONTENT_TYPE = "application/octet-stream"
# The bytes under a key never change: whoever holds a URL to them may keep them.
IMMUTABLE_CACHE = "private, max-age=31536000, immutable"
# Up to this size an image goes up in one request; above it in parts of PART_BYTES, read
# from the file as they are sent (images are 2–25 MB).
SINGLE_PUT_MAX_BYTES = 16 * 1024 * 1024
PART_BYTES = 8 * 1024 * 1024
# S3 deletes at most this many keys a request.
DELETE_BATCH = 1000
_MISSING_CODES = {"404", "NoSuchKey", "NotFound"}


class S3Unavailable(BlobStoreUnavailable):
    """The bucket cannot be reached or used with the credentials at hand."""


def parse_blob_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` → ("bucket", "some/prefix")."""
    scheme, _, rest = url.partition("://")
    if scheme != "s3" or not rest:
        raise ValueError("must be s3://bucket or s3://bucket/prefix")
    bucket, _, prefix = rest.partition("/")
    return bucket, prefix.strip("/")


class S3BlobStore:
    """Image bytes as objects in a bucket, streamed both ways."""

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        redirect_seconds: int = 0,
    ) -> None:
        self._bucket = bucket
        self._prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self._endpoint_url = endpoint_url
        self._redirect_seconds = redirect_seconds
        # Deletions spare images stored this recently (see the module docstring).
        self.grace_seconds = SWEEP_GRACE_SECONDS
        config = Config(
            # Version 4 signatures: every region and every S3-compatible service takes them.
            signature_version="s3v4",
            retries={"max_attempts": 5, "mode": "standard"},
            connect_timeout=10,
            read_timeout=60,
            max_pool_connections=16,
            # MinIO and R2 name buckets in the path; so may AWS (it is still supported).
            s3={"addressing_style": "path"} if endpoint_url else {},
            # Checksums only where S3 requires them: several S3-compatible services
            # refuse the newer default's trailing checksums.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url, config=config
        )
        self._transfer = TransferConfig(
            multipart_threshold=SINGLE_PUT_MAX_BYTES,
            multipart_chunksize=PART_BYTES,
            max_concurrency=2,
        )
        try:
            self._client.head_bucket(Bucket=bucket)
        except (ClientError, BotoCoreError) as exc:
            raise S3Unavailable(f"cannot use the bucket {self.describe()}: {exc}") from None

    def describe(self) -> str:
        where = f" at {self._endpoint_url}" if self._endpoint_url else ""
        return f"s3://{self._bucket}/{self._prefix}{where}"

    def check(self) -> None:
        try:
            self._client.head_bucket(Bucket=self._bucket)
        except (ClientError, BotoCoreError) as exc:
            raise S3Unavailable(f"cannot use the bucket {self.describe()}: {exc}") from None

    def close(self) -> None:
        self._client.close()

    def _image_key(self, sha256: str) -> str:
        return f"{self._prefix}{IMAGES}{sha256}"

    def _thumbnail_key(self, sha256: str) -> str:
        return f"{self._prefix}{THUMBNAILS}{sha256}"

    def _preview_key(self, sha256: str) -> str:
        return f"{self._prefix}{PREVIEWS}{sha256}"

    def put_file(self, sha256: str, path: Path) -> None:
        if self.renew(sha256):
            return
        # Checked before anything is sent: a bad file never reaches the bucket.
        if file_sha256(path) != sha256:
            raise DigestMismatch(f"the bytes stored as {sha256[:12]}… hash otherwise")
        self._client.upload_file(
            str(path),
            self._bucket,
            self._image_key(sha256),
            ExtraArgs={"ContentType": IMAGE_CONTENT_TYPE},
            Config=self._transfer,
        )

    def renew(self, sha256: str) -> bool:
        """Move the image's date on by copying it onto itself (S3 refuses a copy that changes
        nothing, hence REPLACE); False, changing nothing, if it is not stored."""
        key = self._image_key(sha256)
        try:
            self._client.copy_object(
                Bucket=self._bucket,
                Key=key,
                CopySource={"Bucket": self._bucket, "Key": key},
                MetadataDirective="REPLACE",
                ContentType=IMAGE_CONTENT_TYPE,
            )
        except ClientError as exc:
            if _is_missing(exc):
                return False
            raise
        return True

    def keeps(self, connection: sa.Connection, digests: Collection[str]) -> bool:
        # Nothing to ask over the network while the gallery's transaction waits: the writer
        # stored (or renewed) these just now, and deletions spare them for the grace.
        return True

    def put_thumbnail(self, sha256: str, data: bytes) -> None:
        self._put_small(self._thumbnail_key(sha256), data)

    def put_preview(self, sha256: str, data: bytes) -> None:
        self._put_small(self._preview_key(sha256), data)

    def _put_small(self, key: str, data: bytes) -> None:
        self._client.put_object(
            Bucket=self._bucket, Key=key, Body=data, ContentType=THUMBNAIL_CONTENT_TYPE
        )

    def contains(self, sha256: str) -> bool:
        return self._head(self._image_key(sha256)) is not None

    def size(self, sha256: str) -> int:
        size = self._head(self._image_key(sha256))
        if size is None:
            raise BlobNotFound(sha256)
        return size

    def _head(self, key: str) -> int | None:
        """The object's length, or None if there is no such object."""
        try:
            answer = self._client.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if _is_missing(exc):
                return None
            raise
        return int(answer["ContentLength"])

    def iter_chunks(self, sha256: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
        try:
            answer = self._client.get_object(Bucket=self._bucket, Key=self._image_key(sha256))
        except ClientError as exc:
            if _is_missing(exc):
                raise BlobNotFound(sha256) from None
            raise
        body = answer["Body"]
        try:
            yield from body.iter_chunks(chunk_bytes)
        finally:
            # A client that went away mid-image leaves no connection half-read.
            body.close()

    def read_thumbnail(self, sha256: str) -> bytes | None:
        return self._read_small(self._thumbnail_key(sha256))

    def read_preview(self, sha256: str) -> bytes | None:
        return self._read_small(self._preview_key(sha256))

    def _read_small(self, key: str) -> bytes | None:
        try:
            answer = self._client.get_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if _is_missing(exc):
                return None
            raise
        with answer["Body"] as body:
            return body.read()

    def redirect_url(
        self, sha256: str, *, content_type: str, thumbnail: bool = False
    ) -> str | None:
        if not self._redirect_seconds:
            return None
        key = self._thumbnail_key(sha256) if thumbnail else self._image_key(sha256)
        return self._client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self._bucket,
                "Key": key,
                # The browser is told what the gallery's row says, not what the object says.
                "ResponseContentType": content_type,
                "ResponseCacheControl": IMMUTABLE_CACHE,
            },
            ExpiresIn=self._redirect_seconds,
        )

    def discard(self, digests: Iterable[str], *, gallery: Database) -> int:
        return self._delete_unused(list(dict.fromkeys(digests)), gallery, self.grace_seconds)

    def sweep(self, *, gallery: Database, older_than_seconds: float = SWEEP_GRACE_SECONDS) -> int:
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
        referenced = _referenced_digests(gallery)
        images = self._unreferenced(IMAGES, referenced, cutoff)
        removed = self._delete_unused(images, gallery, older_than_seconds)
        # Thumbnails and previews whose image went (or never came: a crash between the
        # two writes).
        for folder, key in ((THUMBNAILS, self._thumbnail_key), (PREVIEWS, self._preview_key)):
            lone = set(self._unreferenced(folder, referenced, cutoff)) - set(images)
            lone -= _named(gallery, lone)
            self._delete([key(sha) for sha in lone if not self.contains(sha)])
        return removed

    def _delete_unused(self, digests: list[str], gallery: Database, grace_seconds: float) -> int:
        """Delete those of these images (with their thumbnails, previews) no image row names and not
        stored within `grace_seconds` of the rows being read; returns how many went."""
        checked_at = datetime.now(UTC)
        named = _named(gallery, digests)
        removed = 0
        for sha in digests:
            if sha in named:
                continue
            stored_at = self._stored_at(self._image_key(sha))
            if stored_at is None or stored_at >= checked_at - timedelta(seconds=grace_seconds):
                continue
            self._delete([self._image_key(sha), self._thumbnail_key(sha), self._preview_key(sha)])
            removed += 1
        return removed

    def _stored_at(self, key: str) -> datetime | None:
        try:
            answer = self._client.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if _is_missing(exc):
                return None
            raise
        return answer["LastModified"]

    def _unreferenced(self, folder: str, referenced: set[str], cutoff: datetime) -> list[str]:
        """The digests under `folder` not in `referenced`, last stored before `cutoff`."""
        start = f"{self._prefix}{folder}"
        found = []
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self._bucket, Prefix=start
        )
        for page in pages:
            for item in page.get("Contents", []):
                sha = item["Key"].removeprefix(start)
                if sha not in referenced and item["LastModified"] < cutoff:
                    found.append(sha)
        return found

    def _delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start : start + DELETE_BATCH]
            answer = self._client.delete_objects(
                Bucket=self._bucket,
                Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
            )
            if errors := answer.get("Errors"):
                first = errors[0]
                raise S3Unavailable(
                    f"could not delete {len(errors)} object(s) from {self.describe()}: "
                    f"{first.get('Code')} {first.get('Message')}"
                )

    def backup_to(self, directory: Path) -> None:
        # The bucket is the copy of record: back it up with the service's own tools.
        return None


def _named(gallery: Database, digests: Collection[str]) -> set[str]:
    """Those of these digests an image row in `gallery` names."""
    wanted = list(digests)
    named: set[str] = set()
    with gallery.read() as session:
        for start in range(0, len(wanted), DELETE_BATCH):
            batch = wanted[start : start + DELETE_BATCH]
            named.update(
                session.exec(select(Image.sha256).where(col(Image.sha256).in_(batch))).all()
            )
    return named


def _is_missing(exc: ClientError) -> bool:
    return str(exc.response.get("Error", {}).get("Code")) in _MISSING_CODES


def _referenced_digests(db: Database) -> set[str]:
    """Every digest an image row names, read before the objects' dates are."""
    with db.read() as session:
        return set(session.exec(select(Image.sha256).distinct()).all())
