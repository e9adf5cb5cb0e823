"""Jobs, images and thumbnails.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.storage.db.tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Record numbers: BIGINT on PostgreSQL. SQLite's INTEGER is 64-bit already (and an INTEGER
# PRIMARY KEY is the rowid), so SQLite keeps the DDL this revision always made there.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

UTC = app.storage.db.tables.UTCDateTime()


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", ID, nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("preset", sa.String(length=100), nullable=True),
        sa.Column("prompt", sa.String(), nullable=False),
        sa.Column("image_size", sa.String(length=32), nullable=False),
        sa.Column("custom_width", sa.Integer(), nullable=True),
        sa.Column("custom_height", sa.Integer(), nullable=True),
        sa.Column("seed", sa.Integer(), nullable=True),
        sa.Column("num_images", sa.Integer(), nullable=False),
        sa.Column("request_body", sa.JSON(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("upstream_job_id", sa.String(length=200), nullable=True),
        sa.Column("upstream_status", sa.String(length=50), nullable=True),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("submitted_at", UTC, nullable=True),
        sa.Column("upstream_completed_at", UTC, nullable=True),
        sa.Column("finished_at", UTC, nullable=True),
        sa.Column("expires_at", UTC, nullable=True),
        sa.Column("credit_cost", sa.Float(), nullable=True),
        sa.Column("credits_remaining", sa.Float(), nullable=True),
        sa.Column("output_urls", sa.JSON(), nullable=True),
        sa.Column("poll_count", sa.Integer(), nullable=False),
        sa.Column("next_poll_at", UTC, nullable=True),
        sa.Column("lease_owner", sa.String(length=200), nullable=True),
        sa.Column("lease_expires_at", UTC, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_jobs_idempotency_key")),
        sa.UniqueConstraint("upstream_job_id", name=op.f("uq_jobs_upstream_job_id")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_jobs_status_next_poll", "jobs", ["status", "next_poll_at"])
    op.create_table(
        "images",
        sa.Column("id", ID, nullable=False),
        sa.Column("job_id", ID, nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("content_type", sa.String(length=50), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("byte_size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("source_url", sa.String(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_images_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_images")),
        sa.UniqueConstraint("job_id", "index", name="uq_images_job_index"),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_images_sha256"), "images", ["sha256"])
    op.create_table(
        "thumbnails",
        sa.Column("image_id", ID, nullable=False),
        sa.Column("content_type", sa.String(length=50), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_thumbnails_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("image_id", name=op.f("pk_thumbnails")),
    )


def downgrade() -> None:
    op.drop_table("thumbnails")
    op.drop_index(op.f("ix_images_sha256"), table_name="images")
    op.drop_table("images")
    op.drop_index("ix_jobs_status_next_poll", table_name="jobs")
    op.drop_table("jobs")
