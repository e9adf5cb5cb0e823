"""Workers and key status.

Workers: running app processes and their heartbeats, so a crashed worker's jobs
are taken over as soon as it stops beating. Key status: a refused API key
blocks submissions until it works again.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.storage.db.tables

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("started_at", app.storage.db.tables.UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", app.storage.db.tables.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workers")),
    )
    op.create_table(
        "key_status",
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("failed_at", app.storage.db.tables.UTCDateTime(), nullable=False),
        sa.Column("message", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", name=op.f("pk_key_status")),
    )


def downgrade() -> None:
    op.drop_table("key_status")
    op.drop_table("workers")
