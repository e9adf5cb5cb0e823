"""Choosing the blob store (app.storage.blobs.protocol) from the settings: the one place that knows
the classes.

- `PLAYGROUND_BLOB_URL=s3://bucket/prefix`: an S3-compatible bucket (app.storage.blobs.s3);
- otherwise, a PostgreSQL database: tables in that database (app.storage.blobs.postgres);
- otherwise the SQLite file `images.db` in the data dir (app.storage.blobs.sqlite).

Everything else takes a `BlobStore` and never asks which one it has.
"""

from __future__ import annotations

import sqlalchemy as sa

from app.core import extras
from app.core.config import Settings
from app.core.database_url import is_postgres_url
from app.storage.blobs.protocol import BlobStore


def open_blob_store(settings: Settings, *, database_url: str | sa.URL) -> BlobStore:
    """The store the settings name, for a gallery whose rows are at `database_url`."""
    if settings.blob_url is not None:
        # Imported here: boto3 costs start-up time nobody else should pay, and it is the
        # [s3] extra, which may not be installed.
        extras.require(extras.S3)
        from app.storage.blobs.s3 import S3BlobStore, parse_blob_url

        bucket, prefix = parse_blob_url(settings.blob_url)
        return S3BlobStore(
            bucket=bucket,
            prefix=prefix,
            endpoint_url=settings.s3_endpoint_url,
            redirect_seconds=settings.s3_redirect_seconds,
        )
    if is_postgres_url(database_url):
        from app.storage.blobs.postgres import PostgresBlobStore

        return PostgresBlobStore(database_url)
    from app.storage.blobs.sqlite import SQLiteBlobStore

    return SQLiteBlobStore(settings.image_store_path)
