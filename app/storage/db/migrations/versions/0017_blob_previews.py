"""Previews in PostgreSQL: a table beside the thumbnails', on PostgreSQL only.

Each image larger than 1024 px has a WebP preview at most that size (app/storage/previews.py),
kept beside its thumbnail in the blob store.
A SQLite gallery's store (a file of its own) makes its table when it opens.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.create_table(
        "blob_previews",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_blob_previews")),
    )
    op.create_index("ix_blob_previews_created_at", "blob_previews", ["created_at", "sha256"])
    # Image formats are compressed already: trying again on every write only costs time.
    op.execute("ALTER TABLE blob_previews ALTER COLUMN data SET STORAGE EXTERNAL")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_table("blob_previews")
