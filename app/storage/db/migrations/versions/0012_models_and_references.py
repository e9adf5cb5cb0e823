"""The upstream's model catalogue, and each job's reference images.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.storage.db.tables

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model_catalogues",
        sa.Column("upstream", sa.String(length=500), nullable=False),
        sa.Column("models", sa.JSON(), nullable=True),
        sa.Column("fetched_at", app.storage.db.tables.UTCDateTime(), nullable=True),
        sa.Column("checked_at", app.storage.db.tables.UTCDateTime(), nullable=False),
        sa.Column("error", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("upstream", name=op.f("pk_model_catalogues")),
    )
    # Nullable: SQLite adds it in place, no table rebuild.
    op.add_column("jobs", sa.Column("reference_images", sa.JSON(), nullable=True))


def downgrade() -> None:
    # Not a batch rebuild: that would drop the full-text triggers on jobs.
    op.execute("ALTER TABLE jobs DROP COLUMN reference_images")
    op.drop_table("model_catalogues")
