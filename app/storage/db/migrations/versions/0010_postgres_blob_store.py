"""Image bytes in PostgreSQL: the blob store's tables, on PostgreSQL only.

A gallery on SQLite keeps its bytes in a file of their own beside the database
(app.storage.blobs.sqlite); on PostgreSQL they are tables of the same database
(app.storage.blobs.postgres), chunked so that no statement moves more than 1 MiB.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.create_table(
        "blobs",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("byte_size", sa.BigInteger(), nullable=False),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_blobs")),
    )
    # The sweep lists blobs by age without reading the table.
    op.create_index("ix_blobs_created_at", "blobs", ["created_at", "sha256"])
    op.create_table(
        "blob_chunks",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", "seq", name=op.f("pk_blob_chunks")),
    )
    op.create_table(
        "blob_thumbnails",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_blob_thumbnails")),
    )
    op.create_index("ix_blob_thumbnails_created_at", "blob_thumbnails", ["created_at", "sha256"])
    # Image formats are compressed already: trying again on every write only costs time.
    op.execute("ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL")
    op.execute("ALTER TABLE blob_thumbnails ALTER COLUMN data SET STORAGE EXTERNAL")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_table("blob_thumbnails")
    op.drop_table("blob_chunks")
    op.drop_index("ix_blobs_created_at", table_name="blobs")
    op.drop_table("blobs")
