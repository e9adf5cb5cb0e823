"""The PostgreSQL blob store's tables (app/storage/blobs/postgres.py), made by migration 0010
(`blob_previews` by 0017).

They are not among the models (app/storage/db/tables.py): a SQLite gallery keeps its bytes in
a file of its own and must never get them, and schema comparisons leave them out. They live
here, beside the database's other declarations, so that the database never imports a store.
"""

from __future__ import annotations

import sqlalchemy as sa

_blob_metadata = sa.MetaData()
BLOBS = sa.Table(
    "blobs",
    _blob_metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("byte_size", sa.BigInteger, nullable=False),
    sa.Column("chunk_count", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
BLOB_CHUNKS = sa.Table(
    "blob_chunks",
    _blob_metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
)
BLOB_THUMBNAILS = sa.Table(
    "blob_thumbnails",
    _blob_metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
)
BLOB_PREVIEWS = sa.Table(
    "blob_previews",
    _blob_metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
)
BLOB_STORE_TABLES = frozenset(table.name for table in _blob_metadata.sorted_tables)


def is_blob_store_table(name: str | None) -> bool:
    return name in BLOB_STORE_TABLES
